"""Reliability, round three (issue 25, items 3, 4, 5, 8 and part of 9): streams, byte-order marks, duplicate
run lines, numbers and JSON shapes an outside tester used to crash or mislead the workbench.

Each test failed before its fix; docs/reliability.md ("Round three (issue 25): inputs") lists them.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import pytest

from core.data.archives import import_zip
from core.data.datasets import load_dataset
from core.errors import ClusterError, DatasetError
from core.evaluation.manifest import ManifestError, import_trec_run, load_manifest
from core.evaluation.metrics import evaluate
from core.retrieval.runs import read_trec
from core.workspace import Workspace
from tests.test_hardening_round_two import cli, one_line_error

ROOT = Path(__file__).resolve().parents[1]
BOM = "\ufeff"
DOCS = [("d1", "Read a JSON file and return the parsed object."), ("d2", "Write rows to a CSV file with a header."),
        ("d3", "Compute the SHA-256 digest of a file in chunks."), ("d4", "Parse command line arguments for the tool.")]
QUERIES = [("q1", "read json file"), ("q2", "write csv rows"), ("q3", "sha256 of a file"), ("q4", "parse arguments")]


def write_small_beir(folder: Path, bom: bool = False) -> Path:
    """Four documents, four queries each judging one of them; ``bom`` starts every file with a byte-order mark."""
    mark = BOM if bom else ""
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(mark + "".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in DOCS), encoding="utf-8")
    (folder / "queries.jsonl").write_text(mark + "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES),
                                          encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(mark + "query-id\tcorpus-id\tscore\n"
                                               + "".join(f"q{i}\td{i}\t1\n" for i in range(1, 5)), encoding="utf-8")
    return folder


@pytest.fixture
def small(tmp_path) -> Workspace:
    write_small_beir(tmp_path / "data" / "small")
    return Workspace.open(tmp_path / "workspace", tmp_path / "data")


def perfect_run_text() -> str:
    return "".join(f"q{i} Q0 d{i} 1 2.0 t\nq{i} Q0 d{i % 4 + 1} 2 1.0 t\n" for i in range(1, 5))


def core_command(workspace: Workspace, *args: str) -> list[str]:
    return [sys.executable, "-m", "core", "--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONIOENCODING": "utf-8", "HF_HUB_OFFLINE": "1"}


# ---- 3. standard input: bounded, and closed ------------------------------------------------------------------------
def _limit_memory() -> None:
    # Private data (heap and anonymous maps), not address space: the libraries reserve much address space they never use.
    limit = 2 * 1024**3
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def test_a_query_from_an_endless_stdin_is_read_only_up_to_the_limit_and_said_to_be_cut(small):
    endless = subprocess.Popen(["yes", "read json file"], stdout=subprocess.PIPE)
    try:
        result = subprocess.run(core_command(small, "search", "--dataset", "small", "--profile", "bm25-code", "-"),
                                stdin=endless.stdout, capture_output=True, cwd=ROOT, env=child_env(), timeout=300,
                                preexec_fn=_limit_memory)
    finally:
        endless.kill()
        endless.wait()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert b"cut to its first 100,000 characters" in result.stderr and b"results in" in result.stdout


def test_a_query_from_dev_zero_is_a_one_line_error_in_bounded_memory(small):
    with open("/dev/zero", "rb") as zeros:  # NUL bytes are dropped from queries: what remains is empty
        result = subprocess.run(core_command(small, "search", "--dataset", "small", "--profile", "bm25-code", "-"),
                                stdin=zeros, capture_output=True, cwd=ROOT, env=child_env(), timeout=300,
                                preexec_fn=_limit_memory)
    err = result.stderr.decode()
    assert result.returncode == 2 and err.startswith("error: ") and "empty" in err and "Traceback" not in err, err[-2000:]


def test_a_query_read_from_a_closed_stdin_is_a_one_line_error(small):
    result = subprocess.run(core_command(small, "search", "--dataset", "small", "--profile", "bm25-code", "-"),
                            capture_output=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=child_env(), timeout=300, preexec_fn=lambda: os.close(0))
    err = result.stderr.decode()
    assert result.returncode == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert "standard input is closed" in err.lower() and err.strip().count("\n") == 0, err


# ---- 4. byte-order marks -------------------------------------------------------------------------------------------
def test_a_trec_run_starting_with_a_byte_order_mark_keeps_its_first_query(small, tmp_path):
    from core.data.catalog import open_dataset

    dataset = open_dataset(small, "small")
    plain, marked = tmp_path / "plain.trec", tmp_path / "marked.trec"
    plain.write_text(perfect_run_text(), encoding="utf-8")
    marked.write_text(BOM + perfect_run_text(), encoding="utf-8")
    run = read_trec(marked)
    assert sorted(run.rankings) == ["q1", "q2", "q3", "q4"]
    assert evaluate(dataset.qrels, run, ["ndcg@10"]).mean()["ndcg@10"] == pytest.approx(1.0)
    assert import_trec_run(small, marked, dataset).meta["queries"] == import_trec_run(small, plain, dataset).meta["queries"] == 4


def test_corpus_queries_and_qrels_starting_with_a_byte_order_mark_load_as_without(tmp_path):
    plain = load_dataset(write_small_beir(tmp_path / "plain"))
    marked = load_dataset(write_small_beir(tmp_path / "marked", bom=True), name="plain")
    assert not marked.problems and marked.documents == plain.documents and marked.queries == plain.queries
    assert marked.qrels == plain.qrels


def test_a_manifest_starting_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(BOM + json.dumps({"dataset": {"name": "small"}, "run": {"name": "bm25-code"}, "metrics": {"ndcg@10": 1.0}}),
                    encoding="utf-8")
    assert load_manifest(path)["dataset"] == {"name": "small"}


def test_an_archive_whose_meta_json_starts_with_a_byte_order_mark_imports(tmp_path):
    folder = write_small_beir(tmp_path / "src" / "small")
    path = tmp_path / "small.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            archive.write(folder / file, f"small/{file}")
        archive.writestr("small/meta.json", BOM + '{"source": "notepad"}')
    assert (import_zip(path, tmp_path / "datasets") / "corpus.jsonl").is_file()


# ---- 5. duplicate (query, document) lines in a TREC run ------------------------------------------------------------
def test_a_run_listing_a_document_twice_for_a_query_is_refused_in_any_order(tmp_path):
    lines = perfect_run_text().splitlines(keepends=True) + ["q2 Q0 d2 3 0.5 t\n"]  # d2 for q2 again, lower score
    outcomes = []
    for order, ordered in (("first", lines), ("last", lines[::-1])):
        path = tmp_path / f"{order}.trec"
        path.write_text("".join(ordered), encoding="utf-8")
        with pytest.raises(DatasetError) as caught:
            read_trec(path)
        outcomes.append(str(caught.value).splitlines()[0])
        again, first = (9, 3) if order == "first" else (7, 1)
        assert [(p.line, p.message) for p in caught.value.problems] == [
            (again, f"document 'd2' is listed again for query 'q2' (first on line {first})")]
    assert all("1 line repeats" in outcome for outcome in outcomes), outcomes


def test_cli_import_run_of_a_run_with_repeated_lines_says_so_and_saves_nothing(capsys, small, tmp_path):
    path = tmp_path / "twice.trec"
    path.write_text(perfect_run_text() * 2, encoding="utf-8")  # the same lines twice: refused too, as trec_eval does
    code, out, err = cli(capsys, small, "import-run", str(path), "--dataset", "small")
    assert code == 2 and "8 lines repeat" in err and "twice.trec:9" in err, err
    assert not list(small.runs_dir.glob("*.parquet"))


# ---- 8. numbers ----------------------------------------------------------------------------------------------------
def test_a_negative_seed_draws_as_the_same_seed_taken_modulo_2_to_the_64(capsys, small):
    args = ("evaluate", "--dataset", "small", "--profiles", "bm25-code", "--no-save", "--ci", "--resamples", "200", "--quiet")
    code, negative, err = cli(capsys, small, *args, "--seed=-5")
    assert code == 0, err
    code, wrapped, err = cli(capsys, small, *args, f"--seed={2**64 - 5}")
    assert code == 0, err
    intervals = lambda out: out[out.index("bootstrap intervals"):].split("\n", 1)[1].split("\ndone")[0]  # noqa: E731
    assert intervals(negative) == intervals(wrapped)


@pytest.mark.parametrize("value", ["1e20", "100000000000000000000", "0", "-3", "nan"])
def test_resamples_out_of_range_are_refused_with_the_range_before_any_run(capsys, small, value):
    with pytest.raises(SystemExit) as exited:
        cli(capsys, small, "evaluate", "--dataset", "small", "--profiles", "bm25-code", "--no-save", "--ci", "--resamples", value)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "--resamples must be a whole number from 1 to 100,000" in err, err
    assert not any(small.lexical_dir.iterdir())  # refused before any index was built


@pytest.mark.parametrize("option, value", [("--cpus-per-actor", "nan"), ("--cpus-per-actor", "inf"), ("--cpus-per-actor", "0"),
                                           ("--gpus-per-actor", "nan"), ("--gpus-per-actor", "-1"), ("--actors", "0"),
                                           ("--queries-per-task", "0")])
def test_ray_options_out_of_range_are_refused_before_ray_is_imported(small, option, value):
    script = ("import sys; from core.cli.main import main; "
              f"code = main(['--workspace', {str(small.root)!r}, '--data-dir', {str(small.data_dir)!r}, 'evaluate', "
              f"'--dataset', 'small', '--profiles', 'bm25-code', '--no-save', '--engine', 'ray', '{option}', '{value}']); "
              "print('ray imported' if 'ray' in sys.modules else 'ray not imported', code)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=child_env(), timeout=300)
    assert result.stdout.strip() == "ray not imported 2", result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and option in result.stderr, result.stderr


def test_ray_options_refuse_a_cpu_count_that_is_not_a_number():
    from core.index.distributed import RayOptions

    for cpus in (float("nan"), float("inf")):
        with pytest.raises(ClusterError, match="CPUs per actor"):
            RayOptions(cpus_per_actor=cpus).check()
    with pytest.raises(ClusterError, match="GPUs per actor"):
        RayOptions(gpus_per_actor=float("nan")).check()


# ---- 8. JSON depth, size and shape ---------------------------------------------------------------------------------
def test_a_manifest_nested_200000_deep_is_a_one_line_error(capsys, small, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"dataset": {}, "metrics": {}, "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
    code, _, err = cli(capsys, small, "reproduce", str(path))
    assert one_line_error(code, err) and "nested" in err, err


def test_a_manifest_larger_than_the_limit_is_refused_without_reading_it_whole(tmp_path):
    from core.evaluation.manifest import MAX_MANIFEST_BYTES

    path = tmp_path / "big.json"
    with path.open("w") as out:  # valid JSON: only its size is wrong
        out.write('{"dataset": {"name": "small"}, "run": {"name": "x"}, "metrics": {}')
        out.write(" " * (MAX_MANIFEST_BYTES + 1024**2) + "}")
    tracemalloc.start()
    try:
        with pytest.raises(ManifestError, match="larger than"):
            load_manifest(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_MANIFEST_BYTES + 4 * 1024**2


BM25 = {"kind": "bm25", "analyzer": "code", "k1": 1.2, "b": 0.75, "length_norm": "tantivy"}


@pytest.mark.parametrize("change", [{"dataset": []}, {"run": "bm25-code"}, {"metrics": {"ndcg@10": "high"}},
                                    {"run": {"name": "bm25-code", "depth": "1e400"}}, {"run": {"name": "bm25-code", "depth": -5}},
                                    {"profiles": ["bm25-code"]}, {"models": "none"}])
def test_a_manifest_of_the_wrong_shape_is_a_one_line_error(capsys, small, tmp_path, change):
    manifest = {"dataset": {"name": "small"}, "run": {"name": "bm25-code", "depth": 10}, "profiles": {"bm25-code": BM25},
                "metrics": {"ndcg@10": 1.0}} | change
    path = tmp_path / "shape.json"
    path.write_text(json.dumps(manifest))
    code, _, err = cli(capsys, small, "reproduce", str(path))
    assert one_line_error(code, err), err


# ---- 9. archives with two entries of one name -----------------------------------------------------------------------
@pytest.mark.parametrize("second", ["small/corpus.jsonl", "small\\corpus.jsonl", "small/./corpus.jsonl"])
def test_an_archive_holding_two_entries_of_one_name_is_refused(tmp_path, second):
    folder = write_small_beir(tmp_path / "src" / "small")
    path = tmp_path / "twice.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it writes
        for file in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            archive.write(folder / file, f"small/{file}")
        archive.writestr(second, '{"_id": "other", "text": "another corpus"}\n')
    with pytest.raises(DatasetError, match="twice"):
        import_zip(path, tmp_path / "datasets")
    assert not (tmp_path / "datasets" / "small").exists()
