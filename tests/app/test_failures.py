"""The failure cases page lists core's failures, explains the chosen one, and saves tags to tags.json."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.failures import explain_failure, find_failures
from core.evaluation.tags import get_tag, load_tags, remove_tag

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PROFILES = ("bm25-code", "dense-minilm")


@pytest.fixture(scope="module")
def runs(csn_engine):
    return {name: csn_engine.run(name) for name in PROFILES}


def open_failures(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update({"dataset": "csn-mini", "profiles": ",".join(PROFILES), **params})
    at.run()
    at.switch_page("pages/failures.py").run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]


def failure_table(at: AppTest):
    return next(frame.value for frame in at.dataframe if "positive rank" in frame.value.columns and "tag" in frame.value.columns)


def test_page_lists_the_same_failures_as_core_for_the_chosen_profile_and_k(app_env, csn_mini, runs):
    at = open_failures(profile="dense-minilm")
    expected = find_failures(csn_mini, runs["dense-minilm"], k=10)
    assert expected, "dense-minilm should miss some csn-mini queries at 10"
    assert list(failure_table(at)["query_id"]) == [f.query_id for f in expected]
    assert at.metric[0].value == f"{len(expected)} of 40"
    at.selectbox(key="failures_profile").set_value("bm25-code").run()
    at.number_input(key="failures_k").set_value(1).run()
    assert_clean(at)
    assert list(failure_table(at)["query_id"]) == [f.query_id for f in find_failures(csn_mini, runs["bm25-code"], k=1)]


def test_choosing_a_failure_shows_its_positive_rank_and_the_documents_above_it(app_env, csn_mini, runs):
    failures = find_failures(csn_mini, runs["dense-minilm"], k=10)
    chosen = failures[-1]  # the shallowest miss: it has documents above it that were retrieved
    at = open_failures(profile="dense-minilm")
    at.selectbox(key="failures_qid").set_value(chosen.query_id).run()
    assert_clean(at)
    assert at.query_params["qid"] == chosen.query_id
    explanation = explain_failure(csn_mini, runs["dense-minilm"], chosen.query_id, 10, [runs["bm25-code"]])
    rank = "not retrieved" if chosen.positive_rank is None else str(chosen.positive_rank)
    assert any(f"rank **{rank}**" in m.value for m in at.markdown)
    assert at.code[0].value == csn_mini.query(chosen.query_id).text
    above = next(frame.value for frame in at.dataframe if "terms the positive lacks" in frame.value.columns)
    assert list(above["doc_id"]) == [d.document.id for d in explanation.outranking]
    assert list(above["shared terms"]) == [", ".join(d.shared_terms) for d in explanation.outranking]
    others = next(frame.value for frame in at.dataframe if list(frame.value.columns) == ["profile", "positive rank"])
    other_rank = explanation.other_ranks[0].rank
    assert others.iloc[0].tolist() == ["bm25-code", "not retrieved" if other_rank is None else str(other_rank)]


def test_the_qid_in_the_url_opens_that_failure(app_env, csn_mini, runs):
    failures = find_failures(csn_mini, runs["dense-minilm"], k=10)
    at = open_failures(profile="dense-minilm", qid=failures[-1].query_id)
    assert at.selectbox(key="failures_qid").value == failures[-1].query_id


def test_saving_a_tag_writes_it_to_tags_json_and_shows_it_in_the_tags_table(app_env, session_workspace, csn_mini, runs):
    chosen = find_failures(csn_mini, runs["dense-minilm"], k=10)[0]
    at = open_failures(profile="dense-minilm", qid=chosen.query_id)
    case = f"csn-mini|dense-minilm|{chosen.query_id}"
    try:
        at.selectbox(key=f"failures_reason|{case}").set_value("wrong qrel")
        at.text_area(key=f"failures_note|{case}").input("the docstring describes <b>another</b> function")
        at.button(key=next(b.key for b in at.button if b.label == "Save tag")).click().run()
        assert_clean(at)
        tag = get_tag(session_workspace, "csn-mini", "dense-minilm", chosen.query_id)
        assert (tag.reason, tag.note) == ("wrong qrel", "the docstring describes <b>another</b> function")
        assert any("Saved the tag" in s.value for s in at.success)
        tags = next(frame.value for frame in at.dataframe if "note" in frame.value.columns)
        assert chosen.query_id in set(tags["query_id"])
        assert failure_table(at).set_index("query_id").loc[chosen.query_id, "tag"] == "wrong qrel"
    finally:
        remove_tag(session_workspace, "csn-mini", "dense-minilm", chosen.query_id)


def test_a_corrupt_tags_file_is_reported_on_the_page_and_kept(app_env, session_workspace):
    path = session_workspace.tags_file
    before = path.read_bytes() if path.is_file() else None
    path.write_bytes(b"{ broken")
    try:
        at = open_failures(profile="dense-minilm")
        assert any("not valid JSON" in w.value for w in at.warning)
        assert path.read_bytes() == b"{ broken"
        assert load_tags(session_workspace).problems
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)
