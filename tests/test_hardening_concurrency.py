"""Concurrent builders and readers: one correct index, no leftovers, the same results for everyone.

Processes race through the real CLI; threads race through Engines in one process (as Streamlit
sessions do); two Streamlit sessions run the app at once through AppTest.
"""
from __future__ import annotations

import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.data.datasets import Dataset, write_dataset
from core.index.lexical import index_path
from core.retrieval.profiles import default_profiles
from core.retrieval.engine import Engine
from core.workspace import Workspace
from tests.test_hardening_queries import HOSTILE_INPUTS
from tests.test_hardening_stores import ROOT, cli_command, cli_env, copies, rankings

EVALUATED = "bm25-code,bm25-plain,dense-minilm,hybrid-rrf"


def run_together(commands: list[list[str]], env: dict[str, str], timeout: float = 400) -> list[subprocess.CompletedProcess]:
    """Start every command at once and wait for all; each must succeed."""
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for command in commands]
    results = []
    for process, command in zip(processes, commands):
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, f"{command} failed:\n{out}\n{err}"
        results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return results


def metric_rows(evaluate_output: str) -> dict[str, list[str]]:
    """Profile -> its metric cells from an ``evaluate`` table, the ms/query column (a timing) left out."""
    lines = evaluate_output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["ndcg@10"])
    rows = {}
    for line in lines[header + 2:]:
        cells = line.split()
        if len(cells) < 3 or line.startswith("done in"):
            break
        rows[cells[0]] = cells[1:-1]
    return rows


def build_reports(outputs: list[str]) -> dict[str, list[str]]:
    """Index name -> 'built'/'reused' as each process reported it."""
    reports: dict[str, list[str]] = {}
    for output in outputs:
        for match in re.finditer(r"^(.*? for [\w.-]+): (built|reused)", output, re.MULTILINE):
            reports.setdefault(match.group(1), []).append(match.group(2))
    return reports


def leftover_files(workspace: Workspace) -> list[str]:
    """Temporary folders, old copies and embedding checkpoints a finished build must not leave."""
    indexes = workspace.root / "indexes"
    found = [p for p in indexes.rglob("*") if re.search(r"\.(tmp|old)-\d+", p.name)]
    partial = workspace.vectors_dir / ".partial"
    found += [p for p in partial.rglob("*") if p.is_file()] if partial.exists() else []
    return sorted(str(p.relative_to(workspace.root)) for p in found)


@pytest.mark.slow
def test_two_processes_building_the_same_bm25_indexes_end_with_one_index_and_equal_metrics(tmp_path: Path,
                                                                                           csn_mini: Dataset) -> None:
    big = copies(csn_mini, 20, "csn-big")  # 8,000 documents: both processes start together and reach the build together
    write_dataset(big, tmp_path / "data" / big.name)
    workspace = Workspace.open(tmp_path / "workspace", tmp_path / "data")
    index = ["index", "--dataset", big.name, "--profiles", "bm25-code,bm25-plain"]

    built = run_together([cli_command(workspace, *index), cli_command(workspace, *index)], cli_env())

    reports = build_reports([r.stdout for r in built])
    # bm25-plain uses the words analyzer ([A-Za-z0-9]+ split, issue 17.6)
    assert sorted(reports) == [f"BM25 index (code) for {big.name}", f"BM25 index (words) for {big.name}"]
    for name, verbs in reports.items():
        assert verbs.count("built") == 1, f"{name}: the lock lets exactly one process build it: {verbs}"
    assert leftover_files(workspace) == []
    for analyzer in ("code", "words"):
        folders = [p.name for p in index_path(workspace, big, analyzer).parent.iterdir()]
        assert len([f for f in folders if f.startswith(analyzer)]) == 1

    evaluate = ["evaluate", "--dataset", big.name, "--profiles", "bm25-code,bm25-plain", "--no-save", "--quiet"]
    first, second = run_together([cli_command(workspace, *evaluate), cli_command(workspace, *evaluate)], cli_env())
    assert metric_rows(first.stdout) == metric_rows(second.stdout)
    assert set(metric_rows(first.stdout)) == {"bm25-code", "bm25-plain"}
    assert "built" not in first.stdout + second.stdout, "both evaluations reuse the one index"


