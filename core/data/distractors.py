"""A benchmark grown to any corpus size: its queries and judgments kept, its corpus padded with synthetic distractors.

Real large code benchmarks (CoIR's CodeSearchNet, about 1M documents) cannot be downloaded here, and a company's
code base is not at hand either; what a user can do anywhere is take a benchmark they have and grow its corpus
to the size they care about, to see what size does to quality, speed and memory. The distractors are variants
of the corpus's own documents (two adjacent words swapped, a suffix phrase, a numbered identifier), so their
vocabulary and length are the corpus's; none is judged. They are distractors, not a model of a real corpus:
each one is close to a real document, so scores fall faster than a real corpus of the same size would make them
fall. The folder is written line by line, never held, and records in ``meta.json`` how it was made.
"""
from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.data.datasets import CORPUS_FILE, QRELS_DIR, QUERIES_FILE, Dataset, validate_name
from core.errors import DatasetError
from core.progress import ItemProgress

SUFFIXES = ("if needed", "for the given input", "in place", "(deprecated)", "with caching", "as a list", "or None",
            "for each item", "and return it", "from the config", "without copying", "in the background")
DISTRACTOR_PREFIX = "synthetic-"
MAX_DOCUMENTS = 50_000_000
DEFAULT_SEED = 20261122


@dataclass(frozen=True)
class GrownDataset:
    """What ``grow_corpus`` wrote: where, how many real and synthetic documents, and the corpus file's size."""

    folder: Path
    real_documents: int
    synthetic_documents: int
    corpus_bytes: int


def synthetic_texts(base: Sequence[str], size: int, seed: int = DEFAULT_SEED) -> Iterator[str]:
    """``size`` texts: the ``base`` texts first, as they are, then variants of them, each different from the others."""
    if not base:
        raise DatasetError("There is no text to make distractors from.")
    rng = random.Random(seed)
    vocabulary = sorted({w.lower() for text in base for w in re.findall(r"[A-Za-z]{3,}", text)}) or ["item"]
    for row in range(size):
        text, variant = base[row % len(base)], row // len(base)
        if variant == 0:
            yield text
            continue
        words = text.split()
        if len(words) > 2:
            at = rng.randrange(len(words) - 1)
            words[at], words[at + 1] = words[at + 1], words[at]
        identifier = f"{rng.choice(vocabulary)}_{rng.choice(vocabulary)}_{variant}"
        yield " ".join(words + [rng.choice(SUFFIXES), "using", identifier])


def grow_corpus(source: Dataset, target: Path, documents: int, name: str | None = None, seed: int = DEFAULT_SEED,
                progress: ItemProgress | None = None) -> GrownDataset:
    """Write ``source`` into ``target`` (a new BEIR folder) with its corpus grown to ``documents`` documents.

    The real documents come first with their ids, queries and qrels unchanged; synthetic distractors
    (ids ``synthetic-<n>``, the language of the document each varies) follow. Written to a temporary folder
    and renamed into place, so a failed or interrupted run leaves nothing half-written.
    """
    real = len(source.documents)
    if not real <= documents <= MAX_DOCUMENTS:
        raise DatasetError(f"Grow {source.name} to between its own {real:,} documents and {MAX_DOCUMENTS:,}; got {documents:,}.")
    target = Path(target)
    validate_name(name or target.name)
    if target.exists():
        raise DatasetError(f"{target} already exists: pick another name or delete it first.")
    temporary = target.with_name(f".{target.name}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    (temporary / QRELS_DIR).mkdir(parents=True)
    try:
        texts = [doc.full_text for doc in source.documents]  # what the variants vary (a grown set's source is small)
        languages = [doc.language for doc in source.documents]
        step = max(1, documents // 100)
        with (temporary / CORPUS_FILE).open("w", encoding="utf-8") as corpus:
            for doc in source.documents:
                corpus.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text, "language": doc.language},
                                        ensure_ascii=False) + "\n")
            extra = synthetic_texts(texts, documents, seed)
            for row, text in enumerate(extra):
                if row < real:
                    continue  # the real documents, already written as they are
                corpus.write(json.dumps({"_id": f"{DISTRACTOR_PREFIX}{row - real}", "title": "", "text": text,
                                         "language": languages[row % real]}, ensure_ascii=False) + "\n")
                if progress and row % step == 0:
                    progress("distractors", row, documents)
        with (temporary / QUERIES_FILE).open("w", encoding="utf-8") as queries:
            for query in source.queries:
                record = {"_id": query.id, "text": query.text, **({"language": query.language} if query.language else {})}
                queries.write(json.dumps(record, ensure_ascii=False) + "\n")
        with (temporary / QRELS_DIR / f"{source.split}.tsv").open("w", encoding="utf-8") as qrels:
            qrels.write("query-id\tcorpus-id\tscore\n")
            for query_id, grades in source.qrels.judgments.items():
                qrels.writelines(f"{query_id}\t{doc_id}\t{grade}\n" for doc_id, grade in grades.items())
        meta = {"name": name or target.name, "documents": documents, "queries": len(source.queries),
                "qrels": sum(len(g) for g in source.qrels.judgments.values()), "grown_from": source.name,
                "real_documents": real, "synthetic_documents": documents - real, "seed": seed,
                "distractors": "variants of the corpus's own documents (core.data.distractors.synthetic_texts), never judged"}
        (temporary / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if progress:
            progress("distractors", documents, documents)
        temporary.rename(target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return GrownDataset(target, real, documents - real, (target / CORPUS_FILE).stat().st_size)
