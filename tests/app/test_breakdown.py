"""The per-query breakdown page shows core's numbers: one row per query, filters, win/tie/loss, queries worth a look."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.compare import interesting_queries, metric_column, rank_column, win_tie_loss
from core.evaluation.metrics import DEFAULT_METRICS, evaluate, query_length_buckets

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PROFILES = ("bm25-code", "dense-minilm")


@pytest.fixture(scope="module")
def evaluations(csn_engine, csn_mini):
    return {name: evaluate(csn_mini.qrels, csn_engine.run(name), DEFAULT_METRICS) for name in PROFILES}


def open_breakdown(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update({"dataset": "csn-mini", "profiles": ",".join(PROFILES), **params})
    at.run()
    at.switch_page("pages/breakdown.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def main_table(at: AppTest):
    return next(frame for frame in at.dataframe if frame.key == "breakdown_table").value


def table_with(at: AppTest, column: str):
    """The shown table that has ``column`` (read-only tables carry no key in AppTest)."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def metrics_shown(at: AppTest) -> dict[str, int]:
    return {m.label: int(m.value) for m in at.metric}


def test_table_shows_one_row_per_query_with_cores_metric_and_positive_rank(app_env, csn_mini, evaluations):
    at = open_breakdown()
    table = main_table(at)
    assert sorted(table.index) == sorted(q.id for q in csn_mini.judged_queries)
    for name, evaluation in evaluations.items():
        expected = evaluation.per_query.loc[table.index]
        np.testing.assert_allclose(table[metric_column(name, "ndcg@10")].to_numpy(float), expected["ndcg@10"].to_numpy(), atol=1e-12)
        np.testing.assert_array_equal(table[rank_column(name)].to_numpy(float), expected["positive_rank"].to_numpy())


def test_choosing_another_metric_shows_that_metrics_values(app_env, evaluations):
    at = open_breakdown()
    at.selectbox(key="breakdown_metric").set_value("mrr@10").run()
    table = main_table(at)
    expected = evaluations["dense-minilm"].per_query.loc[table.index, "mrr@10"].to_numpy()
    np.testing.assert_allclose(table[metric_column("dense-minilm", "mrr@10")].to_numpy(float), expected, atol=1e-12)


def test_length_filter_keeps_exactly_the_queries_of_that_bucket(app_env, csn_mini):
    at = open_breakdown()
    buckets = query_length_buckets(csn_mini)
    first = next(iter(buckets.values()))
    at.multiselect(key="breakdown_lengths").set_value([first]).run()
    table = main_table(at)
    assert set(table.index) == {q for q, bucket in buckets.items() if bucket == first}
    assert 0 < len(table) < 40
    at.multiselect(key="breakdown_languages").set_value(["python"]).run()
    assert len(main_table(at)) == len(table)


def test_lost_by_a_won_by_b_filter_shows_the_queries_b_wins(app_env, evaluations):
    at = open_breakdown(a="bm25-code", b="dense-minilm")
    at.selectbox(key="breakdown_show").set_value("a_wins").run()
    outcome = win_tie_loss(evaluations["bm25-code"], evaluations["dense-minilm"], "ndcg@10")
    assert set(main_table(at).index) == set(outcome.won_query_ids)
    at.selectbox(key="breakdown_show").set_value("b_wins").run()
    assert set(main_table(at).index) == set(outcome.lost_query_ids)


def test_win_tie_loss_numbers_equal_core_and_follow_a_and_b_from_the_url(app_env, evaluations):
    at = open_breakdown(a="bm25-code", b="dense-minilm")
    outcome = win_tie_loss(evaluations["bm25-code"], evaluations["dense-minilm"], "ndcg@10")
    assert metrics_shown(at) == {"A wins": outcome.wins, "Ties": outcome.ties, "B wins": outcome.losses}
    swapped = open_breakdown(a="dense-minilm", b="bm25-code")
    assert swapped.selectbox(key="breakdown_a").value == "dense-minilm"
    assert metrics_shown(swapped) == {"A wins": outcome.losses, "Ties": outcome.ties, "B wins": outcome.wins}
    assert swapped.query_params["a"] == "dense-minilm" and swapped.query_params["b"] == "bm25-code"


def test_queries_worth_a_look_are_cores_interesting_queries(app_env, evaluations):
    at = open_breakdown(a="bm25-code", b="dense-minilm")
    worth = table_with(at, "B − A")
    expected = interesting_queries(evaluations["bm25-code"], evaluations["dense-minilm"], "ndcg@10", top_n=10)
    assert list(worth["query_id"]) == [q.query_id for q in expected]
    np.testing.assert_allclose(worth["B − A"].to_numpy(float), [q.difference for q in expected])


def test_selecting_a_row_offers_to_open_it_in_the_explorer_with_its_qid(app_env):
    at = open_breakdown()
    first = str(main_table(at).index[0])
    at.session_state["breakdown_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    moves = table_with(at, "A → B")
    assert len(moves) >= 1
    at.button(key="breakdown_open").click().run()
    # the dataset is a URL parameter bound to the sidebar widget: the browser carries it (tests/e2e checks that);
    # AppTest has no browser, so the dataset is read from the sidebar's state
    assert at.query_params["qid"] == first and at.session_state["dataset"] == "csn-mini"
    assert at.selectbox(key="explorer_qid").value == first
