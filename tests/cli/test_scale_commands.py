"""python -m core with --engine ray: the same commands on a local Ray, and one clear line for every bad combination."""
from __future__ import annotations

from dataclasses import replace

import pytest

from core.cli.main import main
from core.data.datasets import Qrels, write_dataset
from core.workspace import Workspace


def cli(capsys, workspace, *args):
    code = main(["--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_index_on_ray_writes_the_table_the_engine_then_reuses(capsys, local_ray, tmp_path, session_workspace, csn_mini):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    queries = csn_mini.judged_queries[:4]
    keep = {doc_id for q in queries for doc_id in csn_mini.qrels.positives(q.id)} | {d.id for d in csn_mini.documents[:44]}
    tiny = replace(csn_mini, name="csn-tiny", documents=tuple(d for d in csn_mini.documents if d.id in keep), queries=queries,
                   qrels=Qrels({q.id: dict(csn_mini.qrels.grades(q.id)) for q in queries}))
    write_dataset(tiny, workspace.datasets_dir / "csn-tiny")
    code, out, err = cli(capsys, workspace, "index", "--dataset", "csn-tiny", "--profiles", "dense-minilm", "--engine", "ray",
                         "--cpus-per-actor", "0.5")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("embeddings (minilm) for csn-tiny: built")  # on Ray
    assert lines[1] == "embeddings (minilm) for csn-tiny: reused"         # then opened by the engine as its own


def test_evaluate_on_ray_prints_the_local_metrics(capsys, local_ray, session_workspace, csn_engine):
    args = ("evaluate", "--dataset", "csn-mini", "--profiles", "bm25-code", "--metrics", "ndcg@10,recall@100", "--no-save", "--quiet")
    code, local, _ = cli(capsys, session_workspace, *args)
    assert code == 0
    code, on_ray, err = cli(capsys, session_workspace, *args, "--engine", "ray", "--cpus-per-actor", "0.5")
    assert code == 0, err
    def metrics(out: str) -> list[str]:  # name, ndcg@10, recall@100 (ms/query differs, of course)
        return next(line for line in out.splitlines() if line.startswith("bm25-code")).split()[:3]

    assert metrics(on_ray) == metrics(local) and len(metrics(local)) == 3


@pytest.mark.parametrize("extra, message", [
    (("--engine", "ray", "--address", "127.0.0.1:9"), "error: No Ray cluster answers at 127.0.0.1:9"),
    (("--actors", "2"), "error: --address, --actors, --cpus-per-actor and --gpus-per-actor apply only with --engine ray."),
    (("--engine", "ray", "--actors", "0"), "error: --actors must be a whole number from 1 to 10,000, not '0'."),
])
def test_bad_ray_options_get_one_line_and_status_2(capsys, session_workspace, extra, message):
    code, out, err = cli(capsys, session_workspace, "index", "--dataset", "csn-mini", *extra)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and err.startswith(message)


def test_more_actors_than_the_cluster_holds_is_refused(capsys, local_ray, tmp_path, session_workspace):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    code, _, err = cli(capsys, workspace, "index", "--dataset", "csn-mini", "--profiles", "dense-minilm", "--engine", "ray",
                       "--actors", "4")
    assert code == 2 and "use at most 1 actor(s)" in err and len(err.strip().splitlines()) == 1
