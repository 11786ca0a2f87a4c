"""What a new user hit (issue 16), driven in headless Chromium at the widths where it showed.

Readable top documents at 1024 and 1400 px, one history entry per sidebar click, page parameters that
stay on their page, links naming unknown things, results drawn in the tab the user acted in, and a
legend naming each significance letter.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
import re
import uuid
from dataclasses import replace

import pytest

from core.evaluation.significance import run_letters, superscript
from tests.e2e.conftest import DATASET
from tests.e2e.test_browser import (CODE_QUERY, current_page_title, exceptions, go_to, grid, normalize, open_app, screenshot,
                                    wait_for_app)
from ui.state import DEFAULT_SELECTED as SELECTED

pytestmark = pytest.mark.e2e


@contextmanager
def sized_page(browser, width: int) -> Iterator:
    """A page in a fresh browser context ``width`` pixels wide (900 high), closed afterwards."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(120_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def search_in_explorer(page, app_server) -> None:
    """Paste CODE_QUERY into the explorer and wait until every selected profile shows its top document."""
    open_app(page, f"{app_server.url}/explorer?dataset={DATASET}")
    page.get_by_label("Code query").fill(CODE_QUERY)
    page.get_by_role("button", name="Search").click()
    page.wait_for_function(f"() => document.querySelectorAll('[class*=st-key-explorer_top_]').length >= {len(SELECTED)}")
    wait_for_app(page)
    assert exceptions(page) == []


def assert_inside_window(element, width: int, what: str = "") -> None:
    """The element lies inside a window ``width`` wide, and nothing in it is cut off sideways."""
    bounds = element.bounding_box()
    assert bounds is not None and bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= width, (what, bounds)
    assert element.evaluate("e => [...e.querySelectorAll('*')].every(c => c.scrollWidth <= c.clientWidth + 1)"), what


def sidebar_dataset(page) -> str:
    return page.get_by_test_id("stSidebar").get_by_role("combobox", name="Dataset", exact=True).input_value()


def evaluate_if_needed(page, app_server) -> None:
    """Open the leaderboard; press Evaluate when some selected profile has no saved run yet (tests may run in any order)."""
    open_app(page, f"{app_server.url}/?dataset={DATASET}")
    evaluate = page.get_by_role("button", name=re.compile(r"^Evaluate \d+ profile"))
    if evaluate.count():
        evaluate.click()
    page.wait_for_selector("div.js-plotly-plot .main-svg")
    wait_for_app(page)


def history_length(page) -> int:
    return page.evaluate("() => window.history.length")


@pytest.mark.parametrize("width", [1024, 1400])
def test_the_first_120_characters_of_each_profiles_top_document_are_visible(browser, app_server, e2e_engine, artifacts,
                                                                             width):
    with sized_page(browser, width) as page:
        search_in_explorer(page, app_server)
        for position, name in enumerate(SELECTED):
            top_id = e2e_engine.search(name, CODE_QUERY, depth=100).ranking.doc_ids[0]
            wanted = normalize(e2e_engine.dataset.document(top_id).full_text)[:120]
            box = page.locator(f".st-key-explorer_top_{position}")
            box.scroll_into_view_if_needed()
            text = normalize(box.inner_text())
            assert top_id in text, name
            assert wanted in text, (name, text)
            # laid out inside the window, and nothing in it cut off sideways
            assert_inside_window(box, width, name)
        screenshot(page, artifacts / f"explorer-top-documents-{width}.png")


def test_one_sidebar_click_adds_one_history_entry_and_back_returns_to_the_page_before(page, app_server):
    open_app(page, f"{app_server.url}/?dataset={DATASET}")
    before = history_length(page)
    go_to(page, "Query explorer")
    assert history_length(page) == before + 1
    assert re.search(rf"/explorer\?dataset={DATASET}", page.url)
    assert sidebar_dataset(page) == DATASET
    page.go_back()
    page.wait_for_selector('[data-testid="stSidebarNavLink"][aria-current="page"]:has-text("Leaderboard")')
    wait_for_app(page)
    assert current_page_title(page) == "Leaderboard" and sidebar_dataset(page) == DATASET
    assert exceptions(page) == []


