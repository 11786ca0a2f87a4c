"""Take the README screenshots: the query explorer and the leaderboard, in a real headless Chromium.

Runs ``streamlit run app.py`` against an existing workspace (its indexes and saved runs are used as
they are) and writes ``docs/screenshots/explorer.png`` and ``docs/screenshots/leaderboard.png``::

    python scripts/screenshots.py                      # ./workspace and ../shared/datasets
    python scripts/screenshots.py --workspace W --data-dir D --out docs/screenshots

Needs Debian's Chromium at /usr/bin/chromium and the playwright package (never ``playwright install``).
The explorer shot pastes a real CodeSearchNet function with its docstring cut out (from
csn-python-code2doc-nodoc) and searches the csn-python-code2doc docstrings with three profiles.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
EXPLORER_PROFILES = ("bm25-code", "dense-minilm", "hybrid-rrf")
LEADERBOARD_PROFILES = ("bm25-code", "dense-minilm", "hybrid-rrf", "rerank-fusion")


def wait_for_app(page, settle_ms: int = 400) -> None:
    """Wait until the script run has finished and nothing on the page is stale."""
    for _ in range(2):
        page.wait_for_timeout(settle_ms)
        page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
                               '[data-test-script-state="notRunning"]')
        page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')")


def check_no_errors(page, what: str) -> None:
    boxes = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    if boxes.count():
        raise SystemExit(f"{what} shows an error: {boxes.first.inner_text()}")


def shoot_to(page, bottom_selector: str, path: Path, margin: int = 16) -> None:
    """Screenshot the page from the top down to the bottom of the last visible element matching ``bottom_selector``
    (charts in a tab not shown have no box)."""
    box = page.locator(bottom_selector).locator("visible=true").last.bounding_box()
    height = int(box["y"] + box["height"] + margin)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(height, VIEWPORT["height"])})
    page.wait_for_timeout(800)  # charts and grids redraw for the new size
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height})
    page.set_viewport_size(VIEWPORT)


def leaderboard(page, url: str, dataset: str, path: Path) -> None:
    """The leaderboard with its bar chart; profiles without a saved run are evaluated first (as a user would)."""
    page.goto(f"{url}/?dataset={dataset}&profiles={','.join(LEADERBOARD_PROFILES)}", wait_until="domcontentloaded")
    wait_for_app(page)
    page.get_by_text("Run status:").wait_for()
    evaluate = page.get_by_role("button", name=re.compile(r"^Evaluate \d+ profile"))  # shown only when a run is missing
    if evaluate.count():
        print(f"evaluating the profiles without a saved run on {dataset}…", flush=True)
        evaluate.click()
    page.wait_for_selector("div.js-plotly-plot .main-svg")
    wait_for_app(page)
    check_no_errors(page, "the leaderboard")
    shoot_to(page, '[data-testid="stPlotlyChart"]', path)


def explorer(page, url: str, dataset: str, query: str, path: Path) -> None:
    """The explorer with ``query`` pasted and each profile's ranking side by side."""
    page.goto(f"{url}/explorer?dataset={dataset}&profiles={','.join(EXPLORER_PROFILES)}", wait_until="domcontentloaded")
    wait_for_app(page)
    page.get_by_test_id("stSidebar").hover()  # the collapse button shows on hover; collapsing leaves room for three rankings
    page.locator('[data-testid="stSidebarCollapseButton"] button').click()
    page.get_by_label("Code query").fill(query)
    page.get_by_role("button", name="Search").click()
    page.wait_for_function("n => document.querySelectorAll('[data-testid=stColumn] [data-testid=stDataFrame]').length >= n",
                           arg=len(EXPLORER_PROFILES))
    wait_for_app(page)
    check_no_errors(page, "the query explorer")
    shoot_to(page, '[data-testid="stColumn"] [data-testid="stExpander"]', path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / "workspace")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--leaderboard-dataset", default="cosqa")
    parser.add_argument("--explorer-dataset", default="csn-python-code2doc")
    parser.add_argument("--query-dataset", default="csn-python-code2doc-nodoc", help="where the pasted query comes from")
    parser.add_argument("--query-id", default="q2045", help="a short function that BM25 ranks lower than the dense profiles")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from core.data.datasets import load_dataset
    from ui.server import ServerStartError, start_server, stop_server
    from playwright.sync_api import sync_playwright

    query = load_dataset(args.data_dir / args.query_dataset).query(args.query_id).text
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        try:
            process, url = start_server(args.workspace.resolve(), args.data_dir.resolve(), Path(folder) / "streamlit.log")
        except ServerStartError as exc:
            raise SystemExit(str(exc)) from exc
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(300_000)  # the first search loads the model; a missing run is evaluated
                explorer(page, url, args.explorer_dataset, query, args.out / "explorer.png")
                leaderboard(page, url, args.leaderboard_dataset, args.out / "leaderboard.png")
                browser.close()
        finally:
            stop_server(process)
    for name in ("explorer.png", "leaderboard.png"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
