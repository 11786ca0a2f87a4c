"""The query explorer shows each profile's ranking as Engine computes it, marks the positive, and never runs query text."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.retrieval.highlight import shared_identifiers

APP = Path(__file__).resolve().parents[2] / "app.py"
PROFILES = ("bm25-code", "dense-minilm", "hybrid-rrf")
CODE_QUERY = "def load_json(path):\n    with open(path) as handle:\n        return json.load(handle)"


def open_explorer(qid: str | None = None, profiles=PROFILES) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.query_params["dataset"] = "csn-mini"
    at.query_params["profiles"] = ",".join(profiles)
    if qid:
        at.query_params["qid"] = qid
    at.run()
    at.switch_page("pages/explorer.py").run()
    assert not at.exception, at.exception
    return at


def search(at: AppTest, text: str) -> AppTest:
    at.text_area(key="explorer_text").input(text)
    at.button(key="explorer_search").click().run()
    assert not at.exception, at.exception
    return at


def result_tables(at: AppTest, profiles=PROFILES) -> dict[str, object]:
    """Each profile's result table, in the sidebar's profile order (one per profile column)."""
    tables = [df.value for df in at.dataframe if "doc id" in df.value.columns]
    assert len(tables) == len(profiles)
    return dict(zip(profiles, tables))


def test_a_pasted_code_query_shows_each_profiles_ranking_as_engine_search_returns_it(app_env, csn_engine):
    at = search(open_explorer(), CODE_QUERY)
    assert at.text_area(key="explorer_text").label == "Code query"
    tables = result_tables(at)
    for name, table in tables.items():
        expected = csn_engine.search(name, CODE_QUERY, depth=100).ranking.top(10)
        assert list(table["doc id"]) == list(expected.doc_ids), name
        assert list(table["score"]) == pytest.approx(list(expected.scores), abs=1e-6), name
        assert list(table["rank"]) == list(range(1, 11))
        assert list(table["document"]) == [csn_engine.dataset.document(d).full_text for d in expected.doc_ids]
    assert [m.label for m in at.metric] == ["Latency"] * len(PROFILES)
    top = tables["bm25-code"].iloc[0]
    assert top["shared"] == ", ".join(shared_identifiers(CODE_QUERY, top["document"])) != ""


def test_the_slider_changes_how_many_documents_are_shown(app_env):
    at = search(open_explorer(profiles=("bm25-code",)), CODE_QUERY)
    at.slider(key="explorer_k").set_value(25).run()
    assert len(result_tables(at, ("bm25-code",))["bm25-code"]) == 25


def test_a_benchmark_query_marks_its_positive_at_the_rank_of_the_profiles_run(app_env, csn_engine):
    dataset = csn_engine.dataset
    runs = {name: csn_engine.run(name) for name in PROFILES}
    # A query whose positive is not first everywhere makes the check meaningful.
    query = next((q for q in dataset.judged_queries
                  if any(runs[n].ranking(q.id).rank_of(dataset.qrels.positives(q.id)[0]) != 1 for n in PROFILES)),
                 dataset.judged_queries[0])
    positive = dataset.qrels.positives(query.id)[0]
    at = open_explorer(qid=query.id)
    at.slider(key="explorer_k").set_value(50).run()
    assert at.radio(key="explorer_mode").value == "Benchmark query"
    assert at.selectbox(key="explorer_qid").value == query.id
    assert at.code[0].value == query.text
    shown = {m.label: m.value for m in at.metric}
    tables = result_tables(at)
    found_ranks = [m.value for m in at.metric if m.label == "Relevant at"]
    for name, found in zip(PROFILES, found_ranks):
        rank = runs[name].ranking(query.id).rank_of(positive)
        assert found == (str(rank) if rank is not None else "> 100"), name
        marked = tables[name][tables[name]["relevant"] == "✅"]
        if rank is not None and rank <= 50:
            assert list(marked["rank"]) == [rank] and list(marked["doc id"]) == [positive]
        else:
            assert marked.empty
    assert "Relevant at" in shown


def test_choosing_a_benchmark_query_puts_its_id_in_the_url(app_env, csn_mini):
    at = open_explorer(profiles=("bm25-code",))
    at.radio(key="explorer_mode").set_value("Benchmark query").run()
    second = csn_mini.queries[1].id
    at.selectbox(key="explorer_qid").set_value(second).run()
    assert at.query_params["qid"] == [second] or at.query_params["qid"] == second


def test_an_empty_query_shows_a_warning_and_no_exception(app_env):
    at = search(open_explorer(profiles=("bm25-code",)), "   \n  ")
    assert any("empty" in w.value for w in at.warning)
    assert not at.exception and not at.error
    assert not at.dataframe


def test_html_in_the_query_is_never_rendered_as_an_element(app_env):
    at = search(open_explorer(profiles=("bm25-code",)), "<script>alert(1)</script>\n<img src=x onerror=alert(2)> load json file")
    assert not at.exception
    assert not at.get("html")
    for block in [*at.markdown, *at.caption, *at.warning, *at.info]:
        assert "<script" not in block.value and "<img" not in block.value
    assert len(result_tables(at, ("bm25-code",))["bm25-code"]) == 10
