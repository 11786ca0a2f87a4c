"""The leaderboard page shows exactly what core.evaluation.metrics.evaluate computes, per profile and per language."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.leaderboard import TIME_COLUMN
from core.evaluation.metrics import DEFAULT_METRICS, evaluate, language_groups, slice_means

APP = Path(__file__).resolve().parents[2] / "app.py"
PROFILES = ("bm25-code", "dense-minilm", "hybrid-rrf", "rerank-fusion")


def open_leaderboard(profiles=PROFILES, k: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.query_params["dataset"] = "csn-mini"
    at.query_params["profiles"] = ",".join(profiles)
    if k:
        at.query_params["k"] = k
    at.run()
    at.switch_page("pages/leaderboard.py").run()
    assert not at.exception, at.exception
    return at


def evaluated(at: AppTest) -> AppTest:
    """Press Evaluate when some profile has no saved run yet; the page then shows every profile."""
    button = at.button(key="evaluate")
    if not button.disabled:
        button.click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def main_table(at: AppTest):
    return next(df.value for df in at.dataframe if TIME_COLUMN in df.value.columns and "run id" in df.value.columns)


def test_every_cell_equals_core_metrics_evaluate_for_each_profile(app_env, csn_engine):
    at = evaluated(open_leaderboard())
    table = main_table(at)
    assert list(table.index) == list(PROFILES)
    for profile in PROFILES:
        expected = evaluate(csn_engine.dataset.qrels, csn_engine.run(profile), DEFAULT_METRICS).mean()
        for metric in DEFAULT_METRICS:
            assert table.loc[profile, metric] == pytest.approx(expected[metric], abs=1e-9), (profile, metric)
        assert table.loc[profile, TIME_COLUMN] > 0
    assert at.button(key="evaluate").disabled  # nothing left to run


def test_saved_runs_are_listed_and_reused_without_evaluating_again(app_env):
    evaluated(open_leaderboard(("bm25-code",)))
    at = open_leaderboard(("bm25-code",))
    assert at.button(key="evaluate").disabled
    status = next(df.value for df in at.dataframe if "state" in df.value.columns)
    assert list(status["state"]) == ["saved run"]
    assert list(main_table(at).index) == ["bm25-code"]


def test_an_extra_cutoff_adds_its_metric_columns(app_env, csn_engine):
    at = evaluated(open_leaderboard(("bm25-code", "dense-minilm"), k="5"))
    table = main_table(at)
    for metric in ("ndcg@5", "hit@5", "recall@5", "mrr@5"):
        assert metric in table.columns
    expected = evaluate(csn_engine.dataset.qrels, csn_engine.run("dense-minilm"), ["ndcg@5", "mrr@5"]).mean()
    assert table.loc["dense-minilm", "ndcg@5"] == pytest.approx(expected["ndcg@5"], abs=1e-9)
    assert table.loc["dense-minilm", "mrr@5"] == pytest.approx(expected["mrr@5"], abs=1e-9)


def test_the_table_can_be_downloaded_as_csv(app_env):
    at = evaluated(open_leaderboard(("bm25-code",)))
    assert [b.label for b in at.get("download_button")] == ["Download CSV", "Download manifest (JSON)"]


def test_the_language_breakdown_shows_python_with_its_query_count_and_means(app_env, csn_engine):
    at = evaluated(open_leaderboard(("bm25-code", "dense-minilm")))
    by_language = next(df.value for df in at.dataframe if "queries" in df.value.columns and df.value.index.name == "language")
    assert "python" in by_language.index
    groups = language_groups(csn_engine.dataset)
    assert by_language.loc["python", "queries"] == sum(1 for lang in groups.values() if lang == "python")
    expected = slice_means(evaluate(csn_engine.dataset.qrels, csn_engine.run("bm25-code"), DEFAULT_METRICS), groups)
    assert by_language.loc["python", "bm25-code"] == pytest.approx(expected.loc["python", "ndcg@10"], abs=1e-9)


def test_a_saved_run_can_be_added_to_the_table_next_to_the_profiles(app_env, csn_engine):
    from core.retrieval.runs import Run, save_run

    base = csn_engine.run("bm25-plain")
    extra = save_run(Run("imported-bm25", base.rankings, csn_engine.dataset.name, {"kind": "imported"}, {}), app_env.runs_dir)
    at = evaluated(open_leaderboard(("bm25-code",)))
    at.multiselect(key="leaderboard_added_runs").select(extra.run_id).run()
    assert not at.exception, at.exception
    table = main_table(at)
    label = f"imported-bm25 [{extra.run_id}]"
    assert label in table.index
    expected = evaluate(csn_engine.dataset.qrels, base, DEFAULT_METRICS).mean()
    assert table.loc[label, "ndcg@10"] == pytest.approx(expected["ndcg@10"], abs=1e-9)


def test_significant_wins_are_marked_with_the_letters_of_the_beaten_rows(app_env, mini_data_dir, monkeypatch):
    """On cosqa-mini dense beats BM25 (plain) significantly: dense's nDCG@10 cell carries BM25's letter."""
    from core.evaluation.metrics import Evaluation
    from core.evaluation.significance import markers_frame

    at = AppTest.from_file(str(APP), default_timeout=600)
    at.query_params["dataset"] = "cosqa-mini"
    at.query_params["profiles"] = "bm25-plain,dense-minilm"
    at.run()
    at.switch_page("pages/leaderboard.py").run()
    evaluated(at)
    shown = b"".join(frame.proto.SerializeToString() for frame in at.dataframe)  # Styler display values travel inside
    from core.data.catalog import open_dataset
    from core.retrieval.profiles import default_profiles
    from core.retrieval.engine import Engine

    dataset = open_dataset(app_env, "cosqa-mini")
    engine = Engine(app_env, dataset, default_profiles())
    evaluations = [evaluate(dataset.qrels, engine.run(name), DEFAULT_METRICS) for name in ("bm25-plain", "dense-minilm")]
    expected = markers_frame(evaluations, DEFAULT_METRICS)
    assert expected.at["dense-minilm", "ndcg@10"] == "ᵃ"  # the data really holds a significant win
    assert "ᵃ".encode() in shown  # ...and the page shows its superscript a


def test_cost_columns_show_what_was_measured_when_the_run_was_made(app_env):
    from core.evaluation.leaderboard import COST_COLUMNS
    from core.retrieval.runs import load_run

    at = evaluated(open_leaderboard(("bm25-code", "dense-minilm")))
    assert not set(COST_COLUMNS) & set(main_table(at).columns)  # off by default
    at.toggle(key="leaderboard_cost").set_value(True).run()
    table = main_table(at)
    for label in ("bm25-code", "dense-minilm"):
        cost = load_run(app_env.runs_dir, table.loc[label, "run id"]).meta["cost"]
        assert table.loc[label, "p50 ms"] == pytest.approx(cost["latency_ms_p50"])
        assert table.loc[label, "p95 ms"] == pytest.approx(cost["latency_ms_p95"])
        assert table.loc[label, "index MB"] == pytest.approx(cost["index_bytes"] / 2**20)
        assert table.loc[label, "peak MB"] == pytest.approx(cost["peak_memory_mb"])
    assert table.loc["dense-minilm", "p50 ms"] > table.loc["bm25-code", "p50 ms"]  # dense embeds each query
    assert any(chart.proto.spec and "latency" in chart.proto.spec for chart in at.get("plotly_chart"))


def test_each_row_with_a_manifest_is_offered_for_download(app_env, csn_mini):
    from core.evaluation.manifest import run_manifest
    from core.retrieval.runs import load_run

    at = evaluated(open_leaderboard(("bm25-code", "dense-minilm")))
    assert at.selectbox(key="leaderboard_manifest").options == ["bm25-code", "dense-minilm"]
    manifest = run_manifest(load_run(app_env.runs_dir, main_table(at).loc["dense-minilm", "run id"]))
    assert manifest["dataset"]["corpus_hash"] == csn_mini.corpus_hash and "dense-minilm" in manifest["profiles"]


def test_clicking_a_metric_cell_opens_the_breakdown_on_that_run_worst_first(app_env):
    at = evaluated(open_leaderboard(("bm25-code", "dense-minilm")))
    at.session_state["leaderboard_table"] = {"selection": {"rows": [], "columns": [], "cells": [(1, "mrr@10")]}}
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Per-query breakdown"
    assert at.query_params["focus"] in ("dense-minilm", ["dense-minilm"])
    assert at.query_params["metric"] in ("mrr@10", ["mrr@10"])
