"""The complementarity page shows core's groups, oracle and fusions, and its links open the breakdown on those queries."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.complementarity import complementarity, oracle_comparison
from core.evaluation.metrics import evaluate
from ui.links import decode_query_ids
from ui.render import escape_markdown

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_page(profiles: str = "bm25-code,dense-minilm") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"dataset": "csn-mini", "profiles": profiles})
    at.run()
    at.switch_page("pages/complementarity.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def test_groups_oracle_and_left_on_the_table_are_cores(app_env, csn_engine, csn_mini):
    at = open_page()
    members = [evaluate(csn_mini.qrels, csn_engine.run(n), ["hit@10", "ndcg@10"]) for n in ("bm25-code", "dense-minilm")]
    fusions = [evaluate(csn_mini.qrels, csn_engine.run(n), ["hit@10", "ndcg@10"]) for n in ("hybrid-rrf", "hybrid-weighted")]
    expected = complementarity(members, "hit@10")
    shown = {m.label: m.value for m in at.metric}
    for group in expected.summary():
        assert shown[escape_markdown(group.label)] == f"{group.queries} / {len(csn_mini.judged_queries)}"  # labels are escaped markdown
    comparison = oracle_comparison(members, fusions, "ndcg@10")
    assert shown[escape_markdown("Oracle nDCG@10")] == f"{comparison.oracle:.4f}"
    assert shown[f"Left on the table (oracle − {escape_markdown(comparison.best_fusion[0])})"] == f"{comparison.left_on_the_table:.4f}"
    oracle = next(frame.value for frame in at.dataframe if "oracle − run" in frame.value.columns)
    assert list(oracle.index) == ["bm25-code", "dense-minilm", "hybrid-rrf", "hybrid-weighted", "oracle"]


def test_a_group_link_opens_the_breakdown_showing_exactly_its_queries(app_env, csn_engine, csn_mini):
    at = open_page()
    links = [link for link in at.get("page_link") if link.proto.label == "open in the breakdown"]
    assert links
    members = [evaluate(csn_mini.qrels, csn_engine.run(n), ["hit@10"]) for n in ("bm25-code", "dense-minilm")]
    groups = [g for g in complementarity(members, "hit@10").summary() if g.queries]
    link = links[0].proto
    params = dict(p.split("=", 1) for p in link.query_string.split("&")) if link.query_string else {}
    from urllib.parse import unquote_plus
    assert decode_query_ids(unquote_plus(params["qids"])) == list(groups[0].query_ids)
    from urllib.parse import parse_qs
    assert parse_qs(link.query_string)["profiles"] == ["bm25-code", "dense-minilm"]  # the repeated form the sidebar keeps

    breakdown = AppTest.from_file(APP, default_timeout=300)
    breakdown.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code,dense-minilm",
                                   "qids": unquote_plus(params["qids"])})
    breakdown.run()
    breakdown.switch_page("pages/breakdown.py").run()
    assert not breakdown.exception and not breakdown.error
    table = next(frame for frame in breakdown.dataframe if frame.key == "breakdown_table").value
    assert sorted(table.index) == sorted(groups[0].query_ids)


def test_one_profile_gets_a_message_not_a_traceback(app_env):
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code"})
    at.run()
    at.switch_page("pages/complementarity.py").run()
    assert not at.exception
    assert any("two or more" in info.value for info in at.info)
