"""Fusion weights tuned on held-out queries: never on the queries they are reported on.

The judged queries are split into ``FOLDS`` folds by a hash of their id (``query_fold``: deterministic,
independent of order, of the other queries and of the run). Each fold is scored with the weights that
maximised mean nDCG@10 on the other folds (cross-fitting), so every reported query was ranked with
weights chosen without it, and every judged query still has a ranking (runs stay paired with other
profiles' runs for significance tests). A query that is not a judged benchmark query (a pasted one)
gets the weights tuned on all judged queries. The grid gives the first member w and the second 1 - w.

The objective is nDCG@10 exactly as ``core.evaluation.metrics`` computes it (linear gain, trec_eval's
``ndcg_cut``); it lives here because retrieval sits below evaluation, and
``tests/retrieval/test_tuning.py`` checks the two agree.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.retrieval.fusion import Hits

FOLDS = 2
WEIGHT_GRID = tuple(round(i / 10, 10) for i in range(11))
TUNING_CUTOFF = 10
FOLD_RULE = f"fold = first 8 bytes of sha256(query id, UTF-8) as a big-endian integer, mod {FOLDS}"


def query_fold(query_id: str, folds: int = FOLDS) -> int:
    """The fold of a query: a hash of its id alone."""
    digest = hashlib.sha256(query_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % folds


def ndcg_at(rows: np.ndarray, gains: Mapping[int, float], k: int = TUNING_CUTOFF) -> float:
    """nDCG@k of one ranking (row numbers, best first) against graded judgments (row -> grade)."""
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gained = np.array([max(gains.get(int(row), 0.0), 0.0) for row in rows[:k]], dtype=np.float64)
    return float(gained @ discounts[:len(gained)] / (np.asarray(ideal, dtype=np.float64) @ discounts[:len(ideal)]))


@dataclass(frozen=True)
class TunedWeights:
    """Weights chosen on some queries and the mean nDCG@10 they reached there."""

    weights: tuple[float, ...]
    tuned_on: int          # how many queries chose them
    score: float           # their mean nDCG@10 on those queries (nan when none: the profile's own weights)


def best_weights(candidate_lists: Sequence[Sequence[Hits]], gains: Sequence[Mapping[int, float]],
                 fuse: Callable[[Sequence[Hits], tuple[float, ...]], Hits], fallback: tuple[float, ...],
                 grid: Sequence[float] = WEIGHT_GRID) -> TunedWeights:
    """The grid point with the best mean nDCG@10 over the given queries; ties go to the one nearest ``fallback``.

    ``candidate_lists[i]`` are query i's member lists, ``gains[i]`` its judgments; ``fuse`` returns the fused,
    trec-ordered ranking. With no queries the fallback weights stand.
    """
    if not candidate_lists:
        return TunedWeights(tuple(fallback), 0, float("nan"))
    best: tuple[float, float, tuple[float, ...]] | None = None
    for w in grid:
        weights = (float(w), round(1.0 - float(w), 10))
        mean = float(np.mean([ndcg_at(fuse(lists, weights).rows, judged) for lists, judged in zip(candidate_lists, gains)]))
        distance = abs(weights[0] - fallback[0]) if fallback else 0.0
        if best is None or (round(mean, 12), -distance) > (round(best[0], 12), -best[1]):
            best = (mean, distance, weights)
    return TunedWeights(best[2], len(candidate_lists), best[0])


@dataclass(frozen=True)
class FoldTuning:
    """Weights per fold (each chosen on the other folds) and for queries outside the benchmark."""

    folds: tuple[TunedWeights, ...]
    others: TunedWeights
    fold_of: Mapping[str, int]

    def weights_for(self, query_id: str) -> tuple[float, ...]:
        fold = self.fold_of.get(query_id)
        return self.others.weights if fold is None else self.folds[fold].weights

    def record(self, query_ids: Sequence[str]) -> dict:
        """What a run stores: the rule, each fold's weights and dev score, and the fold of each of its queries."""
        return {"rule": FOLD_RULE, "metric": f"ndcg@{TUNING_CUTOFF}", "grid": list(WEIGHT_GRID),
                "folds": [{"fold": f, "weights": list(t.weights), "tuned_on_queries": t.tuned_on,
                           "tuned_on": f"the judged queries of the other fold{'s' if FOLDS > 2 else ''}",
                           "dev_score": None if np.isnan(t.score) else round(t.score, 6)} for f, t in enumerate(self.folds)],
                "other_queries": {"weights": list(self.others.weights), "tuned_on_queries": self.others.tuned_on,
                                  "tuned_on": "all judged queries"},
                "fold_of_query": {qid: self.fold_of[qid] for qid in query_ids if qid in self.fold_of}}


def tune_by_folds(query_ids: Sequence[str], candidate_lists: Sequence[Sequence[Hits]],
                  gains: Sequence[Mapping[int, float]], fuse: Callable[[Sequence[Hits], tuple[float, ...]], Hits],
                  fallback: tuple[float, ...]) -> FoldTuning:
    """Cross-fitted weights for the judged queries ``query_ids`` (with their member lists and judgments)."""
    fold_of = {qid: query_fold(qid) for qid in query_ids}
    folds = []
    for fold in range(FOLDS):
        dev = [i for i, qid in enumerate(query_ids) if fold_of[qid] != fold]
        folds.append(best_weights([candidate_lists[i] for i in dev], [gains[i] for i in dev], fuse, fallback))
    others = best_weights(candidate_lists, gains, fuse, fallback)
    return FoldTuning(tuple(folds), others, fold_of)
