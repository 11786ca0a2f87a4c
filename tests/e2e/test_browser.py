"""The dashboard in a real headless Chromium: pages load, show what ``core`` computes, and never run query text.

Every page is also written as a full-page screenshot to ``test-artifacts/screenshots/<page>.png``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.evaluation.failures import find_failures
from core.evaluation.metrics import DEFAULT_METRICS, evaluate, parse_metric
from tests.e2e.conftest import DATASET, start_server, stop_server
from ui.state import DEFAULT_SELECTED as SELECTED  # the profiles a new session's sidebar selects

pytestmark = pytest.mark.e2e

# (URL path, sidebar title) in navigation order; "" is the default page.
PAGES = [("", "Leaderboard"), ("explorer", "Query explorer"), ("breakdown", "Per-query breakdown"),
         ("compare_runs", "Compare two runs"), ("failures", "Failure cases"), ("compare", "Significance & report"),
         ("complementarity", "Complementarity"),
         ("slices", "Slice finder"), ("embedding_map", "Embedding map"), ("sweep", "Quality vs latency"),
         ("profiles", "Profiles"),
         ("datasets", "Datasets"), ("build_benchmark", "Build a benchmark"), ("leakage", "Leakage audit"),
         ("finetune", "Fine-tune")]
CODE_QUERY = "def load_json(path):\n    with open(path) as handle:\n        return json.load(handle)"
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


# ---- driving Streamlit ---------------------------------------------------------------------------
def wait_for_app(page) -> None:
    """Wait until the script run has finished, nothing is stale, and no rerun followed within a moment."""
    idle = ('[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]')
    page.wait_for_timeout(150)  # let a run that an action just triggered start
    for _ in range(40):
        page.wait_for_selector(idle)
        page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')")
        page.wait_for_timeout(250)  # a finished run can be followed at once by a rerun (st.rerun, query-param sync)
        if page.locator(idle).count() and not page.locator('[data-stale="true"]').count():
            return
    pytest.fail(f"{page.url} keeps rerunning")


def open_app(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stSidebar"]')
    wait_for_app(page)


def go_to(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
    page.wait_for_selector(f'[data-testid="stSidebarNavLink"][aria-current="page"]:has-text("{title}")')
    wait_for_app(page)


def exceptions(page) -> list[str]:
    """Text of every Python traceback box and st.error box on the page."""
    boxes = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [boxes.nth(i).inner_text() for i in range(boxes.count())]


def current_page_title(page) -> str:
    return page.locator('[data-testid="stSidebarNavLink"][aria-current="page"]').inner_text().split("\n")[-1].strip()


def heading(page) -> str:
    """The page's title (its first h1): the nav title, or a longer form of it ("Fine-tune a bi-encoder")."""
    return page.locator('[data-testid="stMain"] h1').first.inner_text().strip()


def screenshot(page, path: Path) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so the viewport is grown to fit it first."""
    viewport = page.viewport_size
    height = page.evaluate("() => Math.max(document.querySelector('[data-testid=\"stMain\"]').scrollHeight,"
                           " document.querySelector('[data-testid=\"stSidebarContent\"]')?.scrollHeight || 0)")
    page.set_viewport_size({"width": viewport["width"], "height": min(max(height, viewport["height"]), 8000)})
    page.wait_for_timeout(300)  # Plotly and the data grids redraw for the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
    return path


def grid(frame) -> list[dict[str, str]]:
    """The rows a st.dataframe draws, read from the grid's accessible table (visible rows and columns only)."""
    headers = {cell.get_attribute("aria-colindex"): cell.inner_text().strip()
               for cell in frame.locator('th[role="columnheader"]').all()}
    rows = []
    for row in frame.locator('tbody tr[role="row"]').all():
        rows.append({headers.get(cell.get_attribute("aria-colindex"), ""): cell.text_content()
                     for cell in row.locator('td[role="gridcell"]').all()})
    return rows


def dataframe_with_column(page, column: str):
    return page.locator('[data-testid="stDataFrame"]').filter(has=page.locator(f'th[role="columnheader"]:text-is("{column}")'))


def normalize(text: str) -> str:
    return " ".join(text.split())


# ---- tests ---------------------------------------------------------------------------------------
def assert_on_page(page, path: str, title: str) -> None:
    """The app (not a lone page script) drew ``title``: its nav link is current, the sidebar chose the dataset, no error."""
    assert current_page_title(page) == title, path
    assert page.get_by_test_id("stSidebar").get_by_role("combobox", name="Dataset", exact=True).input_value() == DATASET, path
    assert exceptions(page) == [], path
    assert heading(page).startswith(title), path


def test_a_deep_link_as_the_first_request_of_a_fresh_server_opens_its_page_inside_the_app(page, e2e_workspace, tmp_path):
    process, url = start_server(e2e_workspace, tmp_path / "streamlit.log")
    try:
        # any page that reads current_selection() will do; this one needs no engine, so the check stays quick
        open_app(page, f"{url}/build_benchmark?dataset={DATASET}")
        assert_on_page(page, "build_benchmark", "Build a benchmark")
        assert re.search(rf"/build_benchmark\?dataset={DATASET}", page.url)
    finally:
        stop_server(process)


