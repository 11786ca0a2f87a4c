"""Links carrying URLs as values, in a real Chromium: the values show as text, never as links, and the dashboard
makes no request beyond the server it came from (its favicon included)."""
from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest

from core.workspace import Workspace
from tests.e2e.conftest import DATASET, Server, start_server, stop_server
from tests.e2e.test_browser import open_app, screenshot

pytestmark = pytest.mark.e2e

EVIL = "https://evil.example/login"


@pytest.fixture(scope="module")
def lexical_server(chromium_path, mini_data_dir, tmp_path_factory) -> Iterator[Server]:
    """A dashboard on a fresh workspace; the links below pick BM25 profiles only, so nothing waits on embeddings."""
    workspace = Workspace.open(tmp_path_factory.mktemp("links-workspace"), mini_data_dir)
    log = tmp_path_factory.mktemp("links-server") / "streamlit.log"
    process, url = start_server(workspace, log)
    try:
        yield Server(url, workspace, log)
    finally:
        stop_server(process)


def _link(server: Server, path: str, **params: str) -> str:
    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in
                     {"dataset": DATASET, "profiles": "bm25-code", **params}.items())
    return f"{server.url}/{path}?{query}"


@pytest.mark.parametrize("path, params, shown", [
    ("explorer", {"qid": EVIL}, "names query"),
    ("compare_runs", {"profiles": "bm25-code,bm25-plain", "a": EVIL, "b": "../../etc/passwd"}, "is unknown"),
    ("", {"dataset": EVIL, "profiles": f"bm25-code,www.evil.example,admin@evil.example"}, "names dataset"),
])
def test_a_url_in_a_link_is_text_and_nothing_is_fetched_from_elsewhere(lexical_server, browser_context, artifacts,
                                                                       path, params, shown):
    page = browser_context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        open_app(page, _link(lexical_server, path, **params))
        alerts = page.locator('[data-testid="stAlert"]', has_text=shown)
        assert alerts.count() >= 1, page.locator('[data-testid="stAlert"]').all_inner_texts()
        assert "evil" in alerts.first.inner_text() or "passwd" in alerts.first.inner_text()
        links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        assert not [href for href in links if "evil" in (urlsplit(href).hostname or "") or href.startswith("mailto:")], links
        assert not page.locator("img[src*='evil']").count()
        icons = page.evaluate("() => [...document.querySelectorAll('link[rel~=icon]')].map(l => l.href)")
        assert icons and all(urlsplit(href).hostname == "127.0.0.1" for href in icons), icons
        page.wait_for_timeout(500)  # a favicon or font is fetched just after the run ends
        elsewhere = [url for url in requests if urlsplit(url).scheme not in ("data", "blob")
                     and urlsplit(url).hostname != "127.0.0.1"]
        assert elsewhere == [], elsewhere
        if path == "explorer":
            screenshot(page, artifacts / "hostile-link-explorer.png")
    finally:
        page.close()
