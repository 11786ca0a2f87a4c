"""BM25 over a Tantivy index of pre-analysed text.

Documents are tokenised by our analyzer (``core.index.analyzers``) and indexed as whitespace-joined
tokens, so Tantivy and the query side see the same terms. Queries are built from tokens as term
queries, never handed to Tantivy's query parser: quotes, colons, ``AND`` or ``*`` in pasted code
are searched as text, not parsed.

Which scorer answers depends on the corpus, never on how many queries are asked, so a query pasted
into the explorer is ranked exactly as the same query in a run: up to ``BATCH_SCORER_MAX_DOCS``
documents, ``core.index.bm25_batch`` scores over the term matrix written beside the Tantivy index at build
time (Tantivy's formula and length norms, tested equal to Tantivy's rankings); above that, Tantivy
answers at its own k1=1.2, b=0.75, where its pruning makes a run faster. Other k1/b values, or exact lengths,
always use the batch scorer, at every corpus size: the matrix is written for every index, in bounded memory.
Both scorers share a run's queries over ``numba.get_num_threads()`` threads, each query on one thread alone.

A build reads its corpus as a stream (``Corpus.iter_documents``): a loaded ``Dataset`` and a ``CorpusStore``
on disk go through the same loop, and the store's build holds one batch of documents at a time.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import tantivy

from core.index.analyzers import Analyzer, get_analyzer
from core.index.bm25_batch import TermMatrix, TermMatrixWriter, bm25_top_k
from core.data.corpus_store import Corpus
from core.errors import IndexCorruptError
from core.progress import ItemProgress
from core.workspace import Workspace, replace_folder, slug

TANTIVY_K1, TANTIVY_B = 1.2, 0.75
SCORERS = ("tantivy", "batch")
BODY, ROW = "body", "row"
INFO_FILE = "codeir-index.json"
FORMAT_VERSION = 4  # 2: the info file lists every index file with its size and CRC-32; 3: term matrix; 4: as .npy files, every size
MAX_QUERY_TERMS = 1024  # a 1 MB paste still answers in milliseconds; the most frequent terms are kept
# Above this many documents Tantivy's pruning (block-max WAND) beats scoring every posting on a whole run: measured
# on 1,000-query runs at 100k and 1M documents, natural-language and code queries alike (docs/benchmarks.md, part 15).
BATCH_SCORER_MAX_DOCS = 100_000


@dataclass(frozen=True)
class LexicalHits:
    """Rows (document positions in the dataset) and BM25 scores, best first."""

    rows: np.ndarray
    scores: np.ndarray


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field(ROW, stored=True, indexed=False, fast=True)
    builder.add_text_field(BODY, stored=False, tokenizer_name="whitespace", index_option="freq")
    return builder.build()


def index_path(workspace: Workspace, corpus: Corpus, analyzer: str) -> Path:
    """Named by the corpus content hash: a loaded dataset and its corpus store share one index."""
    return workspace.lexical_dir / slug(corpus.name) / f"{analyzer}-{corpus.corpus_hash[:16]}"


class LexicalIndex:
    """An open Tantivy index for one (dataset, analyzer); search is read-only and thread-safe."""

    def __init__(self, path: Path, analyzer: Analyzer):
        self.path = path
        self.analyzer = analyzer
        self.index = tantivy.Index.open(str(path))
        self.schema = self.index.schema
        self.searcher = self.index.searcher()
        self.num_docs = self.searcher.num_docs
        self.batch_max_docs = BATCH_SCORER_MAX_DOCS  # where the batch scorer answers at k1=1.2, b=0.75 (``scorer()``)

    def query_terms(self, text: str) -> Counter[str]:
        """Query terms with their counts, capped at the most frequent MAX_QUERY_TERMS."""
        counts = self.analyzer.term_counts(text)
        if len(counts) > MAX_QUERY_TERMS:
            counts = Counter(dict(counts.most_common(MAX_QUERY_TERMS)))
        return counts

    def _query(self, terms: Counter[str]) -> tantivy.Query:
        clauses = []
        for term, count in terms.items():
            query = tantivy.Query.term_query(self.schema, BODY, term)
            if count > 1:  # a term repeated in the query counts once per occurrence, as in Lucene
                query = tantivy.Query.boost_query(query, float(count))
            clauses.append((tantivy.Occur.Should, query))
        return tantivy.Query.boolean_query(clauses)

    def search(self, text: str, k: int = 100) -> LexicalHits:
        """Top-k documents for a query text at Tantivy's BM25 (k1=1.2, b=0.75)."""
        return self.search_terms(self.query_terms(text), k)

    def search_terms(self, terms: Counter[str], k: int) -> LexicalHits:
        if not terms or k <= 0:
            return LexicalHits(np.empty(0, np.int64), np.empty(0, np.float32))
        result = self.searcher.search(self._query(terms), limit=k, count=False)
        hits = result.hits
        if not hits:
            return LexicalHits(np.empty(0, np.int64), np.empty(0, np.float32))
        scores, addresses = zip(*hits)  # one C-level pass; two comprehensions cost a third of the search time
        rows = self.searcher.fast_field_values(ROW, addresses)
        return LexicalHits(np.array(rows, dtype=np.int64), np.array(scores, dtype=np.float32))

    @cached_property
    def term_matrix(self) -> TermMatrix:
        """The term-frequency matrix for the batch scorer, memory-mapped (checked on open where it answers, else on first use)."""
        try:
            matrix = TermMatrix.load(self.path)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"Term matrix of the lexical index at {self.path} cannot be read ({exc}).") from exc
        if matrix.num_docs != self.num_docs:
            raise IndexCorruptError(f"Term matrix at {self.path} holds {matrix.num_docs} documents, expected {self.num_docs}.")
        return matrix

    def scorer(self, k1: float = TANTIVY_K1, b: float = TANTIVY_B, length_norm: str = "tantivy") -> str:
        """Which scorer answers this corpus at these settings: "tantivy" or "batch" (see the module docstring)."""
        tantivy_scoring = math.isclose(k1, TANTIVY_K1) and math.isclose(b, TANTIVY_B) and length_norm == "tantivy"
        return "tantivy" if tantivy_scoring and self.num_docs > self.batch_max_docs else "batch"

    def search_many(self, texts: Sequence[str], k: int, k1: float = TANTIVY_K1, b: float = TANTIVY_B,
                    tiebreak: np.ndarray | None = None, length_norm: str = "tantivy", scorer: str | None = None) -> list[LexicalHits]:
        """Top-k per query text at BM25(k1, b), by ``scorer`` (default: the one that answers this corpus, ``scorer()``).

        Hits come best first, equal scores ordered by ``tiebreak`` (a rank per row, lower first; default: row order).
        """
        scorer = scorer or self.scorer(k1, b, length_norm)
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, not {scorer!r}")
        if scorer == "tantivy":
            if not (math.isclose(k1, TANTIVY_K1) and math.isclose(b, TANTIVY_B) and length_norm == "tantivy"):
                raise ValueError(f"Tantivy scores only at k1={TANTIVY_K1}, b={TANTIVY_B} with its own length norm")
            return self._search_many_by_tantivy(texts, k, tiebreak)
        found = bm25_top_k(self.term_matrix, [self.query_terms(text) for text in texts], k, k1, b, tiebreak, length_norm)
        return [LexicalHits(*found.query(i)) for i in range(len(texts))]

    def _search_many_by_tantivy(self, texts: Sequence[str], k: int, tiebreak: np.ndarray | None) -> list[LexicalHits]:
        """One Tantivy search per query, on as many threads as the batch scorer uses (Tantivy searches without the GIL)."""
        def ranked(text: str) -> LexicalHits:
            hits = self.search(text, k)
            ties = hits.rows if tiebreak is None else tiebreak[hits.rows]
            order = np.lexsort((ties, -hits.scores))
            return LexicalHits(hits.rows[order], hits.scores[order])

        if len(texts) <= 1:  # one pasted query: no pool, and no numba import to learn its thread count
            return [ranked(text) for text in texts]
        from numba import get_num_threads

        threads = min(len(texts), get_num_threads())
        if threads <= 1:
            return [ranked(text) for text in texts]
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(ranked, texts))

    def search_bm25(self, text: str, k: int, k1: float, b: float, length_norm: str = "tantivy") -> LexicalHits:
        """One query at any k1/b and length norm."""
        return self.search_many([text], k, k1, b, length_norm=length_norm)[0]


