"""The extra ``python -m core`` subcommands, driven through ``core.cli.main`` as a user would."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.data.catalog import open_dataset
from core.cli.main import main
from core.data.datasets import Dataset, Qrels, load_dataset, write_dataset
from core.errors import DatasetError
from core.training.leakage import TEXT_CATEGORIES, audit, audit_many, audit_texts, filter_leaked
from core.evaluation.metrics import evaluate
from core.evaluation.significance import compare_all, marked_leaderboard
from core.data.source_benchmark import check_source_root
from core.evaluation.sweep import sweep_rerank_pool

JSON_PACKAGE = Path(json.__file__).parent  # a real source tree present wherever Python is: 14 documented functions


def cli(workspace, *args: str) -> int:
    return main(["--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), *args])


def test_build_benchmark_writes_a_dataset_into_the_workspace(workspace, capsys):
    assert cli(workspace, "build-benchmark", "--root", str(JSON_PACKAGE), "--name", "json-bench", "--queries", "5",
               "--languages", "python", "--direction", "doc2code", "--seed", "3") == 0
    assert "built json-bench: 5 queries, 14 documents (python)" in capsys.readouterr().out
    dataset = load_dataset(workspace.datasets_dir / "json-bench")
    assert len(dataset.queries) == 5 and len(dataset.documents) == 14
    meta = json.loads((workspace.datasets_dir / "json-bench" / "meta.json").read_text())
    assert (meta["direction"], meta["seed"]) == ("doc2code", 3)


@pytest.mark.parametrize("root,message", [
    ("/no/such/folder", "does not exist"),
    ("https://github.com/psf/requests", "not a local path"),
    ("git@github.com:psf/requests.git", "not a local path"),
    (json.__file__, "is a file"),
])
def test_build_benchmark_refuses_a_root_that_is_not_a_local_folder(workspace, capsys, root, message):
    assert cli(workspace, "build-benchmark", "--root", root, "--name", "x") == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (workspace.datasets_dir / "x").exists()


def test_build_benchmark_refuses_a_name_already_taken(workspace, capsys):
    assert cli(workspace, "build-benchmark", "--root", str(JSON_PACKAGE), "--name", "csn-mini") == 2
    assert "already exists" in capsys.readouterr().err


def test_check_source_root_resolves_home_and_relative_paths(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    assert check_source_root("src") == (tmp_path / "src").resolve()
    monkeypatch.setenv("HOME", str(tmp_path))
    assert check_source_root("~/src") == (tmp_path / "src").resolve()
    with pytest.raises(DatasetError, match="Give the path"):
        check_source_root("   ")


@pytest.fixture
def eval_slice(workspace):
    """csn-mini as train, and 10 of its queries written as an eval set (so exactly those leak)."""
    train = open_dataset(workspace, "csn-mini")
    evaluation = train.subset([q.id for q in train.judged_queries[:10]], name="csn-eval")
    write_dataset(evaluation, workspace.datasets_dir / "csn-eval")
    return train, open_dataset(workspace, "csn-eval")


@pytest.fixture
def eval_with_unjudged(workspace):
    """10 of csn-mini's queries with a corpus of 13 of its docstrings: their 10 answers and 3 that no eval query judges."""
    train = open_dataset(workspace, "csn-mini")
    answers = [train.qrels.positives(q.id)[0] for q in train.judged_queries[:13]]
    evaluation = Dataset("csn-eval", tuple(train.document(d) for d in answers), tuple(train.judged_queries[:10]),
                         Qrels({q.id: dict(train.qrels.grades(q.id)) for q in train.judged_queries[:10]}))
    write_dataset(evaluation, workspace.datasets_dir / "csn-eval")
    return train, open_dataset(workspace, "csn-eval")


def test_audit_prints_both_audits_and_writes_the_train_set_without_what_either_found(workspace, eval_with_unjudged, capsys):
    train, evaluation = eval_with_unjudged
    assert cli(workspace, "audit", "--train", "csn-mini", "--eval", "csn-eval", "--write-filtered", "csn-clean") == 0
    out = capsys.readouterr().out
    report = audit(train, evaluation)
    row = next(line for line in out.splitlines() if line.startswith("csn-eval"))
    assert [int(n) for n in row.split()[1:]] == [*report.counts().values(), len(report.leaked_eval_ids()), report.eval_pairs]
    text_report = audit_texts(train, [evaluation])[0]
    for category, count in text_report.counts().items():  # one row per category, one column per eval set
        assert re.search(rf"^{re.escape(category)}\s+{count}$", out, re.M), category
    assert text_report.counts()["train document = eval document (exact)"] == 13

    written = load_dataset(workspace.datasets_dir / "csn-clean")
    expected = filter_leaked(train, [report, text_report], "csn-clean")
    assert [q.id for q in written.queries] == [q.id for q in expected.queries]
    assert [d.id for d in written.documents] == [d.id for d in expected.documents]
    unjudged_answers = {train.qrels.positives(q.id)[0] for q in train.judged_queries[10:13]}
    assert not unjudged_answers & set(written.doc_index)  # the pair checks alone would have kept them
    assert not {q.id for q in train.judged_queries[:13]} & {q.id for q in written.queries}
    assert len(written.judged_queries) <= 27
    meta = json.loads((workspace.datasets_dir / "csn-clean" / "meta.json").read_text())
    assert meta["audits"] == ["judged pairs", "every text"] and meta["removed_documents"] >= 13