@pytest.mark.parametrize("path,title", PAGES, ids=[path or "leaderboard" for path, _ in PAGES])
def test_a_deep_link_opens_its_page_with_the_sidebar(page, app_server, path, title):
    open_app(page, f"{app_server.url}/{path}?dataset={DATASET}")
    assert_on_page(page, path, title)
    assert re.search(rf"/{path}\?dataset={DATASET}", page.url)


def test_leaderboard_typed_as_a_path_opens_the_leaderboard_not_page_not_found(page, app_server, artifacts):
    """/leaderboard (the page's own name) was "Page not found": Streamlit serves the default page at / only."""
    open_app(page, f"{app_server.url}/leaderboard?dataset={DATASET}")
    screenshot(page, artifacts / "leaderboard-by-path.png")
    assert_on_page(page, "leaderboard", "Leaderboard")
    assert "Page not found" not in page.locator("body").inner_text()
    assert re.search(rf"/\?dataset={DATASET}", page.url), page.url


def test_the_leaderboard_evaluates_the_default_profiles_and_shows_cores_means_with_a_chart(page, app_server, e2e_engine,
                                                                                           artifacts):
    open_app(page, f"{app_server.url}/?dataset={DATASET}")
    assert current_page_title(page) == "Leaderboard"
    evaluate_button = page.get_by_role("button", name=f"Evaluate {len(SELECTED)} profile(s)")
    evaluate_button.click()
    page.wait_for_selector("div.js-plotly-plot .main-svg")
    wait_for_app(page)
    assert exceptions(page) == []

    rows = {row["run"]: row for row in grid(dataframe_with_column(page, "ms/query"))}
    assert list(rows) == list(SELECTED)
    qrels = e2e_engine.dataset.qrels
    for name in SELECTED:
        means = evaluate(qrels, e2e_engine.run(name), DEFAULT_METRICS).mean()
        for metric in DEFAULT_METRICS:
            assert float(rows[name][parse_metric(metric).label()]) == pytest.approx(means[metric], abs=1e-9), (name, metric)
    assert page.locator("div.js-plotly-plot g.trace.bars").count() == len(SELECTED)  # one bar series per run
    screenshot(page, artifacts / "leaderboard-evaluated.png")


def _profile_result(page, name: str) -> list[dict[str, str]]:
    column = page.locator('[data-testid="stColumn"]').filter(has=page.get_by_role("heading", name=name, exact=True))
    return grid(column.locator('[data-testid="stDataFrame"]'))


def test_a_pasted_code_query_shows_each_profiles_top_docstring_as_core_ranks_it(page, app_server, e2e_engine, artifacts):
    open_app(page, f"{app_server.url}/?dataset={DATASET}")
    go_to(page, "Query explorer")
    page.get_by_label("Code query").fill(CODE_QUERY)
    page.get_by_role("button", name="Search").click()
    page.wait_for_function(f"() => document.querySelectorAll('[data-testid=stColumn] [data-testid=stDataFrame]').length"
                           f" >= {len(SELECTED)}")
    wait_for_app(page)
    assert exceptions(page) == []
    dataset = e2e_engine.dataset
    for name in SELECTED:
        expected = e2e_engine.search(name, CODE_QUERY, depth=100).ranking.doc_ids[:3]
        shown = _profile_result(page, name)
        assert [row["#"] for row in shown[:3]] == ["1", "2", "3"], name
        assert normalize(shown[0]["document"]) == normalize(dataset.document(expected[0]).full_text), name
        # ranks 2-3 may swap on float noise between two processes; the set must hold
        assert {normalize(row["document"]) for row in shown[:3]} == \
            {normalize(dataset.document(doc_id).full_text) for doc_id in expected}, name
    screenshot(page, artifacts / "explorer-results.png")


def test_markup_in_a_pasted_query_is_shown_as_text_and_never_runs(page, app_server, artifacts):
    query = f"def render(page):\n    return page.html  # {XSS}"
    open_app(page, f"{app_server.url}/explorer?dataset={DATASET}&profiles=bm25-code")
    page.get_by_label("Code query").fill(query)
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector('[data-testid="stColumn"] [data-testid="stDataFrame"]')
    wait_for_app(page)
    for expander in page.get_by_text("Full text, shared identifiers highlighted").all():
        expander.click()
    wait_for_app(page)
    assert exceptions(page) == []
    assert page.evaluate("() => typeof window.__xss") == "undefined"
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator("script", has_text="__xss").count() == 0
    assert page.get_by_label("Code query").input_value() == query
    screenshot(page, artifacts / "explorer-markup.png")


