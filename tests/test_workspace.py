"""The workspace writes only inside itself: a link in it that leads elsewhere is refused, and nothing lands outside."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.cli.main import main
from core.errors import WorkbenchError
from core.retrieval.profiles import Bm25Profile, upsert_profile
from core.retrieval.runs import Run, save_run
from core.workspace import Workspace
from core.workspace import OutsideWorkspaceError


def _linked(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A workspace folder whose ``name`` entry is a link to a folder outside it; returns (root, outside)."""
    root, outside = tmp_path / "ws", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / name).symlink_to(outside, target_is_directory=True)
    return root, outside


@pytest.mark.parametrize("name, folder", [("runs", "runs_dir"), ("models", "models_dir"), ("datasets", "datasets_dir"),
                                          ("indexes", "lexical_dir"), ("locks", "locks_dir")])
def test_a_workspace_folder_that_links_outside_is_refused_and_nothing_is_made_there(tmp_path, name, folder):
    root, outside = _linked(tmp_path, name)
    with pytest.raises(OutsideWorkspaceError, match="outside the workspace") as raised:
        Workspace.open(root)
    assert isinstance(raised.value, WorkbenchError)
    assert str(outside) in str(raised.value) and name in str(raised.value)
    assert list(outside.iterdir()) == []  # Workspace.open made no folder through the link


def test_a_run_is_not_saved_through_a_runs_link_made_after_opening(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    workspace.runs_dir.rmdir()
    workspace.runs_dir.symlink_to(outside)
    with pytest.raises(OutsideWorkspaceError):
        save_run(Run("bm25-code", {}, "tiny"), workspace.runs_dir)
    assert list(outside.iterdir()) == []


def test_profiles_toml_that_links_outside_is_neither_read_nor_written(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    outside = tmp_path / "elsewhere.toml"
    outside.write_text("# not the workbench's\n")
    workspace.profiles_file.symlink_to(outside)
    with pytest.raises(OutsideWorkspaceError):
        upsert_profile(workspace.profiles_file, Bm25Profile("mine"))
    assert outside.read_text() == "# not the workbench's\n"


def test_a_planted_temporary_file_link_beside_profiles_toml_is_not_written_through(tmp_path):
    workspace = Workspace.open(tmp_path / "ws")
    outside = tmp_path / "victim.txt"
    outside.write_text("keep me\n")
    (workspace.root / "profiles.tmp").symlink_to(outside)  # the temporary name the save used to write to
    upsert_profile(workspace.profiles_file, Bm25Profile("mine"))
    assert outside.read_text() == "keep me\n"
    assert "[profiles.mine]" in workspace.profiles_file.read_text()


def test_links_that_stay_inside_the_workspace_are_fine(tmp_path):
    root = tmp_path / "ws"
    (root / "real-runs").mkdir(parents=True)
    (root / "runs").symlink_to(root / "real-runs")
    workspace = Workspace.open(root)
    assert workspace.runs_dir == root.resolve() / "runs"


def test_a_workspace_reached_through_a_link_is_followed_once_at_the_root(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    workspace = Workspace.open(tmp_path / "alias")
    assert workspace.root == real.resolve() and (real / "runs").is_dir()


def test_the_cli_says_in_one_line_that_the_workspace_links_outside(tmp_path, capsys):
    root, outside = _linked(tmp_path, "runs")
    code = main(["--workspace", str(root), "profiles"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "outside the workspace" in err, err
    assert list(outside.iterdir()) == []
