"""Batch BM25: every query of a run scored in one compiled loop, ranked as Tantivy ranks them.

Tantivy answers one query per call through Python, so a 500-query evaluation pays 500 crossings
of that boundary, one Python object per hit. Here a run is scored at once over a term-by-document
matrix of term frequencies written beside the Tantivy index when it is built (the same tokens
Tantivy indexed), the way bm25s scores, but with Tantivy's BM25 rather than its own:

* idf = ln(1 + (N - df + 0.5) / (df + 0.5)), weight = idf * (k1 + 1), times the query-term count;
* a document's length goes through Tantivy's one-byte length norm (Lucene's scheme: exact up to
  40 tokens, then coarser steps), the average length is the exact token total over N;
* float32 arithmetic, as Tantivy's ``Score``.

Rankings therefore equal Tantivy's at k1=1.2, b=0.75, up to float32 rounding (the two may sum a
document's term scores in another order) and the choice among documents tied at the cut;
``tests/index/test_bm25_batch.py`` checks every query of both bundled sets. Other k1/b values get the same
formula over every document. ``length_norm="exact"``
uses true lengths instead (as bm25s and rank_bm25 do), to see what the one-byte norm costs.

The matrix is written at any corpus size in bounded memory (``TermMatrixWriter``: pairs spilled to scratch files,
then counting-sorted by term into ``.npy`` files) and memory-mapped when read. A run's queries are shared over
numba's threads, each query scored by one thread in one fixed order, so a query ranks the same alone as in a run.
"""
from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MATRIX_ARRAYS = ("indptr", "rows", "frequencies", "lengths")
MATRIX_DTYPES = {"indptr": np.int64, "rows": np.int32, "frequencies": np.float32, "lengths": np.int64}
MATRIX_FILES = {name: f"term_matrix.{name}.npy" for name in MATRIX_ARRAYS}  # np.save each: mapped at open, never pickled
TERMS_FILE = "terms.json"
LENGTH_NORM_KINDS = ("tantivy", "exact")
SPILL_PAIRS = 1 << 21  # (term, document) pairs a TermMatrixWriter holds before appending them to its scratch files
PLACE_PAIRS = 1 << 22  # pairs read back at a time while sorting the scratch files by term


def _decode_length_norm(code: int) -> int:
    """The document length a one-byte norm code stands for (Tantivy's ``id_to_fieldnorm``)."""
    identity = 24  # codes below 24 are the length itself
    if code < identity:
        return code
    rest = code - identity
    mantissa, shift = rest & 0b111, rest >> 3
    return identity + (mantissa if shift == 0 else (mantissa | 0b1000) << (shift - 1))


NORM_TABLE = np.array([_decode_length_norm(code) for code in range(256)], dtype=np.int64)


def quantized_lengths(lengths: np.ndarray) -> np.ndarray:
    """Document lengths as Tantivy stores them: the largest norm not above the true length."""
    codes = np.searchsorted(NORM_TABLE, np.asarray(lengths, dtype=np.int64), side="right") - 1
    return NORM_TABLE[codes]


