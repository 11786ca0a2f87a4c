"""Fixtures for the page tests: AppTest runs app.py in this process, so the environment picks its workspace."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.workspace import Workspace


@pytest.fixture
def app_at(monkeypatch) -> Callable[[Workspace, Path], Workspace]:
    """Point the app at a workspace and a data directory, offline; returns the workspace."""
    def point(workspace: Workspace, data_dir: Path) -> Workspace:
        monkeypatch.setenv("CODEIR_WORKSPACE", str(workspace.root))
        monkeypatch.setenv("CODEIR_DATA_DIR", str(data_dir))
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        return workspace
    return point


@pytest.fixture
def app_env(app_at, session_workspace, mini_data_dir) -> Workspace:
    """The shared session workspace (warm indexes) and the mini data sets."""
    return app_at(session_workspace, mini_data_dir)