def test_failure_cases_lists_the_queries_core_finds_failing(page, app_server, e2e_engine, artifacts):
    open_app(page, f"{app_server.url}/?dataset={DATASET}")
    go_to(page, "Failure cases")
    k_input = page.get_by_label("k", exact=True)
    k_input.fill("1")
    k_input.press("Enter")
    # "k=1" alone also matches the "k=10" label drawn before the rerun: wait for the label that ends in k=1
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMetricLabel]')]"
                           ".some(e => e.innerText.trim().endsWith('at k=1'))")
    wait_for_app(page)
    assert exceptions(page) == []

    profile = SELECTED[0]  # the page opens the first selected profile
    failures = find_failures(e2e_engine.dataset, e2e_engine.run(profile), 1)
    assert failures, "bm25-code misses rank 1 somewhere on csn-mini (MRR@10 < 1), so the list cannot be empty"
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.get_by_test_id("stMetricLabel").filter(has_text=re.compile(r"at k=1\s*$")))
    assert metric.locator('[data-testid="stMetricValue"]').inner_text() == \
        f"{len(failures)} of {len(e2e_engine.dataset.judged_queries)}"
    shown = [row["query_id"] for row in grid(dataframe_with_column(page, "query_id"))]
    assert shown and shown == [f.query_id for f in failures][:len(shown)]
    assert page.get_by_role("heading", name=f"Query {failures[0].query_id}").is_visible()
    screenshot(page, artifacts / "failures-list.png")


def test_every_page_in_the_navigation_opens_without_an_error(page, app_server, artifacts):
    open_app(page, f"{app_server.url}/?dataset={DATASET}")
    links = page.locator('[data-testid="stSidebarNavLink"]')
    assert [text.split("\n")[-1].strip() for text in links.all_inner_texts()] == [title for _, title in PAGES]
    for path, title in PAGES:
        go_to(page, title)
        screenshot(page, artifacts / f"{path or 'leaderboard'}.png")
        assert exceptions(page) == [], title
        assert re.search(rf"/{path}\?", page.url), (title, page.url)
        assert heading(page).startswith(title), title


def test_training_on_the_fine_tune_page_shows_steps_loss_what_was_trained_and_the_leakage_counts(page, chromium_path, tmp_path,
                                                                                                   mini_data_dir, artifacts):
    """Issue 16.8: the steps, the loss and what was trained are on the page, and the leakage lines stay after the end.

    A server of its own: training adds a profile, which must not reach the other tests' workspace.
    """
    from core.training.finetune import read_finetune_info
    from core.workspace import Workspace

    workspace = Workspace.open(tmp_path / "ws", mini_data_dir)
    process, url = start_server(workspace, tmp_path / "streamlit.log")
    try:
        open_app(page, f"{url}/finetune?dataset={DATASET}")
        page.get_by_label("Model name", exact=True).fill("browser-ft")
        page.get_by_label("Examples", exact=True).fill("32")
        page.get_by_label("Hard negatives per example", exact=True).fill("1")
        page.get_by_label("Batch size", exact=True).fill("8")
        page.get_by_role("button", name="Train", exact=True).click()
        # The intro says "trained on" too: wait for the alert that reports the finished run.
        page.get_by_test_id("stAlert").filter(has_text=re.compile(r"Trained on \d+ of 32 examples")).wait_for(timeout=1_500_000)
        wait_for_app(page)
        leakage = dataframe_with_column(page, "cosqa-mini")  # one column per eval set, one row per kind of overlap
        leakage.first.wait_for(timeout=120_000)  # the data grids draw after the script has finished
        screenshot(page, artifacts / "finetune-trained.png")

        info = read_finetune_info(workspace.models_dir / "browser-ft")
        assert len(info["data"]["sources"]) == 4  # the page's default packages
        main = normalize(page.get_by_test_id("stMain").inner_text())
        assert f"Trained on {info['examples_trained']} of 32 examples in {info['steps']} step" in main
        assert f"Step {info['steps']} / {info['steps']} · loss {info['loss_last']:.3f}" in main  # the box stayed open
        assert "Mined " in main and "hard negatives" in main
        assert leakage.count() == 1 and leakage.is_visible()
        assert exceptions(page) == []
    finally:
        stop_server(process)


def test_choosing_the_code_v2_recipe_fills_the_fine_tune_form_with_its_settings(page, app_server, artifacts):
    """The recipe selector sits outside the form, so choosing one reruns the page and fills the fields."""
    open_app(page, f"{app_server.url}/finetune?dataset={DATASET}")
    assert page.get_by_label("Batch size", exact=True).input_value() == "32"
    page.get_by_role("combobox", name="Recipe", exact=True).click()
    page.get_by_role("option", name="code-v2", exact=True).click()
    wait_for_app(page)
    page.wait_for_function("() => [...document.querySelectorAll('input')].some(i => i.value === '256')", timeout=60_000)
    assert page.get_by_label("Batch size", exact=True).input_value() == "256"
    assert page.get_by_label("Examples", exact=True).input_value() == "40000"
    assert page.get_by_label("Base model's weight (WiSE-FT)", exact=True).input_value() == "0.45"
    screenshot(page, artifacts / "finetune-code-v2.png")
    assert exceptions(page) == []
