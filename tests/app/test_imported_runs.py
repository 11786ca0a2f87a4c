"""Imported TREC runs are first-class: breakdown, failure cases and significance show them beside the profiles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.compare import metric_column, rank_column
from core.evaluation.failures import find_failures
from core.evaluation.manifest import import_trec_run
from core.evaluation.metrics import evaluate
from core.retrieval.runs import read_trec, write_trec
from ui.render import escape_markdown

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def imported(session_workspace, csn_engine, csn_mini, tmp_path_factory):
    """bm25-plain's run written as a TREC file and imported: a run no selected profile makes."""
    path = write_trec(csn_engine.run("bm25-plain"), tmp_path_factory.mktemp("trec") / "plain.trec", tag="outside-bm25")
    run = import_trec_run(session_workspace, path, csn_mini)
    return run, read_trec(path, dataset="csn-mini"), f"outside-bm25 [{run.run_id}]"


def open_page(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code,dense-minilm", **params})
    at.run()
    at.switch_page(page).run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def test_sidebar_offers_saved_runs_and_the_breakdown_shows_the_imported_one(app_env, imported, csn_mini):
    run, trec, label = imported
    at = open_page("pages/breakdown.py", runs=run.run_id)
    table = next(frame for frame in at.dataframe if frame.key == "breakdown_table").value
    expected = evaluate(csn_mini.qrels, trec, ["ndcg@10"]).per_query.loc[table.index]
    np.testing.assert_allclose(table[metric_column(label, "ndcg@10")].to_numpy(float), expected["ndcg@10"], atol=1e-12)
    np.testing.assert_array_equal(table[rank_column(label)].to_numpy(float), expected["positive_rank"].to_numpy(float))


def test_a_leaderboard_link_opens_the_breakdown_on_that_run_worst_first(app_env, imported, csn_mini):
    run, trec, label = imported
    at = open_page("pages/breakdown.py", runs=run.run_id, focus=label, metric="mrr@10")
    assert at.selectbox(key="breakdown_a").value == label and at.selectbox(key="breakdown_metric").value == "mrr@10"
    assert at.selectbox(key="breakdown_b").value != label  # B is another run, so the A-vs-B charts show
    table = next(frame for frame in at.dataframe if frame.key == "breakdown_table").value
    values = table[metric_column(label, "mrr@10")].to_numpy(float)
    assert list(values) == sorted(values)  # worst first
    assert values[0] == evaluate(csn_mini.qrels, trec, ["mrr@10"]).per_query["mrr@10"].min()


def test_a_query_opens_the_two_run_view_in_one_click(app_env, imported):
    run, _, label = imported
    at = open_page("pages/breakdown.py", runs=run.run_id, a=label, b="dense-minilm")
    at.session_state["breakdown_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    query_id = next(frame for frame in at.dataframe if frame.key == "breakdown_table").value.index[0]
    at.button(key="breakdown_compare").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Compare two runs"
    assert at.selectbox(key="compare_runs_a").value == run.run_id
    assert at.selectbox(key="compare_runs_b").value == "dense-minilm"
    assert at.selectbox(key="compare_runs_qid").value == query_id


def test_failure_cases_of_an_imported_run(app_env, imported, csn_mini):
    run, trec, label = imported
    at = open_page("pages/failures.py", runs=run.run_id, profile=label)
    assert at.selectbox(key="failures_profile").value == label
    expected = find_failures(csn_mini, trec, 10)
    assert at.metric[0].value == f"{len(expected)} of {len(csn_mini.judged_queries)}"


def test_significance_tests_an_imported_run_against_the_profiles(app_env, imported):
    run, _, label = imported
    at = open_page("pages/compare.py", runs=run.run_id)
    comparisons = next(frame.value for frame in at.dataframe if "p_value" in frame.value.columns)
    assert label in set(comparisons["a"]) | set(comparisons["b"])
    assert len(comparisons) == 3  # every pair of bm25-code, dense-minilm and the imported run


def solved_at(qrels, run, queries, k=10) -> dict[str, bool]:
    """Per query, whether ``run`` has a relevant document in its top k (a hand check, no metric code)."""
    return {q: bool(set(run.ranking(q).top(k).doc_ids) & set(qrels.positives(q))) for q in queries}


def test_complementarity_counts_an_imported_runs_queries(app_env, imported, csn_engine, csn_mini):
    run, trec, label = imported
    at = open_page("pages/complementarity.py", runs=run.run_id)
    assert at.multiselect(key="complementarity_members").value == ["bm25-code", "dense-minilm", run.run_id]
    queries = [query.id for query in csn_mini.judged_queries]
    per_query = {name: solved_at(csn_mini.qrels, r, queries)
                 for name, r in [("bm25-code", csn_engine.run("bm25-code")), ("dense-minilm", csn_engine.run("dense-minilm")),
                                 (label, trec)]}
    alone = sum(per_query[label][q] and not per_query["bm25-code"][q] and not per_query["dense-minilm"][q] for q in queries)
    everyone = sum(all(per_query[n][q] for n in per_query) for q in queries)
    nobody = sum(not any(per_query[n][q] for n in per_query) for q in queries)
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics[escape_markdown(f"{label} only")] == f"{alone} / {len(queries)}"
    assert metrics["all 3"] == f"{everyone} / {len(queries)}"
    assert metrics["none"] == f"{nobody} / {len(queries)}"
    assert alone + everyone + nobody < len(queries)  # the three groups are not the whole story: the counts tell runs apart
    oracle = next(frame.value for frame in at.dataframe if "oracle − run" in frame.value.columns)
    assert label in set(map(str, oracle.index)) | set(map(str, oracle.get("run", []))), oracle


def test_slice_finder_slices_an_imported_runs_per_query_values(app_env, imported, csn_mini):
    run, trec, label = imported
    at = open_page("pages/slices.py", runs=run.run_id)
    assert label in at.selectbox(key="slices_profile").options
    at.selectbox(key="slices_profile").set_value(label).run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    metric = at.selectbox(key="slices_metric").value
    values = evaluate(csn_mini.qrels, trec, [metric]).per_query[metric]
    assert any(escape_markdown(f"of {label}: {values.mean():.4f}.") in caption.value for caption in at.caption)
    table = next(frame.value for frame in at.dataframe if "slice mean" in frame.value.columns)
    for _, row in table.head(3).iterrows():  # each slice's mean is the mean of the imported run's values over its queries
        rest = values.mean() * len(values) - row["slice mean"] * row["queries"]
        assert abs(rest / (len(values) - row["queries"]) - row["rest mean"]) < 1e-9


def test_the_embedding_map_is_coloured_by_an_imported_run(app_env, imported, csn_engine, csn_mini):
    import json

    run, trec, label = imported
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code,dense-minilm", "runs": run.run_id})
    at.run()
    at.switch_page("pages/embedding_map.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert at.selectbox(key="map_profile").value == "dense-minilm" and at.selectbox(key="map_run").value == run.run_id
    dense = csn_engine.run("dense-minilm")
    query = next(q.id for q in csn_mini.judged_queries  # a query the imported run ranks differently from the dense model
                 if trec.ranking(q.id).rank_of(csn_mini.qrels.positives(q.id)[0]) != dense.ranking(q.id).rank_of(csn_mini.qrels.positives(q.id)[0])
                 and trec.ranking(q.id).rank_of(csn_mini.qrels.positives(q.id)[0]) is not None)
    rank = trec.ranking(query).rank_of(csn_mini.qrels.positives(query)[0])
    at.selectbox(key="map_query").set_value(query).run()
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "query → positive" in [trace["name"] for trace in chart["data"]]
    line = next(m.value for m in at.markdown if "positive" in m.value and escape_markdown(query) in m.value)
    assert f"at rank {rank} under {escape_markdown(label)}" in line, line