def _write_index(path: Path, corpus: Corpus, analyzer: Analyzer, progress: ItemProgress | None) -> None:
    """Tokenise each document once, as the corpus streams by, into Tantivy and the batch scorer's term matrix.

    Memory is Tantivy's writer heap, the matrix's vocabulary and one chunk of its pairs (``TermMatrixWriter`` keeps the
    rest on disk): the documents themselves are only held as long as the corpus holds them (a loaded dataset) or one
    batch (a corpus store).
    """
    path.mkdir(parents=True)
    index = tantivy.Index(_schema(), path=str(path))
    writer = index.writer(heap_size=128_000_000, num_threads=1)
    total = corpus.num_docs
    matrix = TermMatrixWriter(path)
    step = max(1, total // 50)
    row = -1
    for row, doc in enumerate(corpus.iter_documents()):
        tokens = analyzer.tokenize(doc.full_text)
        matrix.add(tokens)
        document = tantivy.Document()
        document.add_unsigned(ROW, row)
        document.add_text(BODY, " ".join(tokens))
        writer.add_document(document)
        if progress and row % step == 0:
            progress("tokenize", row, total)
    if row + 1 != total:
        raise IndexCorruptError(f"The corpus of {corpus.name} yielded {row + 1:,} documents where {total:,} were expected.")
    if progress:
        progress("tokenize", total, total)
        progress("commit", 0, 1)
    writer.commit()
    writer.wait_merging_threads()
    matrix.build()
    if progress:
        progress("commit", 1, 1)


def _file_checksums(path: Path) -> dict[str, list]:
    """Size and CRC-32 of every index file (dotfiles such as Tantivy's lock files left out).

    Tantivy notices a missing or truncated segment file, but not a damaged byte inside one: that
    panics mid-search or silently changes scores. Checking these on open turns both into a rebuild.
    """
    checksums = {}
    for file in sorted(path.iterdir()):
        if file.name.startswith(".") or file.name == INFO_FILE or not file.is_file():
            continue
        crc = 0
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                crc = zlib.crc32(block, crc)
        checksums[file.name] = [file.stat().st_size, f"{crc:08x}"]
    return checksums


def _read_info(path: Path) -> dict | None:
    try:
        return json.loads((path / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


def open_checked_index(path: Path, analyzer: Analyzer, corpus: Corpus) -> LexicalIndex:
    """Open an index and check it matches what its info file promises; raise IndexCorruptError if not."""
    info = _read_info(path)
    expected = {"analyzer": analyzer.name, "corpus_hash": corpus.corpus_hash, "num_docs": corpus.num_docs, "format": FORMAT_VERSION}
    if info is None or any(info.get(key) != value for key, value in expected.items()):
        raise IndexCorruptError(f"Lexical index at {path} is incomplete or stale.")
    try:
        if info.get("files") != _file_checksums(path):
            raise IndexCorruptError(f"Lexical index at {path} has missing or damaged files.")
        index = LexicalIndex(path, analyzer)
        if index.num_docs != corpus.num_docs:
            raise IndexCorruptError(f"Lexical index at {path} holds {index.num_docs} documents, expected {corpus.num_docs}.")
        index.search("probe", 1)  # reads the term dictionary and postings of one segment at least
        if index.num_docs <= index.batch_max_docs:
            # the scorer that answers this corpus: its matrix read and checked, its compiled code loaded (numba's
            # cache takes ~0.7 s the first time in a process), now rather than on a user's first query
            index.search_many(["probe"], 1)
    except IndexCorruptError:
        raise
    except Exception as exc:  # tantivy raises ValueError/OSError on damaged segments
        raise IndexCorruptError(f"Lexical index at {path} cannot be read ({exc}). "
                                f"Rebuild it with `python -m core index --dataset {corpus.name} --rebuild`.") from exc
    return index


@dataclass(frozen=True)
class BuildReport:
    """What opening an index cost: reused or built, and how long it took."""

    what: str
    reused: bool
    seconds: float
    items: int
    damage: str = ""  # why the index on disk failed its check, when this build replaced a damaged one
    cached: int = 0  # embeddings only: vectors taken from the embedding cache instead of encoded

    def __str__(self) -> str:
        if self.reused:
            return f"{self.what}: reused"
        verb = "rebuilt" if self.damage else "built"
        done = f"{verb} in {self.seconds:.1f}s ({self.items / max(self.seconds, 1e-9):,.0f} docs/s)"
        if self.cached:
            done += f", {self.cached:,} of {self.items:,} vectors from the embedding cache"
        return f"{self.what}: {done}" + (f"; damage found: {self.damage}" if self.damage else "")


def open_lexical_index(workspace: Workspace, corpus: Corpus, analyzer_name: str = "code", rebuild: bool = False,
                       progress: ItemProgress | None = None) -> tuple[LexicalIndex, BuildReport]:
    """Open the (corpus, analyzer) index, building it first when missing, stale or damaged.

    Builds are atomic and serialised: a lock keeps two processes from building the same index,
    the new index is written to a temporary folder and renamed into place, so a build killed half
    way leaves the previous state untouched and the next call simply builds again.
    """
    analyzer = get_analyzer(analyzer_name)
    path = index_path(workspace, corpus, analyzer.name)
    what = f"BM25 index ({analyzer.name}) for {corpus.name}"
    started = time.perf_counter()
    damage = ""
    if not rebuild:
        try:
            return open_checked_index(path, analyzer, corpus), BuildReport(what, True, time.perf_counter() - started, corpus.num_docs)
        except IndexCorruptError:
            pass
    with workspace.lock(f"lexical-{corpus.name}-{analyzer.name}"):
        if not rebuild:  # another process may have finished the build while we waited for the lock
            try:
                return open_checked_index(path, analyzer, corpus), BuildReport(what, True, time.perf_counter() - started, corpus.num_docs)
            except IndexCorruptError as exc:
                damage = str(exc) if path.exists() else ""  # no folder at all: a first build, not a repair
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        # leftovers of killed builds: temp folders, and old copies when a kill fell inside replace_folder's two renames
        for stale in [*path.parent.glob(f".{path.name}.tmp-*"), *path.parent.glob(f".replaced-{path.name}-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        _write_index(tmp, corpus, analyzer, progress)
        (tmp / INFO_FILE).write_text(json.dumps({"analyzer": analyzer.name, "corpus_hash": corpus.corpus_hash,
                                                 "num_docs": corpus.num_docs, "format": FORMAT_VERSION,
                                                 "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                 "files": _file_checksums(tmp)}))
        replace_folder(tmp, path)
        index = open_checked_index(path, analyzer, corpus)
    return index, BuildReport(what, False, time.perf_counter() - started, corpus.num_docs, damage)
