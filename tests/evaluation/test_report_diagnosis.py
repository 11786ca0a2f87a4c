"""The report carries the two-run disagreements, the cost table with its quality-vs-latency chart, and each run's manifest."""
from __future__ import annotations

import html
import json
import re

import pytest

from core.evaluation.manifest import make_saved_run, manifest_json, run_manifest
from core.evaluation.metrics import evaluate
from core.evaluation.report import build_report
from core.evaluation.run_diff import query_diffs, rank_queries

METRICS = ("ndcg@10", "mrr@10")


@pytest.fixture(scope="module")
def report(csn_engine, tmp_path_factory):
    runs = [make_saved_run(csn_engine, name, metrics=METRICS, save=False) for name in ("bm25-code", "dense-minilm")]
    evaluations = [evaluate(csn_engine.dataset.qrels, run, METRICS) for run in runs]
    files = build_report(csn_engine.dataset, evaluations, runs, METRICS, None, tmp_path_factory.mktemp("report"), failures_top_n=2)
    return runs, evaluations, files


def test_the_two_best_runs_disagreements_are_cores(report, csn_engine):
    runs, evaluations, files = report
    best, second = sorted(evaluations, key=lambda e: -e.mean()["ndcg@10"])
    by_name = {run.name: run for run in runs}
    expected = rank_queries(query_diffs(csn_engine.dataset, by_name[best.run_name], by_name[second.run_name]), "ndcg_gap").head(10)
    page = files.html.read_text()
    table = page.split('<table id="disagreements">')[1].split("</table>")[0]
    shown = re.findall(r"<tr><td>([^<]+)</td>", table)
    assert shown == [html.escape(q) for q in expected.index]
    markdown = files.markdown.read_text()
    assert "## Where the two best disagree" in markdown and f"A = {best.run_name}, B = {second.run_name}" in markdown


def test_cost_and_quality_latency_chart_are_in_both_reports(report):
    runs, _, files = report
    page = files.html.read_text()
    cost = page.split('<table id="cost">')[1].split("</table>")[0]
    p50 = runs[1].meta["cost"]["latency_ms_p50"]
    assert f'data-value="{p50!r}"' in cost
    assert 'alt="quality_latency"' in page
    assert any(path.name == "quality_latency.png" and path.stat().st_size > 1000 for path in files.images)
    assert "![quality_latency](images/quality_latency.png)" in files.markdown.read_text()


def test_each_runs_manifest_is_embedded_escaped(report, csn_engine):
    runs, _, files = report
    page = files.html.read_text()
    for run in runs:
        assert html.escape(manifest_json(run_manifest(run)), quote=True) in page
    markdown = files.markdown.read_text()
    block = markdown.split("### dense-minilm")[1].split("```json\n")[1].split("\n```")[0]
    assert json.loads(block)["dataset"]["corpus_hash"] == csn_engine.dataset.corpus_hash
