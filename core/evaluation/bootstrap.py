"""Confidence intervals by percentile bootstrap over queries, for means and for paired differences.

Every resample draws the same query indices for every run and metric (seeded), so the interval of a
difference between two runs is the paired one: each resample compares the runs on the same queries.
The resamples are one (resamples x queries) index matrix turned into counts, and every mean is a
matrix product with those counts, so there is no Python loop per resample.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import MetricError
from core.evaluation.metrics import Evaluation, parse_metric

DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0
INTERVAL_COLUMNS = ("run", "metric", "mean", "low", "high")


@dataclass(frozen=True)
class Interval:
    """A mean and its percentile bootstrap interval at ``level``."""

    mean: float
    low: float
    high: float
    level: float = DEFAULT_LEVEL

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def text(self, digits: int = 3) -> str:
        """``0.918 ± 0.020``: the mean and half the interval's width (the interval itself may be asymmetric)."""
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"

    def bracket(self, digits: int = 3) -> str:
        """``[0.897, 0.938]``."""
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"


def resample_counts(queries: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(resamples x queries) float64: how often each query is drawn in each resample (rows sum to ``queries``).

    Row r holds the counts of ``numpy.random.default_rng(seed)``'s r-th draw of ``queries`` indices,
    the same draws a loop calling ``rng.integers(0, queries, queries)`` once per resample makes.
    """
    if queries < 1:
        raise MetricError("No query to resample: a confidence interval needs at least one evaluated query.")
    if resamples < 1:
        raise MetricError(f"Resamples must be a whole number >= 1, not {resamples}.")
    drawn = np.random.default_rng(seed).integers(0, queries, size=(resamples, queries))
    offsets = (np.arange(resamples, dtype=np.int64) * queries)[:, None]
    counts = np.bincount((drawn + offsets).ravel(), minlength=resamples * queries)
    return counts.reshape(resamples, queries).astype(np.float64)


def bootstrap_means(values: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(resamples x columns) means of each column of ``values`` (queries x columns) over the resampled queries."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    counts = resample_counts(values.shape[0], resamples, seed)
    return (counts @ values) / values.shape[0]


def percentile_intervals(values: np.ndarray, resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL,
                         seed: int = DEFAULT_SEED) -> list[Interval]:
    """One Interval per column of ``values`` (queries x columns): the column mean and the bootstrap percentiles."""
    if not 0 < level < 1:
        raise MetricError(f"Confidence level {level} must lie between 0 and 1, as in 0.95.")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    means = bootstrap_means(values, resamples, seed)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail], axis=0)
    return [Interval(float(m), float(lo), float(hi), level) for m, lo, hi in zip(values.mean(axis=0), low, high)]


def _aligned(evaluations: Sequence[Evaluation], metrics: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The metric keys and a (queries x runs*metrics) matrix, runs in order, each run's metrics in order."""
    if not evaluations:
        raise MetricError("Pick at least one run to compute confidence intervals for.")
    keys = [parse_metric(m).key for m in metrics]
    query_ids = evaluations[0].per_query.index
    columns = []
    for evaluation in evaluations:
        missing = [k for k in keys if k not in evaluation.per_query.columns]
        if missing:
            raise MetricError(f"Run {evaluation.run_name!r} was not evaluated on {', '.join(missing)}.")
        if len(evaluation.per_query.index) != len(query_ids) or not evaluation.per_query.index.equals(query_ids):
            raise MetricError(f"Run {evaluation.run_name!r} was evaluated on other queries than {evaluations[0].run_name!r}: "
                              "evaluate every run on the same qrels.")
        columns.append(evaluation.per_query[keys].to_numpy(dtype=np.float64))
    return keys, np.hstack(columns)


def confidence_intervals(evaluations: Sequence[Evaluation], metrics: Sequence[str], labels: Sequence[str] | None = None,
                         resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL,
                         seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Long table (run, metric, mean, low, high): every run's mean of every metric with its bootstrap interval.

    All runs share the resamples (the same queries drawn), so their intervals are comparable row to row.
    """
    keys, values = _aligned(evaluations, metrics)
    labels = list(labels) if labels is not None else [e.run_name for e in evaluations]
    if len(labels) != len(evaluations):
        raise MetricError(f"{len(labels)} labels for {len(evaluations)} runs: give one label per run.")
    intervals = percentile_intervals(values, resamples, level, seed)
    cells = [(label, key) for label in labels for key in keys]  # the column order of ``values``
    rows = [(label, key, i.mean, i.low, i.high) for (label, key), i in zip(cells, intervals)]
    return pd.DataFrame(rows, columns=list(INTERVAL_COLUMNS))


def difference_interval(a: Evaluation, b: Evaluation, metric: str, resamples: int = DEFAULT_RESAMPLES,
                        level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED) -> Interval:
    """Paired bootstrap interval of mean(B) - mean(A) on ``metric``: each resample draws the same queries for both."""
    keys, values = _aligned([a, b], [metric])
    return percentile_intervals(values[:, 1] - values[:, 0], resamples, level, seed)[0]


def interval_frame(intervals: pd.DataFrame, digits: int = 3, bracket: bool = False) -> pd.DataFrame:
    """Wide table of the intervals as text, ``0.918 ± 0.020`` (+ `` [0.898, 0.938]`` with ``bracket``): runs x metrics."""
    text = [Interval(m, lo, hi).text(digits) + (f" {Interval(m, lo, hi).bracket(digits)}" if bracket else "")
            for m, lo, hi in intervals[["mean", "low", "high"]].itertuples(index=False)]
    wide = intervals.assign(text=text).pivot(index="run", columns="metric", values="text")
    wide = wide.reindex(index=list(dict.fromkeys(intervals["run"])), columns=list(dict.fromkeys(intervals["metric"])))
    wide.columns.name = None
    return wide
