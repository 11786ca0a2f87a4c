"""Security settings and invariants: local-only server, no raw HTML from user data, no path escapes."""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data.archives import DEFAULT_MAX_UPLOAD_BYTES
from core.data.catalog import open_dataset
from core.data.datasets import Dataset, Document, Qrels, Query, validate_name
from core.errors import DatasetError
from core.index.lexical import index_path
from core.workspace import Workspace, slug

ROOT = Path(__file__).resolve().parents[1]
UI_SOURCES = sorted([ROOT / "app.py", *(ROOT / "pages").rglob("*.py"), *(ROOT / "ui").rglob("*.py")])


@pytest.fixture(scope="module")
def streamlit_config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))


def test_server_listens_on_localhost_only(streamlit_config: dict) -> None:
    assert streamlit_config["server"]["address"] == "127.0.0.1"


def test_usage_statistics_are_not_sent(streamlit_config: dict) -> None:
    assert streamlit_config["browser"]["gatherUsageStats"] is False


def test_upload_size_is_capped_at_the_limit_the_importer_enforces(streamlit_config: dict) -> None:
    assert streamlit_config["server"]["maxUploadSize"] * 1024**2 == DEFAULT_MAX_UPLOAD_BYTES


def test_xsrf_protection_is_on_and_error_details_are_hidden(streamlit_config: dict) -> None:
    assert streamlit_config["server"].get("enableXsrfProtection", True) is True
    # "type" shows only the exception's class; "full"/"stacktrace" (or true) would show tracebacks to any visitor
    assert streamlit_config["client"]["showErrorDetails"] in (False, "none", "type")


def test_the_ui_sources_are_all_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in UI_SOURCES}
    assert {"app.py", "ui/state.py", "pages/explorer.py", "pages/leaderboard.py"} <= names