@pytest.mark.slow
def test_two_processes_evaluating_dense_and_hybrid_at_once_build_each_store_once_with_equal_metrics(
        tmp_path: Path, csn_mini: Dataset) -> None:
    from tests.conftest import slice_dataset

    tiny = slice_dataset(csn_mini, 4, 24, name="csn-tiny")
    write_dataset(tiny, tmp_path / "data" / tiny.name)
    workspace = Workspace.open(tmp_path / "workspace", tmp_path / "data")
    evaluate = ["evaluate", "--dataset", tiny.name, "--profiles", EVALUATED, "--no-save", "--quiet"]

    first, second = run_together([cli_command(workspace, *evaluate), cli_command(workspace, *evaluate)],
                                 cli_env(CODEIR_EMBED_CHUNK="8"))

    assert metric_rows(first.stdout) == metric_rows(second.stdout)
    assert set(metric_rows(first.stdout)) == set(EVALUATED.split(","))
    reports = build_reports([first.stdout, second.stdout])
    assert len(reports) == 4, reports  # two BM25 indexes, corpus embeddings, query embeddings
    for name, verbs in reports.items():
        assert sorted(verbs) == ["built", "reused"], f"{name}: exactly one process builds it: {verbs}"
    assert leftover_files(workspace) == []


@pytest.fixture(scope="module")
def tiny(csn_mini: Dataset) -> Dataset:
    from tests.conftest import slice_dataset

    return slice_dataset(csn_mini, 5, 40, name="csn-tiny")


def test_two_threads_with_their_own_engines_build_and_search_one_workspace_with_equal_results(
        workspace: Workspace, tiny: Dataset) -> None:
    queries = list(HOSTILE_INPUTS.values())[:8] + [q.text for q in tiny.queries]
    start = threading.Barrier(2)

    def session(_: int) -> tuple[dict, dict]:
        engine = Engine(workspace, tiny, default_profiles())
        start.wait()  # both begin with nothing built
        runs = rankings(engine)
        searched = {(name, text): engine.search(name, text).ranking.doc_ids for name in engine.profiles for text in queries}
        return runs, searched

    with ThreadPoolExecutor(2) as pool:
        (runs_a, search_a), (runs_b, search_b) = pool.map(session, range(2))

    assert runs_a == runs_b
    assert search_a == search_b
    assert leftover_files(workspace) == []
    fresh = Engine(workspace, tiny, default_profiles())
    assert rankings(fresh) == runs_a, "what the racing threads built serves the same results to a later reader"
    assert all(report.reused for report in fresh.reports)


def test_one_shared_engine_searched_from_four_threads_at_once_answers_as_if_alone(workspace: Workspace,
                                                                                 tiny: Dataset) -> None:
    shared = Engine(workspace, tiny, default_profiles())  # not warmed: the threads race to open indexes and models
    texts = [q.text for q in tiny.queries] + ["parse a url", "read json file", "<script>alert(1)</script>"]
    jobs = [(name, text) for name in shared.profiles for text in texts]
    start = threading.Barrier(4)

    def worker(offset: int) -> dict:
        start.wait()
        mine = jobs[offset:] + jobs[:offset]  # each thread walks the jobs from another starting point
        return {job: shared.search(*job).ranking for job in mine}

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(worker, range(0, len(jobs), len(jobs) // 4 + 1)))

    alone = Engine(workspace, tiny, default_profiles())
    expected = {job: alone.search(*job).ranking for job in jobs}
    for answer in answers:
        for job, ranking in answer.items():
            assert ranking.doc_ids == expected[job].doc_ids, job
            assert ranking.scores == pytest.approx(expected[job].scores, abs=1e-5), job


def test_two_streamlit_sessions_running_the_app_at_once_do_not_interfere(monkeypatch: pytest.MonkeyPatch,
                                                                         session_workspace: Workspace) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CODEIR_WORKSPACE", str(session_workspace.root))
    monkeypatch.setenv("CODEIR_DATA_DIR", str(session_workspace.data_dir))
    # One script cache for both sessions, as in a server (one runtime, one locked cache). Each AppTest makes its own,
    # so both would compile app.py at the same moment, and CPython 3.11.7's ast constructor is not safe across threads
    # (gh-106905: "AST constructor recursion depth mismatch"); a server's one locked cache compiles its scripts one at a time.
    import streamlit.testing.v1.app_test as app_test_module
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    shared_cache = ScriptCache()
    monkeypatch.setattr(app_test_module, "ScriptCache", lambda: shared_cache)
    start = threading.Barrier(2)

    def session(cutoff: str) -> AppTest:
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        app.query_params["dataset"] = "csn-mini"
        if cutoff:  # a shared link's cutoffs; one run only (AppTest reruns of st.navigation apps skip the entry script)
            app.query_params["k"] = cutoff
        start.wait()
        return app.run()

    with ThreadPoolExecutor(2) as pool:
        plain, with_cutoff = pool.map(session, ["", "5"])

    for app in (plain, with_cutoff):
        assert not app.exception, [e.value for e in app.exception]
        assert app.sidebar.selectbox(key="dataset").value == "csn-mini"
    assert plain.sidebar.multiselect(key="profiles").value == with_cutoff.sidebar.multiselect(key="profiles").value
    assert "ndcg@5" in with_cutoff.session_state["_selection"].metrics
    assert "ndcg@5" not in plain.session_state["_selection"].metrics, "one session's sidebar does not leak into another"