def test_the_dataset_chosen_by_a_link_survives_every_sidebar_click(page, app_server):
    """The flaky case: a ?dataset= link, then pages reached through the sidebar. The dataset travels in each request."""
    open_app(page, f"{app_server.url}/?dataset={DATASET}")
    for title in ("Query explorer", "Per-query breakdown", "Datasets", "Query explorer", "Leaderboard"):
        go_to(page, title)
        assert (sidebar_dataset(page), title) == (DATASET, title), page.url
        assert f"dataset={DATASET}" in page.url, title


def test_a_pages_own_parameters_do_not_travel_to_other_pages(page, app_server, e2e_engine):
    qid = e2e_engine.dataset.judged_queries[1].id
    open_app(page, f"{app_server.url}/explorer?dataset={DATASET}&profiles=bm25-code&qid={qid}")
    assert f"qid={qid}" in page.url
    go_to(page, "Per-query breakdown")
    assert "qid=" not in page.url and f"dataset={DATASET}" in page.url
    go_to(page, "Failure cases")
    assert not re.search(r"[?&](qid|a|b)=", page.url), page.url
    assert exceptions(page) == []


def test_a_link_naming_an_unknown_dataset_or_query_says_so(page, app_server):
    open_app(page, f"{app_server.url}/explorer?dataset=no-such-set&qid=no-such-query")
    warnings = normalize(" ".join(page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()))
    assert "no-such-set" in warnings and "not here" in warnings
    assert "no-such-query" in warnings
    assert exceptions(page) == []


