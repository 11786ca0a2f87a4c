"""python -m core manifest / reproduce / compare --runs: the manifest round trip and imported runs in the terminal."""
from __future__ import annotations

import json
import re

from core.evaluation.manifest import make_saved_run
from tests.cli.test_commands import cli


def test_manifest_written_then_reproduced_says_every_metric_matches(capsys, session_workspace, csn_engine, tmp_path):
    run = make_saved_run(csn_engine, "bm25-code")
    path = tmp_path / "manifest.json"
    code, out, _ = cli(capsys, session_workspace, "manifest", "--run", run.run_id, "--out", str(path))
    assert code == 0 and json.loads(path.read_text())["run"]["run_id"] == run.run_id
    code, out, _ = cli(capsys, session_workspace, "reproduce", str(path))
    assert code == 0, out
    assert "reproduced: all 4 metrics match" in out and out.count(" match") >= 4


def test_a_manifest_whose_metric_differs_exits_1_and_names_it(capsys, session_workspace, csn_engine, tmp_path):
    run = make_saved_run(csn_engine, "bm25-code")
    manifest = json.loads(json.dumps(run.meta["manifest"]))
    manifest["metrics"]["mrr@10"] -= 0.05
    manifest["packages"]["numpy"] = "0.0.1"
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(manifest))
    code, out, err = cli(capsys, session_workspace, "reproduce", str(path))
    assert code == 1
    assert "mrr@10" in next(line for line in out.splitlines() if "DIFFERS by +0.05" in line)
    assert "package numpy: '0.0.1' then" in out and "not reproduced: mrr@10 differ" in err


def test_a_broken_manifest_is_one_line_and_exit_2(capsys, session_workspace, tmp_path):
    (tmp_path / "x.json").write_text("[1, 2")
    code, out, err = cli(capsys, session_workspace, "reproduce", str(tmp_path / "x.json"))
    assert code == 2 and err.count("\n") == 1 and "not a JSON manifest" in err


def test_compare_takes_an_imported_trec_run_beside_the_profiles(capsys, session_workspace, csn_engine, tmp_path):
    from core.retrieval.runs import write_trec

    write_trec(csn_engine.run("dense-minilm"), tmp_path / "dense.trec", tag="dense-import")
    code, out, _ = cli(capsys, session_workspace, "import-run", str(tmp_path / "dense.trec"), "--dataset", "csn-mini")
    run_id = out.split(" as run ")[1].split()[0]
    code, out, err = cli(capsys, session_workspace, "compare", "--dataset", "csn-mini", "--profiles", "bm25-code,dense-minilm",
                         "--runs", run_id, "--metric", "ndcg@10")
    assert code == 0, err
    assert f"dense-import [{run_id}]" in out
    pair = next(line for line in out.splitlines() if line.split()[:2] == ["dense-minilm", "dense-import"])
    assert pair.split()[-3:] == ["0", "40", "0"]  # the imported copy of dense ties dense on all 40 queries
    imported_mean = re.search(r"dense-import \[\S+\]\s+[a-z]\s+(\d\.\d{4})", out).group(1)
    dense_mean = re.search(r"^dense-minilm\s+[a-z]\s+(\d\.\d{4})", out, re.M).group(1)
    assert imported_mean == dense_mean
