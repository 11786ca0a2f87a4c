"""Every string a page renders as markdown is either literal or escaped: a scan of every page's source, plus the two
injections a tester found (a document id in the explorer's tooltip, a crafted ``?k=`` in the sidebar) rendered as text."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")])
# Streamlit calls whose text (first argument, label, body or help) is rendered as markdown.
MARKDOWN_CALLS = {"markdown", "caption", "info", "warning", "error", "success", "toast", "title", "header", "subheader",
                  "expander", "metric", "button", "download_button", "form_submit_button", "spinner", "tabs", "radio",
                  "checkbox", "toggle", "text_input", "text_area", "number_input", "slider", "selectbox", "multiselect",
                  "file_uploader", "page_link", "write", "popover", "status"}
TEXT_KEYWORDS = {"label", "body", "help", "text"}
ESCAPERS = {"escape_markdown", "highlighted_markdown"}
SAFE_MARK = "# markdown-safe:"  # on a line of a call (or just above it) whose dynamic text is known safe, followed by why


def _is_escaped(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in ESCAPERS


def _is_trusted(node: ast.AST) -> bool:
    """Text no user or dataset can choose: literals, module constants (UPPER_CASE), counts, exception class names."""
    if isinstance(node, ast.Constant) or _is_escaped(node):
        return True
    if isinstance(node, ast.Name):
        return node.id.isupper()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len":
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join":
        return all(_is_trusted(arg) for arg in node.args) and _is_trusted(node.func.value)
    if isinstance(node, ast.BinOp):
        return _is_trusted(node.left) and _is_trusted(node.right)
    return ast.unparse(node) == "type(exc).__name__"


def unsafe_parts(node: ast.AST) -> list[str]:
    """Source of each dynamic piece of ``node`` that reaches markdown unescaped (numbers with a format spec pass)."""
    if _is_trusted(node):
        return []
    if isinstance(node, ast.JoinedStr):
        found = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue) and not _is_trusted(value.value):
                numeric = value.format_spec is not None and value.conversion == -1
                if not numeric:
                    found.append(ast.unparse(value.value))
        return found
    if isinstance(node, ast.BinOp):
        return unsafe_parts(node.left) + unsafe_parts(node.right)
    if isinstance(node, ast.IfExp):
        return unsafe_parts(node.body) + unsafe_parts(node.orelse)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [part for element in node.elts for part in unsafe_parts(element)]
    if isinstance(node, ast.BoolOp):
        return [part for value in node.values for part in unsafe_parts(value)]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join" and len(node.args) == 1
            and isinstance(node.args[0], ast.GeneratorExp) and _is_trusted(node.func.value)):
        return unsafe_parts(node.args[0].elt)  # "; ".join(f"{escape_markdown(x)}" for x in xs): what each element is
    return [ast.unparse(node)]


def markdown_findings(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    findings = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MARKDOWN_CALLS):
            continue
        if any(SAFE_MARK in lines[number - 1] for number in range(node.lineno - 1, (node.end_lineno or node.lineno) + 1)):
            continue
        texts = node.args[:1] + [k.value for k in node.keywords if k.arg in TEXT_KEYWORDS]
        if node.func.attr in ("tabs",):
            texts = node.args[:1]
        for text in texts:
            for part in unsafe_parts(text):
                findings.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}: {part}")
    return findings


def test_every_page_escapes_dynamic_text_it_renders_as_markdown():
    findings = [finding for path in SOURCES for finding in markdown_findings(path)]
    assert findings == [], "dynamic text rendered as markdown without escape_markdown:\n" + "\n".join(findings)


def test_the_scan_catches_an_unescaped_id_and_passes_an_escaped_one(tmp_path):
    page = tmp_path / "page.py"
    page.write_text("import streamlit as st\n"
                    "st.metric('Relevant at', '1', help='; '.join(f'{doc_id}: 1' for doc_id in ids))\n"
                    "st.sidebar.warning(f'Ignored cutoff {raw!r}')\n"
                    "st.caption(f'{escape_markdown(name)} · {count:,} rows')\n"
                    "st.info(escape_markdown(message))\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        findings = markdown_findings(page)
    finally:
        ROOT = saved
    assert [f.split(" ", 1)[1] for f in findings] == ["metric: doc_id", "warning: raw"]


# ---- behaviour: the two injections a tester found ------------------------------------------------------------------
APP = ROOT / "app.py"
HOSTILE_ID = "![t](http://host/x)"
CRAFTED_K = "5,![x](http://evil.example/x.png) [log in again](http://evil.example/login)"


@pytest.fixture
def hostile_ids(app_at, tmp_path):
    """A dataset whose relevant document's id is a markdown image pointing at a remote host."""
    import json

    from core.workspace import Workspace

    folder = tmp_path / "data" / "hostile"
    (folder / "qrels").mkdir(parents=True)
    docs = [(HOSTILE_ID, "Read a JSON file and return the parsed object."), ("plain", "Write rows to a CSV file.")]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs))
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "read a json file"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text(f"q1\t{HOSTILE_ID}\t1\n")
    return app_at(Workspace.open(tmp_path / "ws", tmp_path / "data"), tmp_path / "data")


def test_a_document_id_in_the_relevant_at_tooltip_is_escaped(hostile_ids):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params.update({"dataset": "hostile", "profiles": "bm25-code", "qid": "q1"})
    at.run()
    at.switch_page("pages/explorer.py").run()
    assert not at.exception, at.exception
    [relevant] = [m for m in at.metric if m.label == "Relevant at"]
    assert relevant.value == "1"
    assert relevant.proto.help.startswith("\\!\\[t\\]\\(http\\:\\/\\/host\\/x\\)"), relevant.proto.help
    assert "](" not in relevant.proto.help


def test_a_crafted_k_parameter_is_shown_escaped_and_its_valid_cutoff_kept(app_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code", "k": CRAFTED_K})
    at.run()
    assert not at.exception, at.exception
    [warning] = [w.value for w in at.sidebar.warning]
    assert "\\!\\[x\\]\\(http\\:\\/\\/evil" in warning, warning
    assert not re.search(r"(?<!\\)[][()!<>]", warning), f"an unescaped markdown character: {warning}"
    assert "ndcg@5" in at.session_state["_selection"].metrics


def test_a_k_parameter_of_many_bad_values_draws_a_few_warnings_and_a_count(app_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code", "k": "10," + ",".join(["x"] * 500)})
    at.run()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == 4 and warnings[-1] == "... and 497 more values ignored.", warnings[-1:]
    assert "ndcg@10" in at.session_state["_selection"].metrics
