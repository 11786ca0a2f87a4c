"""Compare and diagnose in a real Chromium: the two-run view (markers, URL, Back), cost on the leaderboard, worst-first breakdown."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing").expect

from core.evaluation.leaderboard import breakdown_link
from core.evaluation.run_diff import query_diffs, rank_queries, side_by_side
from core.retrieval.runs import list_runs, load_run
from tests.e2e.conftest import DATASET
from tests.e2e.test_browser import exceptions, grid, heading, open_app, screenshot, wait_for_app, dataframe_with_column

pytestmark = pytest.mark.e2e
PAIR = "profiles=bm25-code,dense-minilm"


def url_params(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_two_runs_side_by_side_with_url_state_and_back(page, app_server, e2e_engine, artifacts):
    run_a, run_b = e2e_engine.run("bm25-code"), e2e_engine.run("dense-minilm")
    ranked = rank_queries(query_diffs(e2e_engine.dataset, run_a, run_b), "ndcg_gap")
    first, second = ranked.index[0], ranked.index[1]
    open_app(page, f"{app_server.url}/compare_runs?dataset={DATASET}&{PAIR}&a=bm25-code&b=dense-minilm&qid={first}")
    assert heading(page) == "Compare two runs" and exceptions(page) == []

    left, right = side_by_side(run_a, run_b, e2e_engine.dataset.qrels, first)
    main = page.locator('[data-testid="stMain"]')
    headers = main.locator('[data-testid="stMarkdownContainer"]')
    expect(headers.filter(has_text=re.compile(rf"^1 · {re.escape(left[0].doc_id)}\b")).first).to_be_visible()
    for doc in [*left, *right]:  # each list's header line: rank · id [positive] · marker, as core computed them
        line = headers.filter(has_text=re.compile(rf"^{doc.rank} · {re.escape(doc.doc_id)}\b"))
        assert line.filter(has_text=doc.marker).count() >= 1, doc
    assert main.get_by_text(re.compile(r"^positive · grade")).count() == sum(d.relevant for d in [*left, *right])
    screenshot(page, artifacts / "compare-runs.png")

    page.get_by_role("combobox", name="Query", exact=True).click()
    page.get_by_role("option").filter(has_text=re.compile(rf"^{re.escape(second)} ·")).first.click()
    wait_for_app(page)
    assert url_params(page)["qid"] == second
    page.go_back()
    wait_for_app(page)
    assert url_params(page)["qid"] == first
    expect(page.get_by_role("combobox", name="Query", exact=True)).to_have_value(re.compile(rf"^{re.escape(first)} ·"),
                                                                                timeout=30_000)  # the rerun Back causes
    wait_for_app(page)
    assert exceptions(page) == []


def test_cost_columns_latency_chart_and_the_breakdown_worst_first(page, app_server, artifacts):
    open_app(page, f"{app_server.url}/?dataset={DATASET}&{PAIR}")
    button = page.get_by_role("button", name=re.compile(r"^Evaluate"))
    if button.count() and button.is_enabled():  # no button once every run is saved (another test evaluated them)
        button.click()
        wait_for_app(page)
    assert exceptions(page) == []
    page.get_by_text("Cost columns", exact=True).click()
    wait_for_app(page)
    rows = {row["run"]: row for row in grid(dataframe_with_column(page, "p50 ms"))}
    saved = {s.name: load_run(app_server.workspace.runs_dir, s.run_id) for s in reversed(list_runs(app_server.workspace.runs_dir, DATASET))}
    for name in ("bm25-code", "dense-minilm"):
        cost = saved[name].meta["cost"]
        assert float(rows[name]["p50 ms"]) == pytest.approx(cost["latency_ms_p50"], abs=0.051)
        assert float(rows[name]["index MB"]) == pytest.approx(cost["index_bytes"] / 2**20, abs=0.051)
    page.get_by_role("tab", name="Quality vs latency").click()
    page.wait_for_selector("div.js-plotly-plot .scatterlayer .point")
    screenshot(page, artifacts / "leaderboard-cost.png")

    # a metric cell opens the breakdown at the URL breakdown_link builds (the click itself: tests/app/test_leaderboard.py)
    link = "&".join(f"{k}={v}" for k, v in breakdown_link("dense-minilm", "ndcg@10").items())
    open_app(page, f"{app_server.url}/breakdown?dataset={DATASET}&{PAIR}&{link}")
    params = url_params(page)
    assert params["focus"] == "dense-minilm" and params["metric"] == "ndcg@10"
    assert heading(page) == "Per-query breakdown" and exceptions(page) == []
    values = [float(row["dense-minilm"]) for row in grid(page.locator('[data-testid="stDataFrame"]').first)]
    assert values == sorted(values)  # worst first
    screenshot(page, artifacts / "breakdown-worst-first.png")

    # one click on a marker of the A-vs-B scatter opens the two-run view on its query
    marker = page.locator("div.js-plotly-plot .scatterlayer path.point").first
    marker.scroll_into_view_if_needed()
    box = marker.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector('[data-testid="stSidebarNavLink"][aria-current="page"]:has-text("Compare two runs")')
    wait_for_app(page)
    assert exceptions(page) == [] and url_params(page).get("qid")
    assert url_params(page)["a"] == "dense-minilm" and url_params(page)["b"] == "bm25-code"
    screenshot(page, artifacts / "compare-runs-from-scatter.png")