@dataclass(frozen=True)
class TermMatrix:
    """Term frequencies by term (CSR over terms): documents ``rows[indptr[t]:indptr[t+1]]`` hold term t."""

    vocabulary: dict[str, int]
    indptr: np.ndarray  # int64, one more than there are terms
    rows: np.ndarray  # int32, ascending within a term
    frequencies: np.ndarray  # float32, term count in that document
    lengths: np.ndarray  # int64 tokens per document, as indexed
    _weights: dict = field(default_factory=dict, compare=False, repr=False)  # (k1, b, length_norm) -> weights, norms

    @property
    def num_docs(self) -> int:
        return len(self.lengths)

    def bm25_weights(self, k1: float, b: float, length_norm: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-term idf * (k1 + 1) and per-document length norm, float32 as Tantivy; computed once per setting."""
        key = (float(k1), float(b), length_norm)
        if key not in self._weights:
            f32 = np.float32
            n_docs = f32(max(self.num_docs, 1))
            df = self.document_frequencies().astype(f32)
            idf = np.log(f32(1) + (n_docs - df + f32(0.5)) / (df + f32(0.5)))
            average = f32(self.lengths.sum()) / n_docs
            lengths = quantized_lengths(self.lengths) if length_norm == "tantivy" else self.lengths
            self._weights[key] = ((idf * f32(1 + k1)).astype(f32),
                                  (f32(k1) * (f32(1) - f32(b) + f32(b) * lengths.astype(f32) / average)).astype(f32))
        return self._weights[key]

    def document_frequencies(self) -> np.ndarray:
        return np.diff(self.indptr)

    def save(self, folder: Path) -> None:
        for name in MATRIX_ARRAYS:
            np.save(folder / MATRIX_FILES[name], np.asarray(getattr(self, name), MATRIX_DTYPES[name]), allow_pickle=False)
        _write_terms(folder, self.vocabulary)

    @classmethod
    def load(cls, folder: Path) -> TermMatrix:
        """The matrix in ``folder``, its arrays memory-mapped (read-only): opening a 1M-document matrix reads none of it."""
        parts = {name: np.load(folder / MATRIX_FILES[name], mmap_mode="r", allow_pickle=False) for name in MATRIX_ARRAYS}
        terms = json.loads((folder / TERMS_FILE).read_text(encoding="utf-8"))
        indptr, rows, frequencies, lengths = (parts[name] for name in MATRIX_ARRAYS)
        # the numba scorer does not check bounds: anything that could send it outside an array is refused here
        consistent = (all(parts[name].dtype == MATRIX_DTYPES[name] and parts[name].ndim == 1 for name in MATRIX_ARRAYS)
                      and isinstance(terms, list) and len(terms) + 1 == len(indptr) and indptr[0] == 0
                      and indptr[-1] == len(rows) == len(frequencies)
                      and bool(np.all(np.diff(indptr) >= 0)) and bool(np.all(frequencies > 0))
                      and (len(rows) == 0 or (int(rows.min()) >= 0 and int(rows.max()) < len(lengths))))
        if not consistent:
            raise ValueError(f"term matrix in {folder} is inconsistent")
        return cls({term: i for i, term in enumerate(terms)}, **parts)


def _write_terms(folder: Path, vocabulary: dict[str, int]) -> None:
    terms = sorted(vocabulary, key=vocabulary.__getitem__)
    (folder / TERMS_FILE).write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")


class TermMatrixBuilder:
    """Collects each document's term counts once (while the Tantivy index is written) and builds the matrix in memory.

    Memory is kept to the matrix itself: three int32 per (document, distinct term) pair while collecting,
    one counting sort to build, never one entry per token. ``TermMatrixWriter`` builds the same matrix on disk.
    """

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}
        self._term_ids = array("i")
        self._counts = array("i")
        self._distinct = array("i")  # distinct terms per document, to rebuild the document of each pair
        self._lengths = array("q")

    def add(self, tokens: Sequence[str]) -> None:
        vocabulary = self.vocabulary
        counts = Counter(tokens)
        self._term_ids.extend([vocabulary.setdefault(token, len(vocabulary)) for token in counts])
        self._counts.extend(counts.values())
        self._distinct.append(len(counts))
        self._lengths.append(len(tokens))

    def _lengths_array(self) -> np.ndarray:
        return np.frombuffer(self._lengths, dtype=np.int64).copy() if self._lengths else np.empty(0, np.int64)

    def _pairs(self, first_row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pairs collected since the last spill as (term ids, rows, counts), rows numbered from ``first_row``."""
        term_ids = np.frombuffer(self._term_ids, dtype=np.int32).copy() if self._term_ids else np.empty(0, np.int32)
        counts = np.frombuffer(self._counts, dtype=np.int32).copy() if self._counts else np.empty(0, np.int32)
        distinct = np.frombuffer(self._distinct, dtype=np.int32) if self._distinct else np.empty(0, np.int32)
        rows = np.repeat(np.arange(first_row, first_row + len(distinct), dtype=np.int32), distinct)
        return term_ids, rows, counts

    def build(self) -> TermMatrix:
        lengths = self._lengths_array()
        term_ids, rows, counts = self._pairs(0)
        n_terms = len(self.vocabulary)
        order = np.argsort(term_ids, kind="stable")  # by term; documents stay ascending within a term
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_ids, minlength=n_terms), out=indptr[1:])
        return TermMatrix(dict(self.vocabulary), indptr, rows[order], counts[order].astype(np.float32), lengths)


