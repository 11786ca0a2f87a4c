"""Text from URLs, files and profile names never becomes a link: GFM's autolinks of bare URLs, ``www.`` names and
e-mail addresses are defeated by ``escape_markdown``; an unknown run in a link is said; a bad profiles.toml is one
error on the page; the favicon is served by the dashboard itself."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui.render import escape_markdown, highlighted_markdown
from core.retrieval.highlight import Span

APP = str(Path(__file__).resolve().parents[2] / "app.py")
EVIL_URL = "https://evil.example/login"
HOSTILE = [EVIL_URL, f"Session expired, log in again at {EVIL_URL}", "www.evil.example", "WWW.EVIL.EXAMPLE/x",
           "mail admin@evil.example now", "HTTPS://EVIL.EXAMPLE", "(https://evil.example)", "http://evil.example/f",
           "http://10.0.0.1/x", "mailto:a.b+c@evil.example", "x https://.evil.example y", "https://user:pw@evil.example/"]

# GFM's autolink literals as mdast-util-gfm-autolink-literal finds them in a text node (Streamlit's renderer runs it
# after parsing, so backslash escapes are already undone): bare URLs and www names with a dotted domain, and e-mails.
_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE | re.ASCII)
_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)


def _correct_domain(domain: str) -> bool:
    parts = domain.split(".")
    return len(parts) >= 2 and all(part and "_" not in part and re.search(r"[A-Za-z\d]", part) for part in parts[-2:])


def gfm_autolinks(markdown: str) -> list[str]:
    """What GFM would link in ``markdown``'s text: its backslash escapes undone, then the two literal searches."""
    text = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)
    found = []
    for match in _URL.finditer(text):
        domain = ("www" + match.group(2)) if match.group(1).lower().startswith("w") else match.group(2)
        if _correct_domain(domain):
            found.append(match.group())
    return found + [match.group() for match in _EMAIL.finditer(text)]


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_is_never_autolinked_and_reads_the_same(text):
    assert gfm_autolinks(text), f"the check itself must see the raw link in {text!r}"
    for markdown in (escape_markdown(text), highlighted_markdown([Span(text, False), Span(" tail", True)])):
        assert gfm_autolinks(markdown) == [], markdown
    shown = re.sub(r"\\(.)", r"\1", escape_markdown(text)).replace("\u2060", "")
    assert shown == text


def test_code_and_plain_text_get_no_invisible_characters():
    for text in ["def f(x): return x.y", "see the www page", "a@b", "user @ host.com", "1.5 http: ok"]:
        assert "\u2060" not in escape_markdown(text)


def _open(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code", **params})
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _drawn_text(at: AppTest) -> list[str]:
    return [e.value for kind in (at.warning, at.sidebar.warning, at.error, at.info, at.caption, at.markdown, at.success)
            for e in kind]


def test_a_url_as_query_id_in_the_explorer_link_is_shown_but_not_linked(app_env):
    at = _open("pages/explorer.py", qid=EVIL_URL)
    [warning] = [w.value for w in at.warning if "names query" in w.value]
    assert "evil" in warning and gfm_autolinks(warning) == [], warning
    assert all(gfm_autolinks(text) == [] for text in _drawn_text(at))


def test_urls_as_dataset_and_profile_in_the_link_are_shown_but_not_linked(app_env):
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update({"dataset": EVIL_URL, "profiles": f"bm25-code,www.evil.example,{EVIL_URL}"})
    at.run()
    assert not at.exception, at.exception
    warnings = [w.value for w in at.sidebar.warning]
    assert any("names dataset" in w for w in warnings) and any("Unknown profile" in w for w in warnings), warnings
    assert all(gfm_autolinks(text) == [] for text in warnings), warnings


@pytest.mark.parametrize("a, b", [("../../etc/passwd", "bm25-plain"), ("bm25-code", EVIL_URL)])
def test_an_unknown_run_in_the_compare_link_is_said_not_silently_replaced(app_env, a, b):
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code,bm25-plain", "a": a, "b": b})
    at.run()
    at.switch_page("pages/compare_runs.py").run()
    assert not at.exception, at.exception
    unknown = a if a not in ("bm25-code", "bm25-plain") else b
    warnings = [w.value for w in at.warning if "is unknown" in w.value]
    assert len(warnings) == 1, [w.value for w in at.warning]
    assert re.sub(r"\\(.)", r"\1", warnings[0]).replace("\u2060", "").count(unknown) == 1, warnings
    assert gfm_autolinks(warnings[0]) == [] and "Showing" in warnings[0]
    at.selectbox(key="compare_runs_measure").set_value("rbo").run()  # the page's own rerun: the link is not re-read
    assert not [w for w in at.warning if "is unknown" in w.value]


@pytest.mark.parametrize("toml, expected", [
    ('[profiles.x]\nkind = "bm25"\nk1 = "fast"\n', "profile x: k1 must be a number, not 'fast'"),
    ("profiles = 5\n", "[profiles] must be a table"),
    ('[profiles."<b>x</b>"]\nkind = "bm25"\n', "is not allowed"),
    ('[profiles."https://evil.example/x"]\nkind = "bm25"\n', "is not allowed"),
])
def test_a_bad_profiles_toml_is_one_error_on_the_page(app_at, mini_data_dir, tmp_path, toml, expected):
    from core.workspace import Workspace

    workspace = app_at(Workspace.open(tmp_path / "ws", mini_data_dir), mini_data_dir)
    workspace.profiles_file.write_text(toml)
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in [*at.error, *at.sidebar.error]]
    assert errors, "the sidebar reports the file"
    plain = [re.sub(r"\\(.)", r"\1", e).replace("\u2060", "") for e in errors]
    assert any(expected in p and "profiles.toml: " in p for p in plain), plain
    assert all(gfm_autolinks(e) == [] for e in errors)


def test_the_favicon_is_a_file_the_dashboard_serves():
    source = Path(APP).read_text()
    assert 'page_icon=":material' not in source and "page_icon=str(FAVICON)" in source
    assert (Path(APP).parent / "ui" / "static" / "favicon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
