"""An imported BEIR zip and an imported TREC run on it, in a real Chromium: complementarity, slice finder, embedding map."""
from __future__ import annotations

import re
import zipfile

import pytest
pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")

from core.data.archives import import_zip
from core.data.catalog import open_dataset
from core.data.datasets import write_dataset
from core.evaluation.manifest import import_trec_run
from tests.conftest import slice_dataset
from tests.e2e.test_browser import exceptions, heading, open_app, screenshot, wait_for_app

pytestmark = pytest.mark.e2e
NAME = "zipped-mini"


@pytest.fixture(scope="module")
def zipped(app_server, csn_mini, tmp_path_factory):
    """A 12-query slice written as a BEIR zip, imported into the server's workspace, plus a hand-made TREC run on it.

    The run puts the positive first for every other query and leaves it out for the rest, so it solves exactly half.
    """
    folder = tmp_path_factory.mktemp("zip-src") / NAME
    write_dataset(slice_dataset(csn_mini, 12, 80, seed=11, name=NAME), folder)
    archive = folder.parent / f"{NAME}.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in folder.rglob("*"):
            out.write(path, path.relative_to(folder.parent))
    import_zip(archive, app_server.workspace.datasets_dir)
    dataset = open_dataset(app_server.workspace, NAME)
    others = [d.id for d in dataset.documents]
    lines = []
    for index, query in enumerate(dataset.judged_queries):
        positives = set(dataset.qrels.positives(query.id))
        ranked = ([*dataset.qrels.positives(query.id)] if index % 2 == 0 else []) + [d for d in others if d not in positives][:9]
        lines += [f"{query.id} Q0 {doc} {rank} {10 - rank} half" for rank, doc in enumerate(ranked, start=1)]
    trec = folder.parent / "half.trec"
    trec.write_text("\n".join(lines) + "\n")
    run = import_trec_run(app_server.workspace, trec, dataset)
    return dataset, run


def test_complementarity_slices_and_map_on_an_imported_zip_with_an_imported_run(page, app_server, zipped, artifacts):
    dataset, run = zipped
    query = f"dataset={NAME}&profiles=bm25-code,dense-minilm&runs={run.run_id}"
    open_app(page, f"{app_server.url}/complementarity?{query}")
    assert heading(page) == "Complementarity" and exceptions(page) == []
    solved_half = (len(dataset.judged_queries) + 1) // 2
    labels = page.locator('[data-testid="stMetric"]')
    assert labels.filter(has_text=re.compile(rf"{re.escape(run.run_id)}\] only")).count() == 1
    values = labels.locator('[data-testid="stMetricValue"]')
    assert all(values.nth(i).inner_text().endswith(f"/ {len(dataset.judged_queries)}") for i in range(5))  # 2 profiles + the run, all, none
    screenshot(page, artifacts / "imported-zip-complementarity.png")

    open_app(page, f"{app_server.url}/slices?{query}")
    assert heading(page) == "Slice finder" and exceptions(page) == []
    page.get_by_role("combobox", name="Run", exact=True).click()
    page.get_by_role("option").filter(has_text=run.run_id).first.click()
    page.wait_for_timeout(500)
    wait_for_app(page)
    assert exceptions(page) == []
    mean = solved_half / len(dataset.judged_queries)  # nDCG@10 is 1 on the solved half (positive first), 0 elsewhere
    assert page.get_by_text(re.compile(rf"of .*{re.escape(run.run_id)}.*: {mean:.4f}")).count() >= 1
    screenshot(page, artifacts / "imported-zip-slices.png")

    open_app(page, f"{app_server.url}/embedding_map?{query}")
    assert heading(page) == "Embedding map" and exceptions(page) == []
    page.wait_for_selector("div.js-plotly-plot")
    assert page.get_by_text(re.compile(rf"colours from .*{re.escape(run.run_id)}")).count() >= 1
    screenshot(page, artifacts / "imported-zip-embedding-map.png")