class TermMatrixWriter(TermMatrixBuilder):
    """Builds the term matrix of a corpus of any size on disk, in ``folder``, in bounded memory.

    Every ``spill_pairs`` (document, term) pairs are appended, as term ids, rows and counts, to three scratch files;
    ``build`` counts the pairs of each term (the CSR's indptr), then places each pair at its term's next free slot
    of the memory-mapped matrix files (a stable counting sort: documents stay ascending within a term), deletes the
    scratch files and returns the matrix mapped from disk. Memory is the vocabulary, one document length per row,
    one block of pairs and the matrix pages being filled; ~12 bytes per pair go through the scratch files.
    """

    SCRATCH = {"terms": ".term_pairs.terms", "rows": ".term_pairs.rows", "counts": ".term_pairs.counts"}

    def __init__(self, folder: Path, spill_pairs: int = SPILL_PAIRS, place_pairs: int = PLACE_PAIRS) -> None:
        super().__init__()
        self.folder = folder
        self.spill_pairs, self.place_pairs = max(1, spill_pairs), max(1, place_pairs)
        self._spilled_rows = 0
        self._spilled_pairs = 0
        for name in self.SCRATCH.values():
            (folder / name).write_bytes(b"")

    def add(self, tokens: Sequence[str]) -> None:
        super().add(tokens)
        if len(self._term_ids) >= self.spill_pairs:
            self._spill()

    def _spill(self) -> None:
        term_ids, rows, counts = self._pairs(self._spilled_rows)
        for name, values in (("terms", term_ids), ("rows", rows), ("counts", counts)):
            with (self.folder / self.SCRATCH[name]).open("ab") as scratch:
                values.tofile(scratch)
        self._spilled_rows += len(self._distinct)
        self._spilled_pairs += len(term_ids)
        for collected in (self._term_ids, self._counts, self._distinct):
            del collected[:]

    def _blocks(self, name: str):
        """The scratch file ``name`` read back in blocks of ``place_pairs`` (int32 each)."""
        path = self.folder / self.SCRATCH[name]
        for start in range(0, self._spilled_pairs, self.place_pairs):
            yield np.fromfile(path, dtype=np.int32, count=min(self.place_pairs, self._spilled_pairs - start), offset=4 * start)

    def build(self) -> TermMatrix:
        self._spill()
        n_terms, n_pairs = len(self.vocabulary), self._spilled_pairs
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        for term_ids in self._blocks("terms"):
            indptr[1:] += np.bincount(term_ids, minlength=n_terms)
        np.cumsum(indptr, out=indptr)
        np.save(self.folder / MATRIX_FILES["indptr"], indptr, allow_pickle=False)
        rows = np.lib.format.open_memmap(self.folder / MATRIX_FILES["rows"], mode="w+", dtype=np.int32, shape=(n_pairs,))
        frequencies = np.lib.format.open_memmap(self.folder / MATRIX_FILES["frequencies"], mode="w+", dtype=np.float32, shape=(n_pairs,))
        next_slot = indptr[:-1].copy()
        from core.index.bm25_kernels import place_pairs  # numba, loaded when needed

        for term_ids, block_rows, counts in zip(self._blocks("terms"), self._blocks("rows"), self._blocks("counts")):
            place_pairs(term_ids, block_rows, counts, next_slot, rows, frequencies)
        rows.flush()
        frequencies.flush()
        del rows, frequencies
        np.save(self.folder / MATRIX_FILES["lengths"], self._lengths_array(), allow_pickle=False)
        _write_terms(self.folder, self.vocabulary)
        for name in self.SCRATCH.values():
            (self.folder / name).unlink()
        return TermMatrix.load(self.folder)


@dataclass(frozen=True)
class BatchHits:
    """Top-k per query: ``rows[i, :counts[i]]`` best first, their ``scores``; rows past a count are -1."""

    rows: np.ndarray
    scores: np.ndarray
    counts: np.ndarray

    def query(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        n = int(self.counts[i])
        return self.rows[i, :n], self.scores[i, :n]


def bm25_top_k(matrix: TermMatrix, queries: Sequence[Counter[str]], k: int, k1: float = 1.2, b: float = 0.75,
               tiebreak: np.ndarray | None = None, length_norm: str = "tantivy") -> BatchHits:
    """Top-k documents for each query (terms with their counts), scored with Tantivy's BM25 at k1/b.

    Equal scores are ordered by ``tiebreak`` (a rank per document, lower first; default: row order).
    Documents sharing no term with a query are not returned, as in Tantivy. ``length_norm`` is
    "tantivy" (lengths through the one-byte norm) or "exact".
    """
    if length_norm not in LENGTH_NORM_KINDS:
        raise ValueError(f"length_norm must be one of {', '.join(LENGTH_NORM_KINDS)}, not {length_norm!r}")
    if not (k1 >= 0 and 0 <= b <= 1):  # the scorer relies on every term score being > 0
        raise ValueError(f"k1 must be >= 0 and b in [0, 1], got k1={k1}, b={b}")
    k = max(0, min(int(k), matrix.num_docs))
    query_indptr, query_terms, query_boosts = [0], [], []
    for terms in queries:
        for term, count in terms.items():
            term_id = matrix.vocabulary.get(term)
            if term_id is not None:
                query_terms.append(term_id)
                query_boosts.append(count)
        query_indptr.append(len(query_terms))
    term_weights, norms = matrix.bm25_weights(k1, b, length_norm)
    if tiebreak is None:
        tiebreak = np.arange(matrix.num_docs, dtype=np.int64)
    n_queries = len(query_indptr) - 1
    rows = np.full((n_queries, k), -1, np.int64)
    scores = np.zeros((n_queries, k), np.float32)
    counts = np.zeros(n_queries, np.int64)
    arguments = (np.asarray(query_indptr, np.int64), np.asarray(query_terms, np.int64), np.asarray(query_boosts, np.float32),
                 matrix.indptr, matrix.rows, matrix.frequencies, term_weights, norms, np.asarray(tiebreak, np.int64), k,
                 rows, scores, counts)
    # queries are shared out over numba's threads (NUMBA_NUM_THREADS, default one per core), each scored by one thread
    # alone in the same order of operations, so a query ranks the same in a run as alone. One query stays on this
    # thread: waking a second one costs tens of milliseconds on a busy machine.
    from numba import get_num_threads

    from core.index.bm25_kernels import top_k_lane, top_k_parallel  # numba, loaded when a batch is scored

    lanes = min(n_queries, get_num_threads())
    if lanes > 1:
        top_k_parallel(*arguments, lanes)
    else:
        top_k_lane(*arguments, 0, 1)
    return BatchHits(rows, scores, counts)
