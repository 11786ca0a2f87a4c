"""Part 17: the whole product at a benchmark's real size: open, evaluate, search and click through the pages.

For each size (default 6k, 100k, 1M documents) csn-python-code2doc is grown to that many documents with synthetic
distractors (``python -m core grow-corpus``; its 200 real queries and qrels kept), then, each step in a fresh process
as a user would run it:

* **open**: ``open_dataset`` the first time (a corpus at or above ``STORED_MIN_DOCS`` is written into its corpus
  store; below it the corpus is read whole) and again (the store reused), with the process's peak RSS;
* **BM25 run**: ``python -m core evaluate --profiles bm25-code,bm25-plain`` (indexes built the first time, then a
  second, warm call), wall time and the runs' own seconds;
* **search-corpus**: five calls of ``python -m core search-corpus``, wall time of each, p50 of the warm ones;
* **pages**: a real dashboard server and headless Chromium: the first load, then two rounds of clicks on the sidebar's
  analysis pages (leaderboard, breakdown, compare two runs, failure cases, significance, complementarity, slice finder,
  explorer, datasets); click-to-render is the time from the click until Streamlit reports the script run finished and
  nothing stale; p50 over the second round; the server's peak RSS (VmHWM).

Run by ``bench/run_benchmarks.py --only 17 --product-sizes 6037,100000,1000000``.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import Measure, Target, fmt_bytes, high_water_rss_bytes, percentile
from core.workspace import Workspace

BASE_SET = "csn-python-code2doc"
PROFILES = "bm25-code,bm25-plain"
ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3
PAGES = ("Leaderboard", "Per-query breakdown", "Compare two runs", "Failure cases", "Significance & report",
         "Complementarity", "Slice finder", "Query explorer", "Datasets")
IDLE = '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
OPEN_SCRIPT = """
import json, resource, sys, time
from core.data.catalog import open_dataset
from core.workspace import Workspace
workspace = Workspace.open(sys.argv[1], sys.argv[2])
started = time.perf_counter()
dataset = open_dataset(workspace, sys.argv[3])
first = time.perf_counter() - started
started = time.perf_counter()
again = open_dataset(workspace, sys.argv[3])
print(json.dumps({"first_s": first, "again_s": time.perf_counter() - started, "stored": dataset.is_stored,
                  "documents": len(dataset.documents), "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _environment(workspace: Workspace) -> dict[str, str]:
    return {**os.environ, "CODEIR_WORKSPACE": str(workspace.root), "CODEIR_DATA_DIR": str(workspace.data_dir or ""),
            "HF_HUB_OFFLINE": "1"}


def _timed(command: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout


def grown_set(workspace: Workspace, size: int) -> str:
    """csn-python-code2doc grown to ``size`` documents in the workspace (reused when already there)."""
    name = f"{BASE_SET}-grown-{size}"
    if not (workspace.datasets_dir / name / "corpus.jsonl").is_file():
        _timed([sys.executable, "-m", "core", "grow-corpus", "--dataset", BASE_SET, "--documents", str(size), "--name", name],
               _environment(workspace))
    return name


def measure_open(workspace: Workspace, name: str) -> dict:
    _, out = _timed([sys.executable, "-c", OPEN_SCRIPT, str(workspace.root), str(workspace.data_dir or ""), name],
                    _environment(workspace))
    return json.loads(out.strip().splitlines()[-1])


def measure_bm25(workspace: Workspace, name: str) -> dict:
    command = [sys.executable, "-m", "core", "evaluate", "--dataset", name, "--profiles", PROFILES, "--quiet"]
    cold, _ = _timed(command, _environment(workspace))
    warm, out = _timed(command, _environment(workspace))
    ms = {line.split()[0]: float(line.split()[-1]) for line in out.splitlines() if line.startswith("bm25-")}
    return {"cold_s": cold, "warm_s": warm, "ms_per_query": ms}


def measure_search_corpus(workspace: Workspace, name: str, calls: int = 5) -> list[float]:
    command = [sys.executable, "-m", "core", "search-corpus", "--dataset", name, "read a json file into a dict"]
    return [_timed(command, _environment(workspace))[0] for _ in range(calls)]


def _click_to_render(page, title: str) -> float:
    """Seconds from a click on a sidebar page link until its script run finished with nothing stale."""
    started = time.perf_counter()
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
    try:
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]', timeout=2000)
    except Exception:  # the run may have finished before the first look
        pass
    page.wait_for_selector(IDLE, timeout=600_000)
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=600_000)
    return time.perf_counter() - started


def measure_pages(workspace: Workspace, name: str, log: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from ui import server

    process, url = server.start_server(workspace.root, workspace.data_dir, log, timeout=300)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            started = time.perf_counter()
            page.goto(f"{url}/?dataset={name}&profiles={PROFILES}", wait_until="domcontentloaded", timeout=600_000)
            page.wait_for_selector('[data-testid="stSidebar"]', timeout=600_000)
            page.wait_for_selector(IDLE, timeout=600_000)
            first_load = time.perf_counter() - started
            rounds = [{title: _click_to_render(page, title) for title in PAGES} for _ in range(2)]
            errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
            browser.close()
        return {"first_load_s": first_load, "rounds": rounds, "errors": errors, "server_peak_rss": high_water_rss_bytes(process.pid)}
    finally:
        server.stop_server(process)


def _measures(size: int, figures: dict) -> list[Measure]:
    label = f"product at {size:,} docs"
    opened, bm25, pages = figures["open"], figures["bm25"], figures["pages"]
    warm_clicks = list(pages["rounds"][-1].values())
    searches = figures["search_corpus_s"]
    return [
        Measure(17, f"{label}: open ({'corpus store' if opened['stored'] else 'read whole'}), first / again",
                opened["first_s"], "s", None, f"again {opened['again_s']:.2f} s; peak RSS of the process "
                f"{fmt_bytes(opened['peak_rss'])}"),
        Measure(17, f"{label}: evaluate bm25-code + bm25-plain, 200 queries, warm (CLI wall)", bm25["warm_s"], "s", None,
                f"cold (indexes built) {bm25['cold_s']:.1f} s; ms/query " +
                ", ".join(f"{k} {v:.2f}" for k, v in bm25["ms_per_query"].items())),
        Measure(17, f"{label}: search-corpus per call, warm p50 (CLI wall)", statistics.median(searches[1:]), "s",
                Target("<=", 1.0), "calls: " + ", ".join(f"{s:.2f}" for s in searches)),
        Measure(17, f"{label}: page click-to-render p50 (Chromium, 2nd round)", percentile(warm_clicks, 50), "s",
                Target("<=", 1.5), f"first load {pages['first_load_s']:.1f} s; max {max(warm_clicks):.2f} s; per page: " +
                ", ".join(f"{t} {s:.2f}" for t, s in pages["rounds"][-1].items()) + f"; error boxes {pages['errors']}",
                {"rounds": pages["rounds"]}),
        Measure(17, f"{label}: dashboard server peak RSS", pages["server_peak_rss"] / GIB, "GiB", Target("<=", 4.0)),
    ]


def product_at_scale(context, sizes: Sequence[int]) -> list[Measure]:
    """Part 17: open, evaluate, search and click through the pages at each size (see the module docstring)."""
    workspace = context.workspace
    context.note("part 17's corpora are csn-python-code2doc grown with synthetic distractors (core.data.distractors); "
                 "BM25 profiles only: no dense embedding of 1M documents on this CPU")
    measures = []
    for size in sizes:
        name = grown_set(workspace, size) if size > 6037 else BASE_SET
        figures = {"open": measure_open(workspace, name), "bm25": measure_bm25(workspace, name),
                   "search_corpus_s": measure_search_corpus(workspace, name)}
        figures["pages"] = measure_pages(workspace, name, workspace.root / f"bench-server-{size}.log")
        measures += _measures(size, figures)
    return measures
