"""The leakage page shows both audits of core.training.leakage (pair checks, every text) and writes filter_leaked's dataset."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.catalog import open_dataset
from core.data.datasets import Dataset, Qrels, load_dataset, write_dataset
from core.training.leakage import ALL_KINDS, audit, audit_texts, filter_leaked

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def fresh_env(app_at, workspace):
    """A fresh workspace holding csn-eval: 10 of csn-mini's queries, so exactly those leak from csn-mini, and a corpus
    of 13 of its docstrings (those 10 queries' answers and 3 that no eval query judges)."""
    train = open_dataset(workspace, "csn-mini")
    answers = [train.qrels.positives(q.id)[0] for q in train.judged_queries[:13]]
    evaluation = Dataset("csn-eval", tuple(train.document(d) for d in answers), tuple(train.judged_queries[:10]),
                         Qrels({q.id: dict(train.qrels.grades(q.id)) for q in train.judged_queries[:10]}))
    write_dataset(evaluation, workspace.datasets_dir / "csn-eval")
    return app_at(workspace, workspace.data_dir)


def audited(train: str = "csn-mini", evals: tuple[str, ...] = ("csn-eval",)) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["dataset"] = "csn-mini"
    at.run()
    at.switch_page("pages/leakage.py").run()
    at.selectbox(key="leak_train").select(train).run()
    at.multiselect(key="leak_evals").set_value(list(evals)).run()
    at.button(key="leak_run").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def table_with(at: AppTest, column: str):
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def test_counts_and_overlaps_equal_core_leakage_audit(fresh_env):
    at = audited()
    report = audit(open_dataset(fresh_env, "csn-mini"), open_dataset(fresh_env, "csn-eval"))
    counts = table_with(at, "any check")
    assert list(counts.index) == ["csn-eval"]
    for kind in ALL_KINDS:
        assert counts.loc["csn-eval", kind] == report.counts()[kind]
    assert counts.loc["csn-eval", "any check"] == len(report.leaked_eval_ids()) == 10
    overlaps = table_with(at, "train_query_id")
    expected = report.to_frame()
    assert len(overlaps) == len(expected)
    assert sorted(zip(overlaps["kind"], overlaps["eval_query_id"])) == sorted(zip(expected["kind"], expected["eval_query_id"]))


def test_write_filtered_train_set_drops_what_both_audits_found_by_default(fresh_env):
    at = audited()
    assert at.checkbox(key="leak_filter_texts").value
    at.text_input(key="leak_filtered_name").input("csn-clean").run()
    at.button(key="leak_write").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    train, evaluation = open_dataset(fresh_env, "csn-mini"), open_dataset(fresh_env, "csn-eval")
    expected = filter_leaked(train, [audit(train, evaluation), *audit_texts(train, [evaluation])], "csn-clean")
    written = load_dataset(fresh_env.datasets_dir / "csn-clean")
    assert [q.id for q in written.queries] == [q.id for q in expected.queries]
    assert [d.id for d in written.documents] == [d.id for d in expected.documents]
    unjudged_answers = {train.qrels.positives(q.id)[0] for q in train.judged_queries[10:13]}
    assert not unjudged_answers & set(written.doc_index) and len(written.judged_queries) <= 27
    assert "csn-clean" in at.success[0].value.replace("\\", "")


def test_unticking_the_every_text_audit_filters_by_the_pair_checks_alone(fresh_env):
    at = audited()
    at.checkbox(key="leak_filter_texts").uncheck().run()
    at.text_input(key="leak_filtered_name").input("csn-clean").run()
    at.button(key="leak_write").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    train = open_dataset(fresh_env, "csn-mini")
    expected = filter_leaked(train, [audit(train, open_dataset(fresh_env, "csn-eval"))], "csn-clean")
    written = load_dataset(fresh_env.datasets_dir / "csn-clean")
    assert [q.id for q in written.queries] == [q.id for q in expected.queries]
    assert len(written.judged_queries) == 30 and len(written.documents) == len(expected.documents)


def test_a_taken_filtered_name_is_refused(fresh_env):
    at = audited()
    at.text_input(key="leak_filtered_name").input("cosqa-mini").run()
    at.button(key="leak_write").click().run()
    assert "already exists" in at.error[0].value


def test_unrelated_sets_show_no_overlap_and_nothing_to_filter(fresh_env):
    at = audited("cosqa-mini", ("csn-eval",))
    assert table_with(at, "any check").loc["csn-eval", "any check"] == 0
    assert at.button(key="leak_write").disabled


def test_the_audit_of_every_eval_text_is_shown_per_category_beside_the_pair_checks(fresh_env):
    from core.training.leakage import TEXT_CATEGORIES

    at = audited()
    train, evaluation = open_dataset(fresh_env, "csn-mini"), open_dataset(fresh_env, "csn-eval")
    expected = audit_texts(train, [evaluation])[0].counts()
    shown = table_with(at, "train query = eval document (exact)")
    assert list(shown.index) == ["csn-eval"] and list(shown.columns) == list(TEXT_CATEGORIES)
    assert shown.loc["csn-eval"].to_dict() == expected
    assert expected["train query = eval query (exact)"] == 10  # csn-eval's ten queries are csn-mini's
    assert expected["train document = eval document (exact)"] == len({d.text for d in evaluation.documents} & {d.text for d in train.documents})
