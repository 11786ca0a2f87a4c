"""Two runs side by side: which queries they disagree on, and how their top-k lists differ.

Like diffir, the aim is to point at the few queries worth reading. Four measures rank them: the size
of the nDCG@10 difference, how far the best positive moved, and two rank correlations between the
top-k lists (Kendall's tau over the documents both lists hold, and rank-biased overlap, Webber,
Moffat & Zobel 2010, extrapolated, p = 0.9). For one query, ``side_by_side`` gives both lists with
each document's movement ("↑3", "↓12", "new in B", "dropped") and its relevance grade.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.datasets import Dataset, Qrels
from core.errors import MetricError
from core.evaluation.compare import query_preview
from core.evaluation.metrics import POSITIVE_RANK, evaluate
from core.retrieval.runs import Run

RBO_P = 0.9
TOP_K = 10
NDCG = "ndcg@10"
# measure key -> (label, sort ascending?): the most interesting query comes first
MEASURES = {
    "ndcg_gap": ("|Δ nDCG@10|", False),
    "positive_move": ("positive's rank movement", False),
    "tau": ("Kendall's τ of the top-k (lowest first)", True),
    "rbo": ("RBO p=0.9 of the top-k (lowest first)", True),
}


class RunMismatchError(MetricError):
    """Two runs cannot be compared (different datasets or corpora), or a run does not fit the dataset."""


def kendall_tau(list_a: Sequence[str], list_b: Sequence[str]) -> float:
    """Kendall's tau between two ranked lists over the documents both hold; NaN when fewer than two are shared.

    Ranks are distinct inside a list, so tau-a and tau-b agree (scipy's ``kendalltau`` gives the same value).
    """
    position_b = {doc: rank for rank, doc in enumerate(list_b)}
    shared = [(rank, position_b[doc]) for rank, doc in enumerate(list_a) if doc in position_b]
    n = len(shared)
    if n < 2:
        return math.nan
    ranks_b = np.array([b for _, b in shared])  # already ordered by the rank in A
    upper = np.triu_indices(n, k=1)
    signs = np.sign(ranks_b[upper[1]] - ranks_b[upper[0]])
    return float(signs.sum() / (n * (n - 1) / 2))


def rbo(list_a: Sequence[str], list_b: Sequence[str], p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap of two lists (Webber et al. 2010, eq. 32, uneven lengths allowed).

    1 for identical lists, 0 for disjoint ones; ``p`` is the persistence (0.9: the top 10 carry ~86% of the weight).
    """
    if not 0 < p < 1:
        raise MetricError(f"RBO persistence p={p!r} must lie strictly between 0 and 1.")
    short, long = (list(list_a), list(list_b)) if len(list_a) <= len(list_b) else (list(list_b), list(list_a))
    s, l = len(short), len(long)
    if l == 0:
        return 1.0  # two empty lists agree on everything they show
    if s == 0:
        return 0.0
    seen_short, seen_long = set(), set()
    overlap = 0
    overlaps = np.zeros(l + 1)
    for depth in range(1, l + 1):
        item_long = long[depth - 1]
        if depth <= s:
            item_short = short[depth - 1]
            if item_short == item_long:
                overlap += 1
            else:
                overlap += (item_short in seen_long) + (item_long in seen_short)
            seen_short.add(item_short)
        else:
            overlap += item_long in seen_short
        seen_long.add(item_long)
        overlaps[depth] = overlap
    depths = np.arange(1, l + 1)
    weights = p ** depths
    total = float(np.sum(overlaps[1:] / depths * weights))
    tail = depths > s
    total += float(np.sum(overlaps[s] * (depths[tail] - s) / (s * depths[tail]) * weights[tail]))
    x_s, x_l = overlaps[s], overlaps[l]
    return (1 - p) / p * total + ((x_l - x_s) / l + x_s / s) * p ** l


def check_comparable(run_a: Run, run_b: Run, dataset: Dataset) -> list[str]:
    """Refuse runs of another dataset or corpus; return warnings for queries a run lacks or does not know."""
    for run in (run_a, run_b):
        if run.dataset and run.dataset != dataset.name:
            raise RunMismatchError(f"Run {run.name!r} was made on dataset {run.dataset!r}, not {dataset.name!r}: "
                                   "pick two runs of the same dataset.")
        corpus = run.meta.get("corpus_hash")
        if corpus and corpus != dataset.corpus_hash:
            raise RunMismatchError(f"Run {run.name!r} was made on another version of {dataset.name!r}'s corpus: "
                                   "evaluate its profile again.")
    warnings = []
    judged = [q.id for q in dataset.judged_queries]
    for run in (run_a, run_b):
        missing = [q for q in judged if not run.ranking(q).doc_ids]
        if len(missing) == len(judged):
            raise RunMismatchError(f"Run {run.name!r} has no ranking for any judged query of {dataset.name!r}: "
                                   "its query ids do not match the dataset's.")
        if missing:
            warnings.append(f"Run {run.name!r} has no ranking for {len(missing)} of {len(judged)} judged queries "
                            f"(e.g. {', '.join(missing[:3])}); they score 0.")
        unknown = [q for q in run.rankings if q not in dataset.query_index]
        if unknown:
            warnings.append(f"Run {run.name!r} ranks {len(unknown)} queries the dataset does not have "
                            f"(e.g. {', '.join(unknown[:3])}); they are left out.")
    return warnings


def query_diffs(dataset: Dataset, run_a: Run, run_b: Run, k: int = TOP_K, p: float = RBO_P) -> pd.DataFrame:
    """One row per judged query: preview, nDCG@10 of A and B, positive ranks, their movement, tau and RBO of the top k.

    Columns: query, ndcg_a, ndcg_b, delta (B − A), ndcg_gap (|delta|), rank_a, rank_b (NaN: not retrieved),
    positive_move (rank_a − rank_b, "not retrieved" counted as one below the run's depth; positive: B ranks it
    higher), tau, rbo. Runs are checked with ``check_comparable`` first.
    """
    check_comparable(run_a, run_b, dataset)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise MetricError(f"k={k!r} must be a whole number >= 1.")
    a = evaluate(dataset.qrels, run_a, [NDCG]).per_query
    b = evaluate(dataset.qrels, run_b, [NDCG]).per_query.reindex(a.index)
    ids = list(a.index)
    frame = pd.DataFrame(index=pd.Index(ids, name="query_id", dtype=object))
    frame["query"] = [query_preview(dataset.query(q).text) if q in dataset.query_index else "" for q in ids]
    frame["ndcg_a"] = a[NDCG].to_numpy(float)
    frame["ndcg_b"] = b[NDCG].to_numpy(float)
    frame["delta"] = frame["ndcg_b"] - frame["ndcg_a"]
    frame["ndcg_gap"] = frame["delta"].abs()
    frame["rank_a"] = a[POSITIVE_RANK].to_numpy(float)
    frame["rank_b"] = b[POSITIVE_RANK].to_numpy(float)
    floor_a, floor_b = run_a.depth + 1, run_b.depth + 1
    frame["positive_move"] = frame["rank_a"].fillna(floor_a) - frame["rank_b"].fillna(floor_b)
    tops = [(run_a.ranking(q).doc_ids[:k], run_b.ranking(q).doc_ids[:k]) for q in ids]
    frame["tau"] = [kendall_tau(top_a, top_b) for top_a, top_b in tops]
    frame["rbo"] = [rbo(top_a, top_b, p) for top_a, top_b in tops]
    return frame


def rank_queries(diffs: pd.DataFrame, measure: str) -> pd.DataFrame:
    """``diffs`` most interesting first under ``measure`` (a key of MEASURES); ties by query id, NaN tau last."""
    if measure not in MEASURES:
        raise MetricError(f"Unknown measure {measure!r}; pick one of {', '.join(MEASURES)}.")
    ascending = MEASURES[measure][1]
    values = diffs["positive_move"].abs() if measure == "positive_move" else diffs[measure]
    key = values if ascending else -values
    order = sorted(range(len(diffs)), key=lambda i: (math.isnan(key.iat[i]), 0.0 if math.isnan(key.iat[i]) else key.iat[i],
                                                      str(diffs.index[i])))
    return diffs.iloc[order]


@dataclass(frozen=True)
class ListedDocument:
    """One document of one run's top k, with where the other run put it."""

    doc_id: str
    rank: int
    other_rank: int | None
    grade: int
    marker: str

    @property
    def relevant(self) -> bool:
        return self.grade > 0


def movement_marker(rank: int, other_rank: int | None, side: str) -> str:
    """How a document moved between the runs, seen from ``side`` ("a" or "b").

    On B's side: "↑3" (B ranks it 3 places higher than A did), "↓12", "=" or "new in B" (A never retrieved
    it). On A's side the same movement towards B, or "dropped" when B never retrieved it.
    """
    if other_rank is None:
        return "new in B" if side == "b" else "dropped"
    gained = other_rank - rank if side == "b" else rank - other_rank
    return "=" if gained == 0 else f"↑{gained}" if gained > 0 else f"↓{-gained}"


def side_by_side(run_a: Run, run_b: Run, qrels: Qrels, query_id: str, k: int = TOP_K) -> tuple[list[ListedDocument], list[ListedDocument]]:
    """Both runs' top ``k`` for a query, each document with its rank in the other run (full depth) and a marker."""
    ranking_a, ranking_b = run_a.ranking(query_id), run_b.ranking(query_id)
    grades = qrels.grades(query_id)

    def listed(ranking, other, side):
        out = []
        for rank, doc_id in enumerate(ranking.doc_ids[:k], start=1):
            other_rank = other.rank_of(doc_id)
            out.append(ListedDocument(doc_id, rank, other_rank, int(grades.get(doc_id, 0)), movement_marker(rank, other_rank, side)))
        return out

    return listed(ranking_a, ranking_b, "a"), listed(ranking_b, ranking_a, "b")
