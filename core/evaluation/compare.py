"""Per-query comparison of runs: the table behind the breakdown page, win/tie/loss, rank movement.

Every function takes Evaluations from ``core.evaluation.metrics.evaluate`` on the same qrels, so the numbers
shown per query are the ones the leaderboard averages. Like diffir, the aim is to point at the few
queries where two runs disagree, not to average the disagreement away.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.datasets import Dataset, Qrels
from core.errors import MetricError
from core.evaluation.metrics import POSITIVE_RANK, Evaluation, parse_metric, query_length_buckets
from core.retrieval.runs import Run

PREVIEW_CHARS = 80
BASE_COLUMNS = ("language", "length", "query")


@dataclass(frozen=True)
class WinTieLoss:
    """How often run A beats, ties with and loses to run B on one metric, counted per query."""

    wins: int
    ties: int
    losses: int
    won_query_ids: tuple[str, ...]
    lost_query_ids: tuple[str, ...]

    @property
    def queries(self) -> int:
        return self.wins + self.ties + self.losses


@dataclass(frozen=True)
class RankMovement:
    """Where one positive document sits in run A and in run B (None: not retrieved)."""

    query_id: str
    doc_id: str
    grade: int
    rank_a: int | None
    rank_b: int | None

    @property
    def movement(self) -> int | None:
        """Places gained in B (positive: B ranks it higher); None when either run misses it."""
        if self.rank_a is None or self.rank_b is None:
            return None
        return self.rank_a - self.rank_b

    def describe(self) -> str:
        """"up 3", "down 2", "same", "found by B only", "lost by B", "not retrieved"."""
        if self.rank_a is None and self.rank_b is None:
            return "not retrieved"
        if self.rank_a is None:
            return "found by B only"
        if self.rank_b is None:
            return "lost by B"
        moved = self.movement
        return "same" if moved == 0 else f"up {moved}" if moved > 0 else f"down {-moved}"


@dataclass(frozen=True)
class InterestingQuery:
    """A query where two runs disagree on a metric, with each run's value and positive rank."""

    query_id: str
    value_a: float
    value_b: float
    rank_a: float
    rank_b: float

    @property
    def difference(self) -> float:
        """B minus A: positive when B does better."""
        return self.value_b - self.value_a


def metric_column(profile: str, metric: str) -> str:
    """Name of a profile's metric column in ``per_query_table``."""
    return f"{profile} · {metric}"


def rank_column(profile: str) -> str:
    """Name of a profile's positive-rank column in ``per_query_table``."""
    return f"{profile} · rank"


def query_preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The first non-blank line of a query, cut to ``limit`` characters (an ellipsis marks the cut)."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _metric_key(evaluations: Sequence[Evaluation], metric: str) -> str:
    """The canonical metric name, checked to be present in every evaluation."""
    key = parse_metric(metric).key
    for evaluation in evaluations:
        if key not in evaluation.per_query.columns or key == POSITIVE_RANK:
            raise MetricError(f"Run {evaluation.run_name!r} was not evaluated on {key}; "
                              f"evaluate it with that metric or pick one of {', '.join(evaluation.metrics)}.")
    return key


def _same_queries(evaluations: Sequence[Evaluation]) -> pd.Index:
    """The evaluated query ids, refused unless every evaluation covers the same ones."""
    if not evaluations:
        raise MetricError("No run to compare: select at least one profile.")
    index = evaluations[0].per_query.index
    for evaluation in evaluations[1:]:
        if set(evaluation.per_query.index) != set(index):
            raise MetricError(f"Runs {evaluations[0].run_name!r} and {evaluation.run_name!r} were evaluated on "
                              "different queries; evaluate both on the same qrels.")
    return index