def test_an_import_error_is_shown_in_the_tab_where_the_user_imported(page, app_server, artifacts):
    open_app(page, f"{app_server.url}/datasets?dataset={DATASET}")
    page.get_by_role("tab", name="Add a dataset").click()
    wait_for_app(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": "broken.zip", "mimeType": "application/zip", "buffer": b"this is not a zip archive"}])
    wait_for_app(page)
    page.get_by_role("button", name="Import", exact=True).click()
    page.wait_for_selector('[data-testid="stAlertContentError"]', state="visible")
    wait_for_app(page)
    assert page.get_by_role("tab", name="Add a dataset").get_attribute("aria-selected") == "true"
    assert page.locator('[data-testid="stAlertContentError"]').first.is_visible()
    screenshot(page, artifacts / "datasets-import-error.png")


def test_the_leaderboard_names_each_significance_letter(page, app_server):
    evaluate_if_needed(page, app_server)
    legend = normalize(page.locator('[data-testid="stMarkdown"]', has_text="Significance letters:").inner_text())
    for name, letter in run_letters(list(SELECTED)).items():
        assert f"{superscript(letter)} = {name}" in legend


@pytest.mark.parametrize("width", [1024, 1400])
def test_multiselect_chips_show_their_whole_text(browser, app_server, width):
    """A long profile name in the sidebar's chips is wrapped, never cut with an ellipsis."""
    long_name = "hybrid-rrf-with-a-rather-long-descriptive-name"
    profiles_file = app_server.workspace.profiles_file
    before = profiles_file.read_text() if profiles_file.exists() else None
    profiles_file.write_text((before or "") + f'\n[profiles.{long_name}]\nkind = "hybrid"\n'
                             'members = ["bm25-code", "dense-minilm"]\nmethod = "rrf"\n')
    try:
        with sized_page(browser, width) as page:
            open_app(page, f"{app_server.url}/build_benchmark?dataset={DATASET}&profiles=bm25-code&profiles={long_name}")
            assert sidebar_profiles(page, 2) == ["bm25-code", long_name]
            chips = page.get_by_test_id("stSidebar").locator("[data-tag] > span[title]")
            for i in range(chips.count()):
                assert chips.nth(i).evaluate("e => e.scrollWidth <= e.clientWidth + 1"), chips.nth(i).inner_text()
    finally:
        if before is None:
            profiles_file.unlink()
        else:
            profiles_file.write_text(before)


RECORD_PROGRESS = """(() => {
  window.__progress = [];
  new MutationObserver(() => {
    for (const bar of document.querySelectorAll('[data-testid="stProgress"]')) {
      const text = bar.innerText.trim();
      if (text && window.__progress[window.__progress.length - 1] !== text) window.__progress.push(text);
    }
  }).observe(document, {subtree: true, childList: true, characterData: true});
})()"""


def test_the_first_search_on_a_dataset_without_indexes_shows_each_stage_counting_documents(page, app_server, csn_mini):
    from core.data.datasets import write_dataset
    from tests.conftest import slice_dataset

    name = "progress-mini"  # a dataset no index exists for, in this server's workspace
    sliced = slice_dataset(csn_mini, 3, 30, name=name)
    # texts no other test embedded: the server's embedding cache would otherwise serve every vector at once,
    # and the embedding stage would pass between two screen updates (what CI's full run once caught)
    fresh = tuple(replace(d, text=f"{d.text}\n{uuid.uuid4().hex}") for d in sliced.documents)
    write_dataset(replace(sliced, documents=fresh), app_server.workspace.datasets_dir / name)
    page.add_init_script(RECORD_PROGRESS)
    open_app(page, f"{app_server.url}/explorer?dataset={name}&profiles=dense-minilm")
    page.get_by_label("Code query").fill(CODE_QUERY)
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector('[data-testid="stColumn"] [data-testid="stDataFrame"]')
    wait_for_app(page)
    assert exceptions(page) == []
    seen = page.evaluate("() => window.__progress")
    assert any(re.search(r"embedding corpus \(minilm\): \d+ / 30 documents", text) for text in seen), seen
    assert any("storing corpus vectors in LanceDB (minilm)" in text for text in seen), seen
    assert not any("%" in text for text in seen), seen
    assert page.locator('[data-testid="stProgress"]').count() == 0  # the bar goes once the search is done


def test_ctrl_enter_in_the_query_box_searches(page, app_server):
    open_app(page, f"{app_server.url}/explorer?dataset={DATASET}&profiles=bm25-code")
    box = page.get_by_role("textbox", name="Code query")
    box.fill(CODE_QUERY)
    box.press("Control+Enter")
    page.wait_for_selector('[data-testid="stColumn"] [data-testid="stDataFrame"]')
    wait_for_app(page)
    assert page.locator(".st-key-explorer_top_0").is_visible()


def test_a_dense_failure_gets_a_semantic_reading_and_its_docstring_is_shown_as_prose(page, app_server, artifacts):
    open_app(page, f"{app_server.url}/failures?dataset={DATASET}&profiles=dense-minilm")
    k_input = page.get_by_label("k", exact=True)
    k_input.fill("1")
    k_input.press("Enter")
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMetricLabel]')]"
                           ".some(e => e.innerText.trim().endsWith('at k=1'))")
    wait_for_app(page)
    assert exceptions(page) == []
    assert page.get_by_text("Semantic reading").is_visible()
    margin = page.locator('[data-testid="stMetric"]').filter(has_text="Margin")
    assert float(margin.locator('[data-testid="stMetricValue"]').inner_text()) >= 0  # the distractor won
    assert page.get_by_text(re.compile(r"closer to the query than the positive: cosine")).count() >= 1
    # the positive is a docstring: shown as plain text, not highlighted as Python
    blocks = page.locator('[data-testid="stCode"] code')
    classes = [blocks.nth(i).get_attribute("class") or "" for i in range(blocks.count())]
    assert classes and "language-python" not in classes[1], classes  # [0] is the query (code), [1] the positive
    screenshot(page, artifacts / "failures-semantic.png")