def raw_html_calls(source: str) -> list[str]:
    """Calls that render raw HTML: st.html / components.html, or any unsafe_allow_html that is not literally False."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        function = ast.unparse(node.func)
        if function == "html" or function.endswith((".html", ".iframe")) or function.endswith("components.v1.html"):
            found.append(f"line {node.lineno}: {function}(...)")
        for keyword in node.keywords:
            if keyword.arg == "unsafe_allow_html" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                found.append(f"line {node.lineno}: {function}(unsafe_allow_html={ast.unparse(keyword.value)})")
            if keyword.arg is None and "html" in ast.unparse(keyword.value):  # **options could smuggle it in
                found.append(f"line {node.lineno}: {function}(**{ast.unparse(keyword.value)})")
    return found


@pytest.mark.parametrize("path", UI_SOURCES, ids=[p.relative_to(ROOT).as_posix() for p in UI_SOURCES])
def test_no_ui_source_renders_raw_html(path: Path) -> None:
    source = without_constant_stylesheet(path.read_text(encoding="utf-8"))
    assert raw_html_calls(source) == []
    # the text search catches what the syntax tree cannot (getattr tricks, strings built at run time)
    assert not re.search(r"unsafe_allow_html\s*=\s*True|\bst\.html\s*\(|components\.v1|import streamlit\.components", source)


STYLESHEET_CALL = "st.html(STYLESHEET)"


def without_constant_stylesheet(source: str) -> str:
    """``source`` less its one allowed HTML call: ``st.html(STYLESHEET)`` where STYLESHEET is a module constant
    holding a single <style> block of literal text (no tag inside, nothing built at run time, no data)."""
    if STYLESHEET_CALL not in source:
        return source
    tree = ast.parse(source)
    assigned = [node for node in tree.body if isinstance(node, ast.Assign)
                and [ast.unparse(target) for target in node.targets] == ["STYLESHEET"]]
    rebound = [node for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign))
               and "STYLESHEET" in ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target)]
    if len(assigned) != 1 or len(rebound) != 1:
        return source  # defined more than once, or not a plain constant: the call stays and fails the test
    try:
        value = ast.literal_eval(assigned[0].value)
    except ValueError:
        return source
    if not isinstance(value, str) or not re.fullmatch(r"<style>[^<]*</style>", value):
        return source
    return source.replace(STYLESHEET_CALL, "")


def test_only_a_literal_stylesheet_is_let_through() -> None:
    allowed = 'STYLESHEET = ("<style>.a {color: red;}" " .b {x: y;}</style>")\nst.html(STYLESHEET)\n'
    assert "st.html" not in without_constant_stylesheet(allowed)
    for refused in ('STYLESHEET = "<style>a{}</style><img src=x>"\nst.html(STYLESHEET)\n',
                    'STYLESHEET = f"<style>{user}</style>"\nst.html(STYLESHEET)\n',
                    'STYLESHEET = "<style>a{}</style>"\nSTYLESHEET += data\nst.html(STYLESHEET)\n',
                    'STYLESHEET = "<b>hi</b>"\nst.html(STYLESHEET)\n',
                    'st.html(STYLESHEET)\n'):
        assert "st.html(STYLESHEET)" in without_constant_stylesheet(refused), refused


def test_the_raw_html_check_catches_what_it_looks_for() -> None:
    raw = "unsafe_allow_html=" + "True"  # split so that a plain grep of the sources finds no such call
    caught = raw_html_calls(f'st.markdown(x, {raw})\nst.html("<b>")\nst.write(y, unsafe_allow_html=flag)\n'
                            'import streamlit.components.v1 as components\ncomponents.html("<script>")\n')
    assert len(caught) == 4
    assert raw_html_calls('st.markdown(x, unsafe_allow_html=False)\nst.markdown(x)\nst.code(html)\n') == []


def test_core_never_imports_streamlit() -> None:
    for path in sorted((ROOT / "core").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not any(name.split(".")[0] == "streamlit" for name in imported), path.name


# ---- names and paths ------------------------------------------------------------------------------

ESCAPING_NAMES = ["../x", "..", ".", "../../etc/passwd", "/etc/passwd", "a/../../b", "a/b", "a\\b", "..\\x", "C:\\x", "~",
                  "~root", "x\n", "x\x00", "", " ", ".hidden", "-rf", "x" * 101, "名前", "a\u2215b", "a\uff0fb", "$HOME", "%2e%2e"]


@pytest.mark.parametrize("name", ESCAPING_NAMES, ids=[repr(n) for n in ESCAPING_NAMES])
def test_dataset_name_that_could_leave_its_folder_is_refused(name: str) -> None:
    with pytest.raises(DatasetError, match="is not allowed"):
        validate_name(name)


@pytest.mark.parametrize("name", ["csn-mini", "cosqa", "my_bench.v2", "A1", "x" * 100])
def test_ordinary_dataset_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


def test_opening_a_dataset_by_an_escaping_name_finds_nothing_outside(workspace: Workspace, tmp_path: Path) -> None:
    for name in ["../outside", "../../" + tmp_path.name, "/etc", str(workspace.root)]:
        with pytest.raises(DatasetError, match="No dataset named"):
            open_dataset(workspace, name)


def test_workspace_inside_refuses_paths_that_resolve_outside(workspace: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace.root / "link-out").symlink_to(outside)

    assert workspace.inside(workspace.root / "runs" / "r.parquet") == workspace.root / "runs" / "r.parquet"
    assert workspace.inside(workspace.root) == workspace.root
    for path in [workspace.root / ".." / "outside", workspace.root / "runs" / ".." / ".." / "x", outside, Path("/etc/passwd"),
                 workspace.root / "link-out" / "file", Path(str(workspace.root) + "-sibling")]:
        with pytest.raises(PermissionError, match="outside the workspace"):
            workspace.inside(path)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=120))
def test_slug_of_any_text_names_one_entry_inside_its_folder(name: str) -> None:
    cleaned = slug(name)
    assert cleaned and cleaned not in {".", ".."}
    assert "/" not in cleaned and "\\" not in cleaned and "\x00" not in cleaned
    root = Path("/workspace/indexes")
    assert (root / cleaned).resolve().parent == root


def test_index_paths_stay_inside_the_workspace_whatever_the_dataset_is_called(workspace: Workspace) -> None:
    documents = (Document("d1", "text"),)
    for name in ["../../../../tmp/evil", "/etc/passwd", "..", "a/../../b", "\x00"]:
        dataset = Dataset(name, documents, (Query("q1", "t"),), Qrels({"q1": {"d1": 1}}))  # built directly: no validation
        path = index_path(workspace, dataset, "code")
        assert workspace.inside(path) == path.resolve()
        assert path.resolve().parent.parent == workspace.lexical_dir
