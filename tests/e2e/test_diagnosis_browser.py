"""The diagnosis pages in a real headless Chromium: complementarity, slice finder, embedding map, leaderboard intervals.

Screenshots go to ``test-artifacts/screenshots/``.
"""
from __future__ import annotations

import re

import pytest

from core.evaluation.complementarity import complementarity
from core.evaluation.metrics import evaluate
from core.evaluation.slices import query_features, slices_for
from tests.e2e.conftest import DATASET
from tests.e2e.test_browser import dataframe_with_column, exceptions, grid, open_app, screenshot, wait_for_app

pytestmark = pytest.mark.e2e
PROFILES = "bm25-code,dense-minilm"


def metric_value(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has=page.locator('[data-testid="stMetricLabel"]', has_text=label))
    return box.first.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_complementarity_counts_are_cores_and_a_count_opens_its_queries_in_the_breakdown(page, app_server, e2e_engine, artifacts):
    open_app(page, f"{app_server.url}/complementarity?dataset={DATASET}&profiles={PROFILES}")
    assert exceptions(page) == []
    page.wait_for_selector("div.js-plotly-plot .main-svg")
    members = [evaluate(e2e_engine.dataset.qrels, e2e_engine.run(n), ["hit@10"]) for n in PROFILES.split(",")]
    solved = complementarity(members, "hit@10")
    total = len(e2e_engine.dataset.judged_queries)
    for group in solved.summary():
        assert metric_value(page, group.label) == f"{group.queries} / {total}"
    screenshot(page, artifacts / "complementarity.png")

    group = next(g for g in solved.summary() if g.queries)
    page.get_by_role("link", name="open in the breakdown").first.click()
    page.wait_for_selector('[data-testid="stSidebarNavLink"][aria-current="page"]:has-text("Per-query breakdown")')
    wait_for_app(page)
    assert exceptions(page) == []
    assert "qids=" in page.url
    noun = "query" if group.queries == 1 else "queries"
    assert page.get_by_text(f"Showing only the {group.queries} {noun} named by the link").is_visible()
    screenshot(page, artifacts / "breakdown-from-complementarity.png")


def test_the_weight_sweep_is_drawn_against_the_oracle(page, app_server, artifacts):
    open_app(page, f"{app_server.url}/complementarity?dataset={DATASET}&profiles={PROFILES}")
    page.get_by_role("button", name="Run the weight sweep (11 weights)").click()
    page.wait_for_selector("text=Best weight")
    wait_for_app(page)
    assert exceptions(page) == []
    assert page.locator("div.js-plotly-plot").count() >= 2
    assert page.locator("div.js-plotly-plot").last.get_by_text(re.compile(r"^oracle \d\.\d{4}$")).count() == 1
    screenshot(page, artifacts / "complementarity-sweep.png")


def test_slice_finder_lists_cores_slices(page, app_server, e2e_engine, artifacts):
    open_app(page, f"{app_server.url}/slices?dataset={DATASET}&profiles={PROFILES}")
    assert exceptions(page) == []
    evaluation = evaluate(e2e_engine.dataset.qrels, e2e_engine.run("bm25-code"), ["ndcg@10"])
    expected = slices_for(evaluation.per_query["ndcg@10"], query_features(e2e_engine.dataset), "lower", min_size=10)
    table = dataframe_with_column(page, "p (Holm)").first
    table.locator('tbody tr[role="row"]').first.wait_for(state="attached")  # header before rows (once read as 0); the rows are hidden (a canvas draws them)
    rows = grid(table)
    assert [row["slice"] for row in rows] == list(expected["slice"])[:len(rows)] and rows
    screenshot(page, artifacts / "slices.png")


def test_embedding_map_draws_webgl_points_and_a_line_to_the_chosen_positive(page, app_server, e2e_engine, artifacts):
    open_app(page, f"{app_server.url}/embedding_map?dataset={DATASET}&profiles={PROFILES}")
    page.wait_for_selector("div.js-plotly-plot .gl-container canvas, div.js-plotly-plot canvas")
    assert exceptions(page) == []
    query = e2e_engine.dataset.judged_queries[0]
    box = page.get_by_role("combobox", name="Query")
    box.click()
    box.fill(query.id)
    page.get_by_role("option", name=query.id, exact=True).click()
    wait_for_app(page)
    assert page.locator("g.legend").get_by_text("query → positive").count() == 1
    screenshot(page, artifacts / "embedding-map.png")
    page.get_by_role("button", name="Open in the query explorer").click()
    page.wait_for_selector('[data-testid="stSidebarNavLink"][aria-current="page"]:has-text("Query explorer")')
    wait_for_app(page)
    assert f"qid={query.id}" in page.url


def test_leaderboard_shows_intervals_and_error_bars(page, app_server, artifacts):
    open_app(page, f"{app_server.url}/?dataset={DATASET}&profiles={PROFILES}")
    button = page.get_by_role("button", name=re.compile(r"^Evaluate"))
    if button.count() and button.is_enabled():  # no button once every run is saved (another test evaluated them)
        button.click()
    page.wait_for_selector("div.js-plotly-plot .main-svg")
    wait_for_app(page)
    assert exceptions(page) == []
    assert page.locator("div.js-plotly-plot path.yerror").count() > 0
    screenshot(page, artifacts / "leaderboard-intervals.png")
