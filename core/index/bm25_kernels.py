"""The compiled loops behind ``core.index.bm25_batch``: numba is imported only when a batch is scored or a term matrix built.

Importing numba costs about half a second, which every command that never scores a batch (search-corpus over a
corpus Tantivy answers, the dashboard's pages reading saved runs) would otherwise pay at start.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def place_pairs(term_ids, block_rows, counts, next_slot, rows, frequencies):
    """Counting sort's second pass: each pair to its term's next free slot, so rows stay in arrival (row) order."""
    for i in range(len(term_ids)):
        slot = next_slot[term_ids[i]]
        rows[slot] = block_rows[i]
        frequencies[slot] = counts[i]
        next_slot[term_ids[i]] = slot + 1


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


@njit(cache=True, parallel=True)
def top_k_parallel(query_indptr, query_terms, query_boosts, indptr, rows, frequencies, term_weights, norms, tiebreak, k,
                    out_rows, out_scores, counts, lanes):
    for lane in prange(lanes):
        top_k_lane(query_indptr, query_terms, query_boosts, indptr, rows, frequencies, term_weights, norms, tiebreak, k,
                    out_rows, out_scores, counts, lane, lanes)


@njit(cache=True, nogil=True)
def top_k_lane(query_indptr, query_terms, query_boosts, indptr, rows, frequencies, term_weights, norms, tiebreak, k,
                out_rows, out_scores, counts, lane, lanes):
    """Top-k of queries lane, lane + lanes, ..., with this lane's own score and heap arrays."""
    n_docs = len(norms)
    scores = np.zeros(n_docs, np.float32)
    touched = np.empty(n_docs, np.int32)
    heap_scores = np.empty(k, np.float32)
    heap_rows = np.empty(k, np.int64)
    heap_ties = np.empty(k, np.int64)
    for q in range(lane, len(query_indptr) - 1, lanes):
        start, stop = query_indptr[q], query_indptr[q + 1]
        counts[q] = _query_top_k(query_terms[start:stop], query_boosts[start:stop], indptr, rows, frequencies, term_weights,
                                 norms, tiebreak, k, scores, touched, heap_scores, heap_rows, heap_ties, out_rows[q], out_scores[q])


@njit(cache=True)
def _query_top_k(terms, boosts, indptr, rows, frequencies, term_weights, norms, tiebreak, k, scores, touched,
                 heap_scores, heap_rows, heap_ties, out_rows, out_scores):
    """Accumulate one query's scores over its terms' postings, keep the k best in a min-heap; returns how many."""
    n_touched = 0
    for j in range(len(terms)):
        term = terms[j]
        weight = term_weights[term] * boosts[j]
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
    found = size
    for i in range(size - 1, -1, -1):  # pop the worst first, filling from the back
        out_scores[i], out_rows[i] = heap_scores[0], heap_rows[0]
        size -= 1
        heap_scores[0], heap_rows[0], heap_ties[0] = heap_scores[size], heap_rows[size], heap_ties[size]
        _sift_down(heap_scores, heap_rows, heap_ties, 0, size)
    return found