def test_a_profile_created_on_the_profiles_page_lands_in_profiles_toml_and_the_sidebar(page, app_server):
    from core.retrieval.profiles import load_profiles

    profiles_file = app_server.workspace.profiles_file
    before = profiles_file.read_text() if profiles_file.exists() else None
    try:
        open_app(page, f"{app_server.url}/profiles?dataset={DATASET}")
        page.get_by_label("Name", exact=True).fill("bm25-k1-09")
        k1 = page.get_by_label("k1", exact=True)
        k1.fill("0.9")
        k1.press("Tab")
        page.get_by_role("button", name="Save profile").click()
        page.wait_for_selector('[data-testid="stAlertContentSuccess"]')
        wait_for_app(page)
        assert exceptions(page) == []
        assert load_profiles(profiles_file)["bm25-k1-09"].k1 == 0.9
        box = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Profiles")
        box.click()
        box.fill("bm25-k1")  # the dropdown draws only the options in view: earlier tests may have added profiles
        assert page.get_by_role("option", name="bm25-k1-09").count() == 1
    finally:
        if before is None:
            profiles_file.unlink(missing_ok=True)
        else:
            profiles_file.write_text(before)


def test_the_report_names_each_profiles_saved_run(page, app_server):
    from core.retrieval.runs import list_runs

    evaluate_if_needed(page, app_server)
    go_to(page, "Significance & report")
    page.get_by_role("button", name="Build report").click()
    page.wait_for_selector('button:has-text("Download HTML")')
    wait_for_app(page)
    reports = sorted((app_server.workspace.root / "reports").glob("*/report.md"))
    markdown = reports[-1].read_text()
    saved: dict[str, str] = {}
    for run in list_runs(app_server.workspace.runs_dir, DATASET):  # newest first: the run the leaderboard shows
        saved.setdefault(run.name, run.run_id)
    lines = markdown.replace("\\", "").splitlines()
    header = lines.index("| profile | parameters | run id | ms/query |")
    table = itertools.takewhile(lambda line: line.startswith("|"), lines[header + 2:])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table}
    for name in SELECTED:
        assert saved[name] in rows[name], rows[name]


def test_a_sweeps_best_point_is_saved_as_a_profile(page, app_server):
    from core.retrieval.profiles import load_profiles

    profiles_file = app_server.workspace.profiles_file
    before = profiles_file.read_text() if profiles_file.exists() else None
    try:
        open_app(page, f"{app_server.url}/sweep?dataset={DATASET}")
        page.get_by_role("tab", name="BM25 k1 / b").click()
        wait_for_app(page)
        page.get_by_role("button", name="Run BM25 sweep").click()
        page.wait_for_selector('button:has-text("Save as profile")')
        wait_for_app(page)
        assert page.get_by_role("tab", name="BM25 k1 / b").get_attribute("aria-selected") == "true"
        label = page.get_by_text(re.compile(r"Save the best point \(k1 = ")).inner_text()
        best_k1 = float(re.search(r"k1 = ([0-9.]+)", label).group(1))
        page.get_by_role("button", name="Save as profile").click()
        page.wait_for_selector('[data-testid="stAlertContentSuccess"]')
        wait_for_app(page)
        assert exceptions(page) == []
        saved = load_profiles(profiles_file)[f"bm25-code-k1-{best_k1:g}"]
        assert saved.kind == "bm25" and saved.k1 == best_k1 and saved.b == 0.75
    finally:
        if before is None:
            profiles_file.unlink(missing_ok=True)
        else:
            profiles_file.write_text(before)


# ---- gaps left after the first pass (readable tables, the sidebar's selection in every URL) -----------------------
def visible_headers(frame) -> list[str]:
    """Column headers the grid draws without scrolling sideways (its accessible table holds the visible columns only)."""
    return [cell.inner_text().strip() for cell in frame.locator('th[role="columnheader"]').all()]


def assert_grid_inside_window(frame, width: int) -> None:
    bounds = frame.bounding_box()
    assert bounds is not None and bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= width, bounds


@pytest.mark.parametrize("width", [1024, 1400])
def test_the_breakdown_shows_every_profiles_metric_column_without_scrolling(browser, app_server, artifacts, width):
    with sized_page(browser, width) as page:
        open_app(page, f"{app_server.url}/breakdown?dataset={DATASET}")
        frame = page.locator('[data-testid="stDataFrame"]').filter(has=page.locator('th[role="columnheader"]:text-is("query id")'))
        frame.wait_for()
        wait_for_app(page)
        assert exceptions(page) == []
        frame.scroll_into_view_if_needed()
        assert_grid_inside_window(frame, width)
        headers = visible_headers(frame)
        for name in SELECTED:
            assert name in headers, (name, headers)
        assert headers.index("query id") < min(headers.index(name) for name in SELECTED)
        screenshot(page, artifacts / f"breakdown-metric-columns-{width}.png")


