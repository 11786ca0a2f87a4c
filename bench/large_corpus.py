"""Part 13: a corpus of millions in bounded memory: corpus.jsonl imported into the Lance corpus store, BM25-indexed by
streaming from it, and queried with hits read by row, all in one fresh process whose peak RSS is the figure.

The corpus is synthetic: real cosqa functions (about 310 bytes of code each) repeated with variations by part 8's
``synthetic_texts`` (two adjacent words swapped, a suffix phrase, a numbered identifier), written to corpus.jsonl
one line at a time. Queries are cosqa's judged queries. Nothing is kept: the corpus, the store and the index live
in a temporary folder removed afterwards.

Run by ``bench/run_benchmarks.py``; by hand: ``python -m bench.large_corpus --dataset-dir DIR --workdir DIR
--queries FILE --out FILE`` (the worker; the corpus comes from ``write_corpus``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import Measure, Target, current_rss_bytes, fmt_bytes, high_water_rss_bytes, percentile
from bench.scale import synthetic_texts

BASE_SET = "cosqa"
GIB = 1024**3
SYNTHETIC_NOTE = ("part 13's corpus is synthetic: real cosqa functions repeated with word swaps, suffixes and numbered "
                  "identifiers (bench.scale.synthetic_texts), about 350 bytes of text per document")


def write_corpus(folder: Path, base: Sequence[str], size: int, queries: Sequence[str]) -> int:
    """A BEIR folder of ``size`` synthetic documents, written line by line (never held); returns corpus.jsonl's bytes."""
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as corpus:
        for row, text in enumerate(synthetic_texts(base, size)):
            corpus.write(json.dumps({"_id": f"d{row}", "title": "", "text": text, "language": "python"}) + "\n")
    # queries and judgments only make it a BEIR folder the catalog lists: the figures never score them
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": text}) + "\n"
                                                  for i, text in enumerate(queries)), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\n", encoding="utf-8")
    return (folder / "corpus.jsonl").stat().st_size


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_size(dataset_dir: Path, workdir: Path, queries: Sequence[str], repeats: int) -> dict:
    """Store, index and query one corpus in this process; figures as a dict (RSS per stage, seconds, sizes)."""
    import random

    from core.data.corpus_store import open_corpus_store
    from core.index.lexical import open_lexical_index
    from core.retrieval.stored_search import StoredCorpus, search_stored
    from core.workspace import Workspace

    workspace = Workspace.open(workdir)
    stages: dict[str, dict] = {"start": {"rss": current_rss_bytes(), "peak_rss": high_water_rss_bytes()}}
    figures: dict = {"stages": stages, "corpus_bytes": (dataset_dir / "corpus.jsonl").stat().st_size}

    def stage(name: str) -> None:
        stages[name] = {"rss": current_rss_bytes(), "peak_rss": high_water_rss_bytes()}

    started = time.perf_counter()
    store, report = open_corpus_store(workspace, dataset_dir.name, dataset_dir)
    figures["store_s"], figures["documents"] = time.perf_counter() - started, store.num_docs
    stage("corpus stored")
    started = time.perf_counter()
    index, _ = open_lexical_index(workspace, store, "code")
    figures["bm25_build_s"] = time.perf_counter() - started
    stage("BM25 index built from the store")
    corpus = StoredCorpus(store, index, ())
    search_stored(corpus, queries[0], 10)
    seconds = {"search_s": [], "search_and_read_s": []}
    for text in queries:
        for key, call in (("search_s", lambda: index.search(text, 100)), ("search_and_read_s", lambda: search_stored(corpus, text, 10))):
            timings = []
            for _ in range(repeats):
                began = time.perf_counter()
                call()
                timings.append(time.perf_counter() - began)
            seconds[key].append(sorted(timings)[len(timings) // 2])
    figures.update(seconds)
    rng = random.Random(13)
    rows = [rng.randrange(store.num_docs) for _ in range(50)]
    ids = [doc.id for doc in store.take(rows)]
    figures["lookup_s"] = []
    for doc_id in ids[:20]:
        began = time.perf_counter()
        store.lookup([doc_id])
        figures["lookup_s"].append(time.perf_counter() - began)
    stage("queried")
    started = time.perf_counter()
    reopened, again = open_corpus_store(workspace, dataset_dir.name, dataset_dir)  # what every later command pays
    figures["store_reopen_s"] = time.perf_counter() - started
    figures["store_reused"] = again.reused
    figures["peak_rss"] = high_water_rss_bytes()
    figures["store_bytes"] = _folder_bytes(store.folder)
    figures["index_bytes"] = _folder_bytes(index.path)
    figures["skipped"] = report.skipped
    return figures


def _measures(figures: dict) -> list[Measure]:
    size = figures["documents"]
    label = f"large corpus {size:,} docs"
    how = (f"corpus.jsonl {fmt_bytes(figures['corpus_bytes'])} written in {figures['generate_s']:.0f} s "
           f"({size / figures['generate_s']:,.0f} docs/s); store {fmt_bytes(figures['store_bytes'])} on disk, "
           f"Tantivy index {fmt_bytes(figures['index_bytes'])}")
    memory = "; ".join(f"{name}: RSS {fmt_bytes(m['rss'])}, peak {fmt_bytes(m['peak_rss'])}" for name, m in figures["stages"].items())
    return [
        Measure(13, f"{label}: import into the corpus store", figures["store_s"], "s", None,
                f"{size / figures['store_s']:,.0f} docs/s (parse + check + Lance write, 64k rows at a time); {how}"),
        Measure(13, f"{label}: BM25 build streamed from the store", figures["bm25_build_s"], "s", None,
                f"{size / figures['bm25_build_s']:,.0f} docs/s (tokenise + Tantivy, one writer thread, + the term matrix written in bounded memory)"),
        Measure(13, f"{label}: BM25 query p50 (top-100)", percentile(figures["search_s"], 50) * 1000, "ms", None,
                f"p95 {percentile(figures['search_s'], 95) * 1000:.1f} ms over {len(figures['search_s'])} cosqa queries"),
        Measure(13, f"{label}: query + top-10 texts read by row, p50", percentile(figures["search_and_read_s"], 50) * 1000, "ms", None,
                f"p95 {percentile(figures['search_and_read_s'], 95) * 1000:.1f} ms; one document by id: p50 "
                f"{percentile(figures['lookup_s'], 50) * 1000:.1f} ms; reopening the checked store: {figures['store_reopen_s']:.1f} s"),
        Measure(13, f"{label}: peak RSS of the whole job", figures["peak_rss"] / GIB, "GiB", Target("<=", 4.0), memory,
                {"stages": figures["stages"]}),
    ]


def large_corpus(context, sizes: Sequence[int]) -> list[Measure]:
    """Part 13, parent side: write each corpus, then store, index and query it in a fresh process that reports its peak RSS."""
    base = context.dataset(BASE_SET)
    queries = [q.text for q in base.judged_queries[: 50 if context.quick else 100]]
    base_texts = [doc.full_text for doc in base.documents]
    context.note(SYNTHETIC_NOTE)
    measures = []
    for size in sizes:
        workdir = Path(tempfile.mkdtemp(prefix=f"codeir-bench-large-{size}-"))
        try:
            folder = workdir / "data" / f"synthetic-{size}"
            started = time.perf_counter()
            write_corpus(folder, base_texts, size, queries)
            generated = time.perf_counter() - started
            out, query_file = workdir / "figures.json", workdir / "queries.json"
            query_file.write_text(json.dumps(queries))
            command = [sys.executable, "-m", "bench.large_corpus", "--dataset-dir", str(folder), "--workdir", str(workdir / "ws"),
                       "--queries", str(query_file), "--out", str(out), "--repeats", str(min(context.repeats, 3))]
            finished = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
            if finished.returncode != 0 or not out.is_file():
                tail = (finished.stderr or finished.stdout).strip().splitlines()[-3:]
                measures.append(Measure(13, f"large corpus {size:,} docs", None, "", None,
                                        f"failed (exit {finished.returncode}): {' | '.join(tail)}"))
                continue
            figures = json.loads(out.read_text())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        figures["generate_s"] = generated
        measures.extend(_measures(figures))
    return measures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Store, index and query one corpus; report peak RSS (run by run_benchmarks.py).")
    parser.add_argument("--dataset-dir", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    figures = run_size(args.dataset_dir, args.workdir, json.loads(args.queries.read_text()), args.repeats)
    args.out.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
