"""Fixtures for the browser tests: a real `streamlit run app.py` server and a headless Debian Chromium.

The server gets its own workspace, so its state (no saved runs yet) does not depend on which other
tests ran before. Its indexes are copied from the session workspace, which the ``csn_engine``
fixture has already built, so the browser never waits on embeddings.
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.data.catalog import open_dataset
from core.retrieval.profiles import load_profiles
from core.retrieval.engine import Engine
from core.workspace import Workspace
from ui import server
from ui.state import DEFAULT_SELECTED

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DATASET = "csn-mini"
STARTUP_SECONDS = 90


@dataclass(frozen=True)
class Server:
    """A running dashboard: where it answers and the workspace it serves."""

    url: str
    workspace: Workspace
    log: Path


def start_server(workspace: Workspace, log: Path) -> tuple[subprocess.Popen, str]:
    """The dashboard on ``workspace`` and its data dir; a server that does not come up fails the test with its log."""
    try:
        return server.start_server(workspace.root, workspace.data_dir, log, timeout=STARTUP_SECONDS)
    except server.ServerStartError as exc:
        pytest.fail(str(exc))


stop_server = server.stop_server


@pytest.fixture(scope="session")
def e2e_workspace(tmp_path_factory, session_workspace, csn_engine) -> Workspace:
    """A fresh workspace (no saved runs) whose indexes are copies of the session workspace's warm ones."""
    workspace = Workspace.open(tmp_path_factory.mktemp("e2e-workspace"), session_workspace.data_dir)
    shutil.copytree(session_workspace.root / "indexes", workspace.root / "indexes", dirs_exist_ok=True)
    return workspace


@pytest.fixture(scope="session")
def e2e_engine(e2e_workspace) -> Engine:
    """The Engine the server will build for csn-mini, warmed here (opening the copied indexes) for expected values."""
    engine = Engine(e2e_workspace, open_dataset(e2e_workspace, DATASET), load_profiles(e2e_workspace.profiles_file))
    engine.warm(list(DEFAULT_SELECTED))
    return engine


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh does) to run the browser tests")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is missing (pip install -r requirements.txt)")
    return CHROMIUM


@pytest.fixture(scope="session")
def app_server(chromium_path, e2e_workspace, e2e_engine, tmp_path_factory) -> Iterator[Server]:
    """The real dashboard serving the e2e workspace and the mini data dir; stopped at the end of the session."""
    log = tmp_path_factory.mktemp("e2e-server") / "streamlit.log"
    process, url = start_server(e2e_workspace, log)
    try:
        yield Server(url, e2e_workspace, log)
    finally:
        stop_server(process)


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def browser_context(browser):
    """One context for the session, so the app's scripts are fetched and compiled once (HTTP cache)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(120_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser_context):
    """A new tab per test: each page load is its own Streamlit session."""
    page = browser_context.new_page()
    try:
        yield page
    finally:
        page.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