def test_audit_with_pair_checks_only_prints_and_filters_by_the_pair_checks_alone(workspace, eval_slice, capsys):
    train, evaluation = eval_slice
    assert cli(workspace, "audit", "--train", "csn-mini", "--eval", "csn-eval", "--write-filtered", "csn-clean",
               "--pair-checks-only") == 0
    out = capsys.readouterr().out
    report = audit(train, evaluation)
    row = next(line for line in out.splitlines() if line.startswith("csn-eval"))
    assert [int(n) for n in row.split()[1:]] == [*report.counts().values(), len(report.leaked_eval_ids()), report.eval_pairs]
    assert not any(category in out for category in TEXT_CATEGORIES)
    written = load_dataset(workspace.datasets_dir / "csn-clean")
    expected = filter_leaked(train, [report], "csn-clean")
    assert [q.id for q in written.queries] == [q.id for q in expected.queries]
    assert len(written.judged_queries) == 30


def test_audit_of_an_eval_set_sharing_the_whole_corpus_refuses_to_write_an_empty_train_set(workspace, eval_slice, capsys):
    """csn-eval holds csn-mini's entire corpus: every training document is an eval document."""
    assert cli(workspace, "audit", "--train", "csn-mini", "--eval", "csn-eval", "--write-filtered", "csn-clean") == 2
    assert "nothing is left to train on" in capsys.readouterr().err
    assert not (workspace.datasets_dir / "csn-clean").exists()


@pytest.mark.parametrize("argv,message", [
    (["--train", "csn-mini", "--eval", "no-such-set"], "No dataset named 'no-such-set'"),
    (["--train", "no-such-set", "--eval", "csn-eval"], "No dataset named 'no-such-set'"),
    (["--train", "csn-mini", "--eval", "csn-eval,csn-mini"], "names the train set 'csn-mini' itself"),
    (["--train", "csn-mini", "--eval", "csn-eval", "--write-filtered", "cosqa-mini"], "already exists"),
    (["--train", "csn-mini", "--eval", "csn-eval", "--write-filtered", "bad/name"], "is not allowed"),
    (["--train", "csn-mini", "--eval", " , "], "Name at least one eval dataset"),
])
def test_audit_refuses_bad_input_with_one_line_and_writes_nothing(workspace, eval_slice, capsys, argv, message):
    assert cli(workspace, "audit", *argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert sorted(p.name for p in workspace.datasets_dir.iterdir()) == ["csn-eval"]


def test_compare_prints_the_p_values_and_markers_of_compare_all(session_workspace, csn_engine, capsys):
    names = ["bm25-code", "dense-minilm", "hybrid-rrf"]
    assert cli(session_workspace, "compare", "--dataset", "csn-mini", "--profiles", ",".join(names),
               "--test", "t-test", "--correction", "bonferroni") == 0
    out = capsys.readouterr().out
    evaluations = [evaluate(csn_engine.dataset.qrels, csn_engine.run(n), ["ndcg@10"]) for n in names]
    table = compare_all(evaluations, "ndcg@10", test="t-test", correction="bonferroni")
    for row in table.rows:
        line = next(line for line in out.splitlines() if re.match(rf"\s*{row.a}\s+{row.b}\s", line))
        assert f"{row.p_value:.4f}" in line and f"{row.corrected_p:.4f}" in line
    for name, shown in marked_leaderboard(table)["shown"].items():
        assert re.search(rf"^{name}\s+\w+\s+{re.escape(shown)}$", out, re.M)


def test_compare_refuses_an_unknown_baseline(session_workspace, capsys):
    assert cli(session_workspace, "compare", "--dataset", "csn-mini", "--profiles", "bm25-code,bm25-plain",
               "--baseline", "dense-minilm") == 2
    assert "Baseline 'dense-minilm' is not among" in capsys.readouterr().err


def test_report_writes_html_and_markdown(session_workspace, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli(session_workspace, "report", "--dataset", "csn-mini", "--profiles", "bm25-code,bm25-plain",
               "--metrics", "ndcg@10,hit@10", "--out", str(out), "--failures", "2") == 0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert str(out / "report.html") in capsys.readouterr().out
    assert "bm25-plain" in (out / "report.md").read_text(encoding="utf-8")


def test_sweep_prints_the_points_of_core_sweep(session_workspace, csn_engine, capsys):
    assert cli(session_workspace, "sweep", "--dataset", "csn-mini", "--what", "pool", "--values", "5,20") == 0
    out = capsys.readouterr().out
    points = sweep_rerank_pool(csn_engine, csn_engine.profile("rerank-fusion"), (5, 20))
    for point in points:
        assert re.search(rf"^\s*{point.value}\s+{point.metric_value:.4f}\s", out, re.M)


def test_sweep_refuses_a_profile_of_the_wrong_kind(session_workspace, capsys):
    assert cli(session_workspace, "sweep", "--dataset", "csn-mini", "--what", "weight", "--profile", "bm25-code") == 2
    assert "needs a hybrid profile" in capsys.readouterr().err


def test_build_benchmark_says_when_the_tree_has_fewer_functions_than_the_queries_asked(workspace, capsys):
    assert cli(workspace, "build-benchmark", "--root", str(JSON_PACKAGE), "--name", "json-200", "--queries", "200",
               "--languages", "python") == 0
    out = capsys.readouterr().out
    assert "built json-200: 14 queries, 14 documents (python)" in out
    assert "note: asked for 200 queries" in out and "only 14 documented functions" in out
