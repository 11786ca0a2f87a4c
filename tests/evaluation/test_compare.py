"""core.evaluation.compare: the per-query table, win/tie/loss, rank movement and interesting queries, on csn-mini and by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.evaluation.compare import (
    filter_queries,
    interesting_queries,
    metric_column,
    per_query_table,
    query_preview,
    rank_column,
    rank_histogram,
    rank_movement,
    scatter_points,
    win_tie_loss,
)
from core.data.datasets import Dataset, Document, Qrels, Query
from core.errors import MetricError
from core.evaluation.metrics import evaluate, query_length_buckets
from core.retrieval.runs import Ranking, Run

METRICS = ("ndcg@10", "mrr@10", "hit@1")
PROFILES = ("bm25-code", "dense-minilm")


@pytest.fixture(scope="module")
def runs(csn_engine) -> dict[str, Run]:
    return {name: csn_engine.run(name) for name in PROFILES}


@pytest.fixture(scope="module")
def evaluations(csn_mini, runs):
    return [evaluate(csn_mini.qrels, runs[name], METRICS) for name in PROFILES]


def run_of(name: str, **rankings: list[str]) -> Run:
    return Run(name, {q: Ranking(tuple(ids), tuple(float(-i) for i in range(len(ids)))) for q, ids in rankings.items()})


def test_table_has_one_row_per_judged_query_with_each_runs_metric_and_rank(csn_mini, evaluations):
    table = per_query_table(csn_mini, evaluations, "ndcg@10")
    assert list(table.index) == list(evaluations[0].per_query.index)
    assert set(table.index) == {q.id for q in csn_mini.judged_queries} and len(table) == 40
    for evaluation in evaluations:
        values = table[metric_column(evaluation.run_name, "ndcg@10")]
        ranks = table[rank_column(evaluation.run_name)]
        np.testing.assert_array_equal(values.to_numpy(), evaluation.per_query.loc[table.index, "ndcg@10"].to_numpy())
        np.testing.assert_array_equal(ranks.to_numpy(), evaluation.per_query.loc[table.index, "positive_rank"].to_numpy())


def test_table_labels_each_query_with_its_language_length_bucket_and_first_line(csn_mini, evaluations):
    table = per_query_table(csn_mini, evaluations, "mrr@10")
    buckets = query_length_buckets(csn_mini)
    for query_id, row in table.iterrows():
        assert row["language"] == csn_mini.query_language(query_id) == "python"
        assert row["length"] == buckets[query_id]
        assert row["query"] == query_preview(csn_mini.query(query_id).text)
        assert len(row["query"]) <= 80 and "\n" not in row["query"]


def test_table_accepts_metric_aliases_and_refuses_a_metric_that_was_not_evaluated(csn_mini, evaluations):
    assert metric_column("bm25-code", "hit@1") in per_query_table(csn_mini, evaluations, "success@1").columns
    with pytest.raises(MetricError, match="recall@5"):
        per_query_table(csn_mini, evaluations, "recall@5")


def test_query_preview_keeps_the_first_non_blank_line_and_cuts_long_ones_with_an_ellipsis():
    assert query_preview("\n\n  def f(x):\n    return x") == "def f(x):"
    long = "x" * 200
    assert query_preview(long) == "x" * 79 + "…"
    assert query_preview("   ") == ""


def test_win_tie_loss_counts_every_query_once_and_mirrors_when_runs_swap(evaluations):
    bm25, dense = evaluations
    result = win_tie_loss(bm25, dense, "ndcg@10")
    assert result.wins + result.ties + result.losses == result.queries == 40
    difference = bm25.per_query["ndcg@10"] - dense.per_query["ndcg@10"]
    assert set(result.won_query_ids) == set(difference.index[difference > 1e-9])
    assert set(result.lost_query_ids) == set(difference.index[difference < -1e-9])
    swapped = win_tie_loss(dense, bm25, "ndcg@10")
    assert (swapped.wins, swapped.ties, swapped.losses) == (result.losses, result.ties, result.wins)


def test_win_tie_loss_treats_differences_within_tolerance_as_ties():
    qrels = Qrels({"q1": {"d1": 1}, "q2": {"d1": 1}, "q3": {"d1": 1}})
    a = evaluate(qrels, run_of("a", q1=["d1"], q2=["x", "d1"], q3=["x", "y", "d1"]), ["mrr@10"])
    b = evaluate(qrels, run_of("b", q1=["x", "d1"], q2=["x", "d1"], q3=["d1"]), ["mrr@10"])
    strict = win_tie_loss(a, b, "mrr@10")
    assert (strict.wins, strict.ties, strict.losses) == (1, 1, 1)
    assert strict.won_query_ids == ("q1",) and strict.lost_query_ids == ("q3",)
    loose = win_tie_loss(a, b, "mrr@10", tolerance=0.6)  # |1 - 1/2| = 0.5 is within, |1/3 - 1| is not
    assert (loose.wins, loose.ties, loose.losses) == (0, 2, 1)


def test_comparing_runs_evaluated_on_different_queries_is_refused():
    a = evaluate(Qrels({"q1": {"d1": 1}}), run_of("a", q1=["d1"]), ["mrr@10"])
    b = evaluate(Qrels({"q2": {"d1": 1}}), run_of("b", q2=["d1"]), ["mrr@10"])
    with pytest.raises(MetricError, match="different queries"):
        win_tie_loss(a, b, "mrr@10")


def test_rank_movement_follows_each_positive_between_two_runs():
    qrels = Qrels({"q": {"p1": 2, "p2": 1, "p3": 1, "n": 0}})
    a = run_of("a", q=["x", "p2", "y", "p1"])
    b = run_of("b", q=["p1", "p3", "x"])
    moves = {m.doc_id: m for m in rank_movement(a, b, qrels, "q")}
    assert [m.doc_id for m in rank_movement(a, b, qrels, "q")][0] == "p1"  # most relevant first
    assert (moves["p1"].rank_a, moves["p1"].rank_b, moves["p1"].movement, moves["p1"].describe()) == (4, 1, 3, "up 3")
    assert (moves["p2"].rank_a, moves["p2"].rank_b, moves["p2"].movement, moves["p2"].describe()) == (2, None, None, "lost by B")
    assert (moves["p3"].rank_a, moves["p3"].rank_b, moves["p3"].describe()) == (None, 2, "found by B only")
    assert "n" not in moves
    with pytest.raises(MetricError):
        rank_movement(a, b, qrels, "unjudged")


def test_interesting_queries_are_ordered_by_the_size_of_the_disagreement_and_skip_equal_ones():
    qrels = Qrels({q: {"d1": 1} for q in ("q1", "q2", "q3", "q4")})
    a = evaluate(qrels, run_of("a", q1=["d1"], q2=["d1"], q3=["x", "d1"], q4=["x", "y", "z", "d1"]), ["mrr@10"])
    b = evaluate(qrels, run_of("b", q1=["d1"], q2=["x", "y", "d1"], q3=["d1"], q4=["x", "d1"]), ["mrr@10"])
    found = interesting_queries(a, b, "mrr@10", top_n=10)
    assert [q.query_id for q in found] == ["q2", "q3", "q4"]  # gaps 2/3, 1/2, 1/4; q1 ties
    assert found[0].value_a == 1.0 and found[0].value_b == pytest.approx(1 / 3) and found[0].difference < 0
    assert (found[0].rank_a, found[0].rank_b) == (1.0, 3.0)
    assert [q.query_id for q in interesting_queries(a, b, "mrr@10", top_n=1)] == ["q2"]


def test_interesting_queries_on_real_runs_start_with_the_largest_gap(evaluations):
    bm25, dense = evaluations
    found = interesting_queries(bm25, dense, "ndcg@10", top_n=5)
    gaps = (bm25.per_query["ndcg@10"] - dense.per_query["ndcg@10"]).abs()
    assert len(found) == min(5, int((gaps > 1e-12).sum()))
    assert [abs(q.difference) for q in found] == sorted((abs(q.difference) for q in found), reverse=True)
    assert abs(found[0].difference) == pytest.approx(gaps.max())


def test_rank_histogram_puts_every_query_in_one_bucket_and_misses_in_not_retrieved(csn_mini, evaluations):
    table = per_query_table(csn_mini, evaluations, "ndcg@10")
    histogram = rank_histogram(table, PROFILES)
    for profile in PROFILES:
        counts = histogram[histogram["profile"] == profile].set_index("rank")["queries"]
        assert counts.sum() == 40
        assert counts["1"] == int((table[rank_column(profile)] == 1).sum())
        assert counts["not retrieved"] == int(table[rank_column(profile)].isna().sum())
        assert counts["6-10"] == int(table[rank_column(profile)].between(6, 10).sum())


def test_rank_histogram_adds_a_deep_bucket_only_when_ranks_go_past_100():
    qrels = Qrels({"q1": {"d150": 1}, "q2": {"nowhere": 1}})
    ids = [f"d{i}" for i in range(1, 151)]
    evaluation = evaluate(qrels, run_of("deep", q1=ids, q2=ids), ["mrr@10"])
    dataset = Dataset("hand", tuple(Document(i, i) for i in ids), (Query("q1", "a"), Query("q2", "b")), qrels)
    histogram = rank_histogram(per_query_table(dataset, [evaluation], "mrr@10"), ["deep"]).set_index("rank")["queries"]
    assert histogram[">100"] == 1 and histogram["not retrieved"] == 1 and math.isclose(histogram.sum(), 2)


def test_win_tie_loss_on_a_subset_counts_only_those_queries(evaluations):
    bm25, dense = evaluations
    everything = win_tie_loss(bm25, dense, "ndcg@10")
    subset = list(everything.lost_query_ids) + list(bm25.per_query.index[:3])
    part = win_tie_loss(bm25, dense, "ndcg@10", query_ids=subset)
    assert part.queries == len(set(subset))
    assert set(everything.lost_query_ids) <= set(part.lost_query_ids)
    with pytest.raises(MetricError, match="not evaluated"):
        win_tie_loss(bm25, dense, "ndcg@10", query_ids=["no-such-query"])


def test_filters_keep_rows_matching_every_chosen_language_length_and_id(csn_mini, evaluations):
    table = per_query_table(csn_mini, evaluations, "ndcg@10")
    short = sorted(set(table["length"]))[0]
    kept = filter_queries(table, languages=["python"], lengths=[short])
    assert list(kept.index) == [q for q in table.index if table.loc[q, "length"] == short]
    assert filter_queries(table, languages=["go"]).empty
    assert len(filter_queries(table)) == len(table)
    some = list(table.index[5:8])
    assert list(filter_queries(table, query_ids=some).index) == some
    assert filter_queries(table, lengths=[]).empty


def test_scatter_points_count_each_query_once_with_the_same_outcome_as_win_tie_loss(csn_mini, evaluations):
    table = per_query_table(csn_mini, evaluations, "ndcg@10")
    points = scatter_points(table, "ndcg@10", *PROFILES)
    assert points["queries"].sum() == 40
    assert not points.duplicated(["a", "b"]).any()
    outcome = win_tie_loss(*evaluations, "ndcg@10")
    by_outcome = points.groupby("outcome")["queries"].sum()
    assert (by_outcome.get("A wins", 0), by_outcome.get("tie", 0), by_outcome.get("B wins", 0)) == \
        (outcome.wins, outcome.ties, outcome.losses)
    crowded = points.loc[points["queries"].idxmax()]
    assert crowded["query_ids"].endswith(" …") == (crowded["queries"] > 8)
