"""python -m core: the commands a user types."""
import re
import subprocess
import sys
from pathlib import Path

from core.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def cli(capsys, workspace, *args):
    code = main(["--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_datasets_lists_the_data_dir_and_the_builtin(capsys, session_workspace):
    code, out, _ = cli(capsys, session_workspace, "datasets")
    assert code == 0 and "csn-mini" in out and "cosqa-mini" in out and "stdlib-code2doc" in out


def test_evaluate_prints_the_metrics_and_reuses_indexes_the_second_time(capsys, session_workspace, csn_engine):
    from core.evaluation.metrics import evaluate

    code, out, _ = cli(capsys, session_workspace, "evaluate", "--dataset", "csn-mini", "--profiles", "bm25-code,hybrid-rrf",
                       "--no-save", "--quiet")
    assert code == 0
    assert "BM25 index (code) for csn-mini: reused" in out
    expected = evaluate(csn_engine.dataset.qrels, csn_engine.run("hybrid-rrf"), ["ndcg@10"]).mean()["ndcg@10"]
    row = next(line for line in out.splitlines() if line.startswith("hybrid-rrf"))
    assert f"{expected:.4f}" in row


def test_search_reads_code_from_stdin_and_survives_query_syntax(session_workspace, csn_engine):
    result = subprocess.run([sys.executable, "-m", "core", "--workspace", str(session_workspace.root), "--data-dir",
                             str(session_workspace.data_dir), "search", "--dataset", "csn-mini", "--profile", "bm25-code", "-"],
                            input='def f(x): return "a:b" AND (c* OR [d TO e])', capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "bm25-code:" in result.stdout


def test_user_errors_exit_2_with_one_line(capsys, session_workspace):
    code, _, err = cli(capsys, session_workspace, "evaluate", "--dataset", "no-such-set")
    assert code == 2 and err.startswith("error: No dataset named 'no-such-set'")
    code, _, err = cli(capsys, session_workspace, "evaluate", "--dataset", "csn-mini", "--profiles", "ghost")
    assert code == 2 and "Unknown profile 'ghost'" in err


def test_runs_export_and_import_round_trip(capsys, session_workspace, tmp_path, csn_engine):
    code, out, _ = cli(capsys, session_workspace, "evaluate", "--dataset", "csn-mini", "--profiles", "bm25-code", "--quiet")
    run_id = out.split("saved runs: ")[1].split()[0].strip(",")
    code, out, _ = cli(capsys, session_workspace, "export", "--run", run_id, "--out", str(tmp_path / "r.trec"))
    from core.retrieval.runs import load_run

    saved = load_run(session_workspace.runs_dir, run_id)
    assert code == 0 and (tmp_path / "r.trec").read_text().count("\n") == sum(len(r) for r in saved.rankings.values())
    code, out, _ = cli(capsys, session_workspace, "import-run", str(tmp_path / "r.trec"), "--dataset", "csn-mini", "--name", "again")
    assert code == 0 and "40 queries" in out
    code, out, _ = cli(capsys, session_workspace, "runs", "--dataset", "csn-mini")
    assert run_id in out and "again" in out


def test_quiet_prints_no_progress_bar_nor_library_logging_on_a_first_build(tmp_path, csn_mini):
    """A fresh workspace builds the BM25 index and the MiniLM vectors: --quiet keeps stderr empty of bars and Lance warnings."""
    from tests.conftest import slice_dataset
    from core.data.datasets import write_dataset

    data_dir = tmp_path / "data"
    write_dataset(slice_dataset(csn_mini, 4, 24, name="csn-tiny"), data_dir / "csn-tiny")
    command = [sys.executable, "-m", "core", "--workspace", str(tmp_path / "ws"), "--data-dir", str(data_dir), "evaluate",
               "--dataset", "csn-tiny", "--profiles", "bm25-code,dense-minilm", "--no-save"]
    quiet = subprocess.run([*command, "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert quiet.returncode == 0, quiet.stderr
    assert "Loading weights" not in quiet.stderr
    assert "No existing dataset" not in quiet.stderr and "WARN" not in quiet.stderr
    assert "%|" not in quiet.stderr and "it/s" not in quiet.stderr


def test_the_progress_bars_count_documents_on_a_first_build(tmp_path, csn_mini):
    from tests.conftest import slice_dataset
    from core.data.datasets import write_dataset

    data_dir = tmp_path / "data"
    write_dataset(slice_dataset(csn_mini, 4, 24, name="csn-tiny"), data_dir / "csn-tiny")
    result = subprocess.run([sys.executable, "-m", "core", "--workspace", str(tmp_path / "ws"), "--data-dir", str(data_dir),
                             "evaluate", "--dataset", "csn-tiny", "--profiles", "dense-minilm", "--no-save"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    assert re.search(r"embedding corpus \(minilm\).*24/24", result.stderr)
    assert "documents/s" in result.stderr and "%/s" not in result.stderr
    assert "storing corpus vectors in LanceDB (minilm)" in result.stderr
    assert "Loading weights" not in result.stderr
