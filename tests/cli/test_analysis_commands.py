"""The extra ``python -m core`` subcommands, driven through ``core.cli.main`` as a user would."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.data.catalog import open_dataset
from core.cli.main import main
from core.data.datasets import load_dataset, write_dataset
from core.errors import DatasetError
from core.training.leakage import audit, filter_train
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


def test_audit_prints_the_counts_of_core_leakage_and_writes_the_filtered_train_set(workspace, eval_slice, capsys):
    train, evaluation = eval_slice
    assert cli(workspace, "audit", "--train", "csn-mini", "--eval", "csn-eval", "--write-filtered", "csn-clean") == 0
    out = capsys.readouterr().out
    report = audit(train, evaluation)
    row = next(line for line in out.splitlines() if line.startswith("csn-eval"))
    assert [int(n) for n in row.split()[1:]] == [*report.counts().values(), len(report.leaked_eval_ids()), report.eval_pairs]
    written = load_dataset(workspace.datasets_dir / "csn-clean")
    expected = filter_train(train, report, "csn-clean")
    assert [q.id for q in written.queries] == [q.id for q in expected.queries]
    assert len(written.judged_queries) == 30


def test_audit_refuses_a_filtered_name_already_taken_before_auditing(workspace, eval_slice, capsys):
    assert cli(workspace, "audit", "--train", "csn-mini", "--eval", "csn-eval", "--write-filtered", "cosqa-mini") == 2
    assert "already exists" in capsys.readouterr().err


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
