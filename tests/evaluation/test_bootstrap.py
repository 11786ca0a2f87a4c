"""Bootstrap intervals: the vectorised resampling equals a slow loop over resamples, and pairs runs query by query."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import MetricError
from core.evaluation.bootstrap import (Interval, bootstrap_means, confidence_intervals, difference_interval, interval_frame,
                                       percentile_intervals, resample_counts)
from core.evaluation.metrics import Evaluation, evaluate


def reference_intervals(values: np.ndarray, resamples: int, level: float, seed: int) -> list[tuple[float, float]]:
    """The textbook loop: draw n query indices with replacement, average, repeat; then the percentiles."""
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(values), len(values))
        means.append(values[drawn].mean(axis=0))
    means = np.array(means)
    tail = (1 - level) / 2
    return [(float(np.quantile(means[:, c], tail)), float(np.quantile(means[:, c], 1 - tail))) for c in range(values.shape[1])]


def evaluation_of(name: str, values: dict[str, list[float]], query_ids: list[str]) -> Evaluation:
    frame = pd.DataFrame(values, index=pd.Index(query_ids, name="query_id", dtype=object), dtype=float)
    frame["positive_rank"] = 1.0
    return Evaluation(name, tuple(values), frame)


def test_vectorised_intervals_equal_a_slow_loop_over_resamples():
    values = np.random.default_rng(5).random((83, 3)) * np.array([1.0, 0.5, 2.0])
    fast = percentile_intervals(values, resamples=2000, level=0.9, seed=11)
    slow = reference_intervals(values, 2000, 0.9, 11)
    for interval, (low, high) in zip(fast, slow):
        assert interval.low == pytest.approx(low, abs=1e-12) and interval.high == pytest.approx(high, abs=1e-12)
    np.testing.assert_allclose([i.mean for i in fast], values.mean(axis=0), atol=1e-15)


def test_counts_draw_every_query_n_times_per_resample_and_are_seeded():
    counts = resample_counts(40, 300, seed=3)
    assert counts.shape == (300, 40) and (counts.sum(axis=1) == 40).all()
    np.testing.assert_array_equal(counts, resample_counts(40, 300, seed=3))
    assert not np.array_equal(counts, resample_counts(40, 300, seed=4))


def test_a_constant_metric_has_a_zero_width_interval_and_a_coin_has_the_binomial_width():
    constant = percentile_intervals(np.full(50, 0.7), 500)[0]
    assert (constant.mean, constant.low, constant.high) == pytest.approx((0.7, 0.7, 0.7), abs=1e-12)
    assert constant.half_width == pytest.approx(0.0, abs=1e-12)
    coin = np.array([1.0, 0.0] * 200)  # mean 0.5, standard error sqrt(0.25 / 400) = 0.025
    interval = percentile_intervals(coin, 10_000, 0.95, seed=1)[0]
    assert interval.half_width == pytest.approx(1.96 * 0.025, rel=0.06)


def test_difference_interval_is_paired_over_the_same_queries():
    # B = A + 0.01 on every query: the paired difference is exactly 0.01 whatever queries are drawn,
    # while unpaired resampling of two such spread-out runs would give a wide interval around it.
    ids = [f"q{i}" for i in range(60)]
    a_values = list(np.random.default_rng(2).random(60))
    a = evaluation_of("a", {"ndcg@10": a_values}, ids)
    b = evaluation_of("b", {"ndcg@10": [v + 0.01 for v in a_values]}, ids)
    interval = difference_interval(a, b, "ndcg@10", resamples=1000)
    assert interval.low == pytest.approx(0.01) and interval.high == pytest.approx(0.01)


def test_confidence_intervals_of_real_runs_hold_the_mean_and_match_the_loop(csn_engine, csn_mini):
    evaluations = [evaluate(csn_mini.qrels, csn_engine.run(name), ["ndcg@10", "hit@10"]) for name in ("bm25-code", "dense-minilm")]
    table = confidence_intervals(evaluations, ["ndcg@10", "hit@10"], resamples=1500, seed=9)
    assert list(table["run"]) == ["bm25-code", "bm25-code", "dense-minilm", "dense-minilm"]
    values = np.hstack([e.per_query[["ndcg@10", "hit@10"]].to_numpy() for e in evaluations])
    slow = reference_intervals(values, 1500, 0.95, 9)
    np.testing.assert_allclose(table[["low", "high"]].to_numpy(), np.array(slow), atol=1e-12)
    np.testing.assert_allclose(table["mean"], values.mean(axis=0), atol=1e-15)
    assert ((table["low"] <= table["mean"]) & (table["mean"] <= table["high"])).all()
    wide = interval_frame(table)
    assert wide.loc["bm25-code", "ndcg@10"] == Interval(*table.iloc[0][["mean", "low", "high"]]).text()


def test_runs_on_different_queries_are_refused_with_a_message():
    a = evaluation_of("a", {"hit@10": [1.0, 0.0]}, ["q1", "q2"])
    b = evaluation_of("b", {"hit@10": [1.0, 0.0]}, ["q1", "q3"])
    with pytest.raises(MetricError, match="other queries"):
        confidence_intervals([a, b], ["hit@10"])
    with pytest.raises(MetricError, match="not evaluated on mrr@10"):
        confidence_intervals([a], ["mrr@10"])


def test_interval_text_shows_mean_and_half_width():
    assert Interval(0.918, 0.898, 0.938).text() == "0.918 ± 0.020"
    assert Interval(0.918, 0.898, 0.938).bracket() == "[0.898, 0.938]"
    assert bootstrap_means(np.array([1.0, 3.0]), 10).shape == (10, 1)