@pytest.mark.parametrize("width", [1024, 1400])
def test_the_leaderboard_with_extra_cutoffs_keeps_ms_per_query_and_the_run_id_in_sight(browser, app_server, artifacts,
                                                                                        width):
    from core.retrieval.runs import list_runs

    with sized_page(browser, width) as page:
        open_app(page, f"{app_server.url}/?dataset={DATASET}&k=5,20,50")
        evaluate = page.get_by_role("button", name=re.compile(r"^Evaluate \d+ profile"))
        if evaluate.count():
            evaluate.click()
        frame = page.locator('[data-testid="stDataFrame"]').filter(has=page.locator('th[role="columnheader"]:text-is("run")'))
        frame.wait_for()
        wait_for_app(page)
        assert exceptions(page) == []
        frame.scroll_into_view_if_needed()
        assert_grid_inside_window(frame, width)
        headers = visible_headers(frame)
        assert "ms/query" in headers and "run id" in headers, headers
        saved: dict[str, str] = {}
        for run in list_runs(app_server.workspace.runs_dir, DATASET):  # newest first: the run the leaderboard shows
            saved.setdefault(run.name, run.run_id)
        shown = {row.get("run", "").strip(): row.get("run id", "").strip() for row in grid(frame)}
        for name in SELECTED:
            assert shown.get(name) == saved[name], (name, shown)
        screenshot(page, artifacts / f"leaderboard-cutoffs-{width}.png")


def test_the_second_ranked_document_is_readable_one_click_away_at_1024_px(browser, app_server, e2e_engine, artifacts):
    width = 1024
    with sized_page(browser, width) as page:
        search_in_explorer(page, app_server)
        name = SELECTED[0]
        second_id = e2e_engine.search(name, CODE_QUERY, depth=100).ranking.doc_ids[1]
        wanted = normalize(e2e_engine.dataset.document(second_id).full_text)[:80]
        page.locator('[data-testid="stExpander"] summary', has_text="Full text").first.click()
        entry = page.locator('[data-testid="stExpander"]').first.locator('[data-testid="stMarkdown"]', has_text=second_id).first
        entry.scroll_into_view_if_needed()
        assert entry.is_visible()
        assert wanted in normalize(entry.inner_text()), entry.inner_text()
        assert_inside_window(entry, width)
        page.screenshot(path=str(artifacts / "explorer-second-document-1024.png"))


def sidebar_profiles(page, count: int) -> list[str]:
    chips = page.get_by_test_id("stSidebar").locator("[data-tag] > span[title]")
    chips.nth(count - 1).wait_for(state="visible")  # the tags are drawn a moment after the widget
    return [chips.nth(i).inner_text().strip() for i in range(chips.count())]


@pytest.mark.parametrize("link", ["profiles=bm25-code&profiles=dense-minilm"])
def test_a_copied_url_carries_the_profiles_a_link_chose_after_a_sidebar_click(browser, page, app_server, link):
    """The selection a link made stays in every later URL. (A typed comma form, profiles=a,b, is read on arrival but not kept; the pages' own links write the repeated form.)"""
    chosen = ["bm25-code", "dense-minilm"]
    open_app(page, f"{app_server.url}/?dataset={DATASET}&{link}")
    assert sidebar_profiles(page, 2) == chosen
    go_to(page, "Per-query breakdown")
    assert sidebar_profiles(page, 2) == chosen
    copied = page.url
    fresh = browser.new_context(viewport={"width": 1400, "height": 900})
    fresh.set_default_timeout(120_000)
    try:
        other = fresh.new_page()
        open_app(other, copied)
        assert sidebar_profiles(other, 2) == chosen, copied
        assert exceptions(other) == []
    finally:
        fresh.close()
