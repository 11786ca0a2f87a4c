"""The embedding map page draws every point from core's cached map, and a profile without vectors gets a message."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_page(profiles: str = "bm25-code,dense-minilm") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"dataset": "csn-mini", "profiles": profiles})
    at.run()
    at.switch_page("pages/embedding_map.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def test_the_map_draws_every_document_and_query_and_a_line_to_the_chosen_querys_positive(app_env, csn_mini):
    import json

    at = open_page()
    assert at.selectbox(key="map_profile").value == "dense-minilm"
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {trace["name"]: trace for trace in chart["data"]}
    assert traces["documents"]["type"] == "scattergl"
    assert len(traces["documents"]["x"]["bdata"] if isinstance(traces["documents"]["x"], dict) else traces["documents"]["x"]) > 0
    assert sorted(traces["queries"]["customdata"]) == sorted(q.id for q in csn_mini.judged_queries)
    query = csn_mini.judged_queries[0]
    at.selectbox(key="map_query").set_value(query.id).run()
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "query → positive" in [trace["name"] for trace in chart["data"]]
    assert any(query.id in m.value for m in at.markdown)


def test_a_profile_without_vectors_gets_a_message_not_a_traceback(app_env):
    at = open_page()
    at.selectbox(key="map_profile").set_value("bm25-code").run()
    assert not at.exception
    assert any("has no vectors to map" in error.value for error in at.error)
