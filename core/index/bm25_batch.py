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
"""
from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

MATRIX_FILE, TERMS_FILE = "term_matrix.npz", "terms.json"
LENGTH_NORM_KINDS = ("tantivy", "exact")


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
        np.savez(folder / MATRIX_FILE, indptr=self.indptr, rows=self.rows, frequencies=self.frequencies, lengths=self.lengths)
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        (folder / TERMS_FILE).write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> TermMatrix:
        with np.load(folder / MATRIX_FILE) as arrays:
            parts = {name: arrays[name] for name in ("indptr", "rows", "frequencies", "lengths")}
        terms = json.loads((folder / TERMS_FILE).read_text(encoding="utf-8"))
        indptr, rows, frequencies, lengths = (parts[name] for name in ("indptr", "rows", "frequencies", "lengths"))
        # the numba scorer does not check bounds: anything that could send it outside an array is refused here
        consistent = (len(terms) + 1 == len(indptr) and indptr[0] == 0 and indptr[-1] == len(rows) == len(frequencies)
                      and bool(np.all(np.diff(indptr) >= 0)) and bool(np.all(frequencies > 0))
                      and (len(rows) == 0 or (int(rows.min()) >= 0 and int(rows.max()) < len(lengths))))
        if not consistent:
            raise ValueError(f"term matrix in {folder} is inconsistent")
        return cls({term: i for i, term in enumerate(terms)}, **parts)


class TermMatrixBuilder:
    """Collects each document's term counts once (while the Tantivy index is written) and builds the matrix.

    Memory is kept to the matrix itself: three int32 per (document, distinct term) pair while collecting,
    one counting sort to build, never one entry per token.
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

    def build(self) -> TermMatrix:
        lengths = np.frombuffer(self._lengths, dtype=np.int64).copy() if self._lengths else np.empty(0, np.int64)
        n_docs, n_terms = len(lengths), len(self.vocabulary)
        term_ids = np.frombuffer(self._term_ids, dtype=np.int32) if self._term_ids else np.empty(0, np.int32)
        counts = np.frombuffer(self._counts, dtype=np.int32) if self._counts else np.empty(0, np.int32)
        distinct = np.frombuffer(self._distinct, dtype=np.int32) if self._distinct else np.empty(0, np.int32)
        order = np.argsort(term_ids, kind="stable")  # by term; documents stay ascending within a term
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_ids, minlength=n_terms), out=indptr[1:])
        rows = np.repeat(np.arange(n_docs, dtype=np.int32), distinct)[order]
        return TermMatrix(dict(self.vocabulary), indptr, rows, counts[order].astype(np.float32), lengths)


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
    rows, scores, counts = _top_k(np.asarray(query_indptr, np.int64), np.asarray(query_terms, np.int64),
                                  np.asarray(query_boosts, np.float32), matrix.indptr, matrix.rows, matrix.frequencies,
                                  term_weights, norms, np.asarray(tiebreak, np.int64), k)
    return BatchHits(rows, scores, counts)


@njit(cache=True, inline="always")
def _ranks_below(score_a, tie_a, score_b, tie_b):
    """Whether a ranks below b: a lower score, or the same score and a later tie rank."""
    return score_a < score_b or (score_a == score_b and tie_a > tie_b)


@njit(cache=True, inline="always")
def _swap(heap_scores, heap_rows, heap_ties, i, j):
    heap_scores[i], heap_scores[j] = heap_scores[j], heap_scores[i]
    heap_rows[i], heap_rows[j] = heap_rows[j], heap_rows[i]
    heap_ties[i], heap_ties[j] = heap_ties[j], heap_ties[i]


@njit(cache=True)
def _sift_down(heap_scores, heap_rows, heap_ties, position, size):
    while True:
        child = 2 * position + 1
        if child >= size:
            return
        right = child + 1
        if right < size and _ranks_below(heap_scores[right], heap_ties[right], heap_scores[child], heap_ties[child]):
            child = right
        if not _ranks_below(heap_scores[child], heap_ties[child], heap_scores[position], heap_ties[position]):
            return
        _swap(heap_scores, heap_rows, heap_ties, position, child)
        position = child


@njit(cache=True, nogil=True)
def _top_k(query_indptr, query_terms, query_boosts, indptr, rows, frequencies, term_weights, norms, tiebreak, k):
    """Accumulate each query's scores over its terms' postings, then keep the k best in a min-heap."""
    n_queries, n_docs = len(query_indptr) - 1, len(norms)
    out_rows = np.full((n_queries, k), -1, np.int64)
    out_scores = np.zeros((n_queries, k), np.float32)
    counts = np.zeros(n_queries, np.int64)
    scores = np.zeros(n_docs, np.float32)
    touched = np.empty(n_docs, np.int64)
    heap_scores = np.empty(k, np.float32)
    heap_rows = np.empty(k, np.int64)
    heap_ties = np.empty(k, np.int64)
    for q in range(n_queries):
        n_touched = 0
        for j in range(query_indptr[q], query_indptr[q + 1]):
            term = query_terms[j]
            weight = term_weights[term] * query_boosts[j]
            for p in range(indptr[term], indptr[term + 1]):
                row = rows[p]
                if scores[row] == 0:  # every term score is > 0, so zero means not seen yet
                    touched[n_touched] = row
                    n_touched += 1
                frequency = frequencies[p]
                scores[row] += weight * (frequency / (frequency + norms[row]))  # Tantivy's order of operations
        size = 0
        for i in range(n_touched):
            row = touched[i]
            score = scores[row]
            scores[row] = 0
            tie = tiebreak[row]
            if size < k:
                position = size
                size += 1
                heap_scores[position], heap_rows[position], heap_ties[position] = score, row, tie
                while position > 0:
                    parent = (position - 1) // 2
                    if not _ranks_below(heap_scores[position], heap_ties[position], heap_scores[parent], heap_ties[parent]):
                        break
                    _swap(heap_scores, heap_rows, heap_ties, position, parent)
                    position = parent
            elif k > 0 and _ranks_below(heap_scores[0], heap_ties[0], score, tie):
                heap_scores[0], heap_rows[0], heap_ties[0] = score, row, tie
                _sift_down(heap_scores, heap_rows, heap_ties, 0, size)
        counts[q] = size
        for i in range(size - 1, -1, -1):  # pop the worst first, filling from the back
            out_scores[q, i], out_rows[q, i] = heap_scores[0], heap_rows[0]
            size -= 1
            heap_scores[0], heap_rows[0], heap_ties[0] = heap_scores[size], heap_rows[size], heap_ties[size]
            _sift_down(heap_scores, heap_rows, heap_ties, 0, size)
    return out_rows, out_scores, counts