def per_query_table(dataset: Dataset, evaluations: Sequence[Evaluation], metric: str) -> pd.DataFrame:
    """One row per evaluated query: language, length bucket, preview, and per run the metric and positive rank.

    Indexed by query id in the evaluations' order; per run the columns are ``metric_column(run, metric)``
    and ``rank_column(run)`` (NaN: no positive retrieved). Runs keep the order given.
    """
    query_ids = _same_queries(evaluations)
    key = _metric_key(evaluations, metric)
    buckets = query_length_buckets(dataset)
    table = pd.DataFrame(index=pd.Index(list(query_ids), name="query_id", dtype=object))
    known = dataset.query_index
    table["language"] = [dataset.query_language(q) if q in known else "unknown" for q in query_ids]
    table["length"] = [buckets.get(q, "unknown") for q in query_ids]
    table["query"] = [query_preview(dataset.query(q).text) if q in known else "" for q in query_ids]
    for evaluation in evaluations:
        per_query = evaluation.per_query.reindex(query_ids)
        table[metric_column(evaluation.run_name, key)] = per_query[key].to_numpy(dtype=float)
        table[rank_column(evaluation.run_name)] = per_query[POSITIVE_RANK].to_numpy(dtype=float)
    return table


def filter_queries(table: pd.DataFrame, languages: Sequence[str] | None = None, lengths: Sequence[str] | None = None,
                   query_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of a ``per_query_table`` in the given languages, length buckets and ids (None: no filter on that)."""
    keep = pd.Series(True, index=table.index)
    if languages is not None:
        keep &= table["language"].isin(list(languages))
    if lengths is not None:
        keep &= table["length"].isin(list(lengths))
    if query_ids is not None:
        keep &= table.index.isin(list(query_ids))
    return table[keep.to_numpy()]


def _paired(evaluation_a: Evaluation, evaluation_b: Evaluation, metric: str,
            query_ids: Sequence[str] | None) -> tuple[str, pd.DataFrame]:
    """Both runs' metric and positive rank per query, on every evaluated query or only on ``query_ids``."""
    evaluated = _same_queries([evaluation_a, evaluation_b])
    if query_ids is not None:
        unknown = [q for q in query_ids if q not in evaluated]
        if unknown:
            raise MetricError(f"Queries {', '.join(map(repr, unknown[:5]))} were not evaluated; "
                              "compare only queries of the qrels with a relevant document.")
    query_ids = evaluated if query_ids is None else pd.Index(list(dict.fromkeys(query_ids)), dtype=object)
    key = _metric_key([evaluation_a, evaluation_b], metric)
    a = evaluation_a.per_query.reindex(query_ids)
    b = evaluation_b.per_query.reindex(query_ids)
    pairs = pd.DataFrame({"a": a[key].to_numpy(dtype=float), "b": b[key].to_numpy(dtype=float),
                          "rank_a": a[POSITIVE_RANK].to_numpy(dtype=float), "rank_b": b[POSITIVE_RANK].to_numpy(dtype=float)},
                         index=query_ids)
    return key, pairs


def win_tie_loss(evaluation_a: Evaluation, evaluation_b: Evaluation, metric: str, tolerance: float = 1e-9,
                 query_ids: Sequence[str] | None = None) -> WinTieLoss:
    """Count the queries (all evaluated ones, or ``query_ids``) where A scores above B, within ``tolerance``, or below."""
    if not tolerance >= 0:
        raise MetricError(f"Tolerance {tolerance!r} must be a number >= 0.")
    _, pairs = _paired(evaluation_a, evaluation_b, metric, query_ids)
    difference = pairs["a"] - pairs["b"]
    won = difference > tolerance
    lost = difference < -tolerance
    return WinTieLoss(int(won.sum()), int((~won & ~lost).sum()), int(lost.sum()),
                      tuple(pairs.index[won.to_numpy()]), tuple(pairs.index[lost.to_numpy()]))


def rank_movement(run_a: Run, run_b: Run, qrels: Qrels, query_id: str) -> tuple[RankMovement, ...]:
    """Each positive of a query with its rank in A and in B (as diffir shows it), most relevant first."""
    positives = qrels.positives(query_id)
    if not positives:
        raise MetricError(f"Query {query_id!r} has no relevant document in the qrels: there is no positive to follow.")
    grades = qrels.grades(query_id)
    ranking_a, ranking_b = run_a.ranking(query_id), run_b.ranking(query_id)
    return tuple(RankMovement(query_id, doc_id, int(grades[doc_id]), ranking_a.rank_of(doc_id), ranking_b.rank_of(doc_id))
                 for doc_id in positives)


def interesting_queries(evaluation_a: Evaluation, evaluation_b: Evaluation, metric: str, top_n: int = 10,
                        query_ids: Sequence[str] | None = None) -> list[InterestingQuery]:
    """The ``top_n`` queries (of all, or of ``query_ids``) where two runs differ most on a metric; equal ones never.

    Ties in the size of the difference are broken by query id, so the list is stable between reruns.
    """
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0:
        raise MetricError(f"top_n {top_n!r} must be a whole number >= 0.")
    _, pairs = _paired(evaluation_a, evaluation_b, metric, query_ids)
    pairs = pairs.assign(gap=(pairs["b"] - pairs["a"]).abs())
    pairs = pairs[pairs["gap"] > 1e-12]
    order = sorted(range(len(pairs)), key=lambda i: (-pairs["gap"].iat[i], str(pairs.index[i])))[:top_n]
    return [InterestingQuery(str(pairs.index[i]), float(pairs["a"].iat[i]), float(pairs["b"].iat[i]),
                             float(pairs["rank_a"].iat[i]), float(pairs["rank_b"].iat[i])) for i in order]


def scatter_points(table: pd.DataFrame, metric: str, profile_a: str, profile_b: str, tolerance: float = 1e-9,
                   listed: int = 8) -> pd.DataFrame:
    """Distinct (A, B) metric pairs of a ``per_query_table`` with how many queries share each, for an A-vs-B scatter.

    Columns: ``a``, ``b``, ``queries`` (count), ``outcome`` ("A wins", "tie", "B wins", as ``win_tie_loss``
    decides with the same tolerance), ``query_ids`` (the first ``listed`` ids, comma-separated) and
    ``first_query_id`` (the one a click on the marker opens).
    Many queries share (1, 1); one marker per pair, sized by count, keeps them from hiding each other.
    """
    key = parse_metric(metric).key
    pairs = pd.DataFrame({"a": table[metric_column(profile_a, key)].to_numpy(float),
                          "b": table[metric_column(profile_b, key)].to_numpy(float),
                          "query_id": [str(q) for q in table.index]})
    difference = pairs["a"] - pairs["b"]
    pairs["outcome"] = np.where(difference > tolerance, "A wins", np.where(difference < -tolerance, "B wins", "tie"))
    grouped = pairs.groupby(["a", "b", "outcome"], sort=True)["query_id"]
    points = grouped.agg(["size", lambda ids: ", ".join(ids.iloc[:listed]) + (" …" if len(ids) > listed else ""), "first"])
    points.columns = ["queries", "query_ids", "first_query_id"]
    return points.reset_index()


def rank_histogram(table: pd.DataFrame, profiles: Sequence[str], depth: int | None = None) -> pd.DataFrame:
    """Long table (profile, bucket, queries) of the positive's rank per profile, "not retrieved" as its own bucket.

    Buckets: 1, 2, 3, 4-5, 6-10, 11-20, 21-50, 51-100, then ">100" when ``depth`` goes deeper.
    """
    edges = [(1, 1), (2, 2), (3, 3), (4, 5), (6, 10), (11, 20), (21, 50), (51, 100)]
    labels = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in edges]
    deepest = max([depth or 0] + [int(np.nanmax(table[rank_column(p)])) for p in profiles
                                  if table[rank_column(p)].notna().any()])
    if deepest > 100:
        edges.append((101, math.inf))
        labels.append(">100")
    rows = []
    for profile in profiles:
        ranks = table[rank_column(profile)]
        for (lo, hi), label in zip(edges, labels):
            rows.append((profile, label, int(((ranks >= lo) & (ranks <= hi)).sum())))
        rows.append((profile, "not retrieved", int(ranks.isna().sum())))
    return pd.DataFrame(rows, columns=["profile", "rank", "queries"])
