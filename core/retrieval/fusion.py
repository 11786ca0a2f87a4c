"""Fusion of several ranked candidate lists into one (per query), as ranx defines the methods.

Inputs and outputs are ``Hits``: row numbers and scores, best first. A document missing from a
member's list contributes nothing to RRF, and that member's lowest normalised score under
weighted fusion (it ranked below everything the member returned).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hits:
    """One query's candidates: row numbers into the corpus and their scores, best first."""

    rows: np.ndarray
    scores: np.ndarray

    @staticmethod
    def empty() -> "Hits":
        return Hits(np.empty(0, np.int64), np.empty(0, np.float64))

    def top(self, k: int) -> "Hits":
        return Hits(self.rows[:k], self.scores[:k])


def normalize(scores: np.ndarray, method: str) -> np.ndarray:
    """Per-list score normalisation: ``minmax`` to [0, 1], ``zscore``, or ``none``."""
    scores = np.asarray(scores, dtype=np.float64)
    if method == "none" or len(scores) == 0:
        return scores
    if method == "minmax":
        low, high = scores.min(), scores.max()
        return np.ones_like(scores) if high - low < 1e-12 else (scores - low) / (high - low)
    if method == "zscore":
        std = scores.std()
        return np.zeros_like(scores) if std < 1e-12 else (scores - scores.mean()) / std
    raise ValueError(f"unknown normalization {method!r}")


def _sorted(rows: np.ndarray, scores: np.ndarray, depth: int) -> Hits:
    order = np.lexsort((rows, -scores))[:depth]
    return Hits(rows[order], scores[order])


def rrf(members: Sequence[Hits], k: int = 60, weights: Sequence[float] | None = None, depth: int = 100) -> Hits:
    """Reciprocal rank fusion: sum of weight / (k + rank) over the lists a document appears in."""
    weights = weights or [1.0] * len(members)
    rows = np.concatenate([m.rows for m in members]) if members else np.empty(0, np.int64)
    if len(rows) == 0:
        return Hits.empty()
    contributions = np.concatenate([w / (k + np.arange(1, len(m.rows) + 1)) for m, w in zip(members, weights)])
    unique, inverse = np.unique(rows, return_inverse=True)
    return _sorted(unique, np.bincount(inverse, weights=contributions), depth)


def weighted_sum(members: Sequence[Hits], weights: Sequence[float] | None = None, normalization: str = "minmax",
                 depth: int = 100) -> Hits:
    """Weighted sum of per-list normalised scores (missing documents get the list's floor)."""
    weights = list(weights or [1.0 / len(members)] * len(members))
    rows = np.concatenate([m.rows for m in members]) if members else np.empty(0, np.int64)
    if len(rows) == 0:
        return Hits.empty()
    unique = np.unique(rows)
    total = np.zeros(len(unique), dtype=np.float64)
    for member, weight in zip(members, weights):
        normalized = normalize(member.scores, normalization)
        floor = normalized.min() if len(normalized) else 0.0
        if normalization == "minmax":
            floor = 0.0
        column = np.full(len(unique), floor, dtype=np.float64)
        column[np.searchsorted(unique, member.rows)] = normalized
        total += weight * column
    return _sorted(unique, total, depth)
