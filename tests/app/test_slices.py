"""The slice finder page lists core's slices, and a slice's link opens the breakdown on exactly its queries."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.metrics import evaluate
from core.evaluation.slices import difference_values, query_features, slices_for
from ui.links import decode_query_ids
from ui.render import escape_markdown

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def slice_tables(at: AppTest) -> list:
    """The slice tables in page order: where the profile does worse, then where B beats A (AppTest drops their keys)."""
    return [frame.value for frame in at.dataframe if "p (Holm)" in frame.value.columns]


def open_page(profiles: str = "bm25-code,dense-minilm") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"dataset": "csn-mini", "profiles": profiles})
    at.run()
    at.switch_page("pages/slices.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def test_slices_of_a_profile_are_cores_and_link_to_their_queries(app_env, csn_engine, csn_mini):
    at = open_page()
    evaluation = evaluate(csn_mini.qrels, csn_engine.run("bm25-code"), ["ndcg@10"])
    expected = slices_for(evaluation.per_query["ndcg@10"], query_features(csn_mini), "lower", min_size=10)
    table = slice_tables(at)[0]
    assert list(table["slice"]) == list(expected["slice"])
    assert list(table["p (Holm)"]) == pytest.approx(list(expected["p (Holm)"]))
    link = next(link.proto for link in at.get("page_link") if link.proto.label == f"Open {escape_markdown(expected.at[0, 'slice'])} in the breakdown")
    params = dict(p.split("=", 1) for p in link.query_string.split("&"))
    assert decode_query_ids(unquote_plus(params["qids"])) == list(expected.at[0, "query_ids"])


def test_where_b_beats_a_tests_the_difference(app_env, csn_engine, csn_mini):
    at = open_page()
    a = evaluate(csn_mini.qrels, csn_engine.run("bm25-code"), ["ndcg@10"])
    b = evaluate(csn_mini.qrels, csn_engine.run("dense-minilm"), ["ndcg@10"])
    expected = slices_for(difference_values(a, b, "ndcg@10"), query_features(csn_mini), "higher", min_size=10)
    table = slice_tables(at)[1]
    assert list(table["slice"]) == list(expected["slice"])


def test_a_minimum_size_larger_than_the_data_gets_a_message(app_env):
    at = open_page()
    at.number_input(key="slices_min_size").set_value(500).run()
    assert not at.exception
    assert any("larger than the 40" in error.value for error in at.error)
