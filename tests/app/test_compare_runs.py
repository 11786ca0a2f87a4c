"""The two-run page shows core's comparison: queries ranked by the chosen measure, both lists with their markers, URL state."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.run_diff import query_diffs, rank_queries, side_by_side
from core.retrieval.runs import Run, save_run
from ui.side_by_side import FOLLOWED, document_header

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PROFILES = ("bm25-code", "dense-minilm")


def open_compare(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update({"dataset": "csn-mini", "profiles": ",".join(PROFILES), **params})
    at.run()
    at.switch_page("pages/compare_runs.py").run()
    return at


def ok(at: AppTest) -> AppTest:
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def ranked_table(at: AppTest):
    return next(frame for frame in at.dataframe if frame.key and frame.key.startswith("compare_runs_table")).value


def lists_block(at: AppTest) -> str:
    """Every markdown the page drew, joined (the two lists are markdown in bordered containers)."""
    return "\n".join(m.value for m in at.markdown)


@pytest.fixture(scope="module")
def diffs(csn_engine, csn_mini):
    return query_diffs(csn_mini, csn_engine.run("bm25-code"), csn_engine.run("dense-minilm"))


def test_queries_are_listed_most_interesting_first_with_cores_numbers(app_env, diffs):
    at = ok(open_compare(a="bm25-code", b="dense-minilm"))
    table = ranked_table(at)
    expected = rank_queries(diffs, "ndcg_gap")
    assert list(table.index) == list(expected.index)
    assert table["delta"].to_numpy() == pytest.approx(expected["delta"].to_numpy(), abs=1e-12)
    at.selectbox(key="compare_runs_measure").set_value("rbo").run()
    assert list(ranked_table(ok(at)).index) == list(rank_queries(diffs, "rbo").index)
    assert at.query_params["measure"] in ("rbo", ["rbo"])


def test_the_url_opens_a_query_and_both_lists_carry_cores_markers(app_env, csn_engine, csn_mini, diffs):
    query_id = rank_queries(diffs, "ndcg_gap").index[0]
    at = ok(open_compare(a="bm25-code", b="dense-minilm", qid=query_id))
    assert at.selectbox(key="compare_runs_qid").value == query_id
    left, right = side_by_side(csn_engine.run("bm25-code"), csn_engine.run("dense-minilm"), csn_mini.qrels, query_id)
    block = lists_block(at)
    for doc in [*left, *right]:
        assert document_header(doc, False) in block  # rank, id, positive badge and marker, as core computed them
    assert block.count(":green-badge[positive") == sum(d.relevant for d in [*left, *right])
    assert at.query_params["qid"] in (query_id, [query_id]) and at.query_params["a"] in ("bm25-code", ["bm25-code"])


def test_following_a_document_selects_it_in_both_lists(app_env, csn_engine, csn_mini, diffs):
    query_id = rank_queries(diffs, "ndcg_gap").index[0]
    at = ok(open_compare(a="bm25-code", b="dense-minilm", qid=query_id))
    left, right = side_by_side(csn_engine.run("bm25-code"), csn_engine.run("dense-minilm"), csn_mini.qrels, query_id)
    both = next(d.doc_id for d in left if d.doc_id in {r.doc_id for r in right})
    at.selectbox(key=f"compare_runs_follow|{query_id}").set_value(both).run()
    assert lists_block(ok(at)).count(FOLLOWED) == 2


def test_an_imported_run_is_compared_like_a_profile(app_env, csn_engine, tmp_path):
    from core.retrieval.runs import read_trec, write_trec

    path = write_trec(csn_engine.run("bm25-plain"), tmp_path / "plain.trec", tag="plain-import")
    imported = save_run(read_trec(path, dataset="csn-mini"), app_env.runs_dir)
    at = ok(open_compare(a=imported.run_id, b="dense-minilm"))
    assert "plain-import" in at.selectbox(key="compare_runs_a").format_func(imported.run_id)
    expected = query_diffs(csn_engine.dataset, read_trec(path, dataset="csn-mini"), csn_engine.run("dense-minilm"))
    table = ranked_table(at)
    assert table["delta"].to_numpy() == pytest.approx(rank_queries(expected, "ndcg_gap")["delta"].to_numpy(), abs=1e-12)


def test_a_run_of_another_dataset_gets_a_clear_message(app_env, csn_engine):
    wrong = save_run(Run("cosqa-run", csn_engine.run("bm25-code").rankings, "csn-mini", {"kind": "imported"},
                         {"corpus_hash": "f" * 64}), app_env.runs_dir)
    at = open_compare(a=wrong.run_id, b="dense-minilm")
    assert not at.exception
    assert any("another version" in e.value for e in at.error)


def test_a_run_missing_queries_is_shown_with_a_warning(app_env, csn_engine):
    full = csn_engine.run("bm25-code")
    partial = save_run(Run("partial", dict(list(full.rankings.items())[:25]), "csn-mini", {"kind": "imported"}, {}),
                       app_env.runs_dir)
    at = ok(open_compare(a=partial.run_id, b="dense-minilm"))
    assert any("no ranking for 15 of 40" in w.value for w in at.warning)


def test_an_imported_beir_zip_compares_like_a_bundled_set(app_env, mini_data_dir, tmp_path):
    """cosqa-mini zipped and imported as a new dataset: the two-run page ranks its queries as core does."""
    import shutil

    from core.data.archives import import_zip
    from core.data.catalog import open_dataset
    from core.retrieval.engine import Engine
    from core.retrieval.profiles import default_profiles

    archive = shutil.make_archive(str(tmp_path / "cosqa-zipped"), "zip", mini_data_dir / "cosqa-mini")
    import_zip(archive, app_env.datasets_dir, name="cosqa-zipped", overwrite=True)
    dataset = open_dataset(app_env, "cosqa-zipped")
    engine = Engine(app_env, dataset, default_profiles())
    expected = rank_queries(query_diffs(dataset, engine.run("bm25-plain"), engine.run("dense-minilm")), "rbo")
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"dataset": "cosqa-zipped", "profiles": "bm25-plain,dense-minilm", "a": "bm25-plain",
                            "b": "dense-minilm", "measure": "rbo"})
    at.run()
    at.switch_page("pages/compare_runs.py").run()
    ok(at)
    table = ranked_table(at)
    assert list(table.index) == list(expected.index)
    assert table["rbo"].to_numpy() == pytest.approx(expected["rbo"].to_numpy(), abs=1e-12)
    assert at.selectbox(key="compare_runs_qid").value == expected.index[0]
