"""The quality-vs-latency page plots and tabulates what core.evaluation.sweep computes for the same settings."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.sweep import sweep_bm25, sweep_hybrid_weight, sweep_rerank_pool

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_sweep() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code,hybrid-rrf,rerank-fusion"})
    at.run()
    at.switch_page("pages/sweep.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def table(at: AppTest, column: str):
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def has_table(at: AppTest, column: str) -> bool:
    return any(column in frame.value.columns for frame in at.dataframe)


def test_pool_sweep_shows_the_points_of_sweep_rerank_pool(app_env, csn_engine):
    at = open_sweep()
    assert at.selectbox(key="sweep_pool_profile").value == "rerank-fusion"
    at.multiselect(key="sweep_pool_depths").set_value([20, 5]).run()
    at.button(key="sweep_pool_run").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    shown = table(at, "pool depth")
    expected = sweep_rerank_pool(csn_engine, csn_engine.profile("rerank-fusion"), (5, 20), "ndcg@10")
    assert list(shown["pool depth"]) == [5, 20]
    assert list(shown["nDCG@10"]) == pytest.approx([p.metric_value for p in expected], abs=1e-12)
    assert all(shown["ms/query"] > 0)
    assert len(at.get("plotly_chart")) == 2  # quality vs latency, quality vs pool depth


def test_weight_sweep_on_the_weighted_hybrid(app_env, csn_engine):
    at = open_sweep()
    at.selectbox(key="sweep_metric").select("hit@10").run()
    at.selectbox(key="sweep_weight_profile").select("hybrid-weighted").run()
    at.multiselect(key="sweep_weights").set_value([0.0, 0.3, 1.0]).run()
    at.button(key="sweep_weight_run").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    shown = table(at, "weight of bm25-code")
    expected = sweep_hybrid_weight(csn_engine, csn_engine.profile("hybrid-weighted"), (0.0, 0.3, 1.0), "hit@10")
    assert list(shown["weight of bm25-code"]) == [0.0, 0.3, 1.0]
    assert list(shown["Hit@10"]) == pytest.approx([p.metric_value for p in expected], abs=1e-12)


def test_bm25_sweep_of_b(app_env, csn_engine):
    at = open_sweep()
    assert at.selectbox(key="sweep_bm25_profile").value == "bm25-code"
    at.radio(key="sweep_bm25_param").set_value("b").run()
    at.multiselect(key="sweep_bm25_b_values").set_value([0.75, 0.0]).run()
    at.button(key="sweep_bm25_run").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    shown = table(at, "b")
    expected = sweep_bm25(csn_engine, csn_engine.profile("bm25-code"), "b", (0.0, 0.75), "ndcg@10")
    assert list(shown["b"]) == [0.0, 0.75]
    assert list(shown["nDCG@10"]) == pytest.approx([p.metric_value for p in expected], abs=1e-12)


def test_points_stay_after_an_unrelated_rerun_and_go_when_settings_change(app_env):
    at = open_sweep()
    at.multiselect(key="sweep_pool_depths").set_value([5]).run()
    at.button(key="sweep_pool_run").click().run()
    assert has_table(at, "pool depth")
    at.multiselect(key="sweep_weights").set_value([0.5]).run()  # another tab's widget
    assert has_table(at, "pool depth")
    at.multiselect(key="sweep_pool_depths").set_value([5, 10]).run()
    assert not has_table(at, "pool depth")
