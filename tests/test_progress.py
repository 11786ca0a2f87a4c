"""Progress: every stage of a first run is named and counts n / N items; the CLI bar counts documents, not percent."""
from __future__ import annotations

import re

import pytest

from core.data.datasets import Dataset
from core.progress import Step, format_seconds, notify, tqdm_progress
from core.retrieval.engine import Engine
from core.retrieval.profiles import default_profiles
from core.workspace import Workspace


def test_a_step_reports_its_count_and_an_eta_from_the_rate_so_far():
    step = Step("embedding corpus (minilm)", 25, 100, "documents", seconds=5.0)
    assert step.fraction == 0.25
    assert step.eta_seconds == pytest.approx(15.0)  # 5 s for 25 documents, 75 to go
    assert step.describe() == "embedding corpus (minilm): 25 / 100 documents · ETA 0:15"
    assert Step("x", 0, 100).eta_seconds is None and Step("x", 100, 100, seconds=3).eta_seconds is None
    assert Step("x", 1_200, 5_000).describe() == "x: 1,200 / 5,000 documents"
    assert [format_seconds(s) for s in (42, 725, 3723)] == ["0:42", "12:05", "1:02:03"]


def test_an_older_stage_and_fraction_callback_still_receives_stage_and_fraction():
    seen = []
    notify(lambda stage, fraction: seen.append((stage, fraction)), Step("BM25 index (code)", 3, 4))
    received = []
    notify(received.append, Step("BM25 index (code)", 3, 4))
    assert seen == [("BM25 index (code)", 0.75)]
    assert received == [Step("BM25 index (code)", 3, 4)]


def _small(dataset: Dataset, n_documents: int) -> Dataset:
    documents = dataset.documents[:n_documents]
    keep = {d.id for d in documents}
    queries = tuple(q for q in dataset.queries if set(dataset.qrels.positives(q.id)) & keep)[:5]
    return Dataset(f"{dataset.name}-progress", documents, queries, dataset.qrels, dataset.split)


def test_a_first_dense_run_names_every_stage_and_counts_documents_up_to_the_corpus_size(tmp_path, csn_mini):
    dataset = _small(csn_mini, 30)
    steps: list[Step] = []
    engine = Engine(Workspace.open(tmp_path / "ws"), dataset, default_profiles(), progress=steps.append)
    engine.run("dense-minilm")

    stages = list(dict.fromkeys(step.stage for step in steps))
    assert stages == ["loading model minilm", "embedding corpus (minilm)", "storing corpus vectors in LanceDB (minilm)",
                      "embedding queries (minilm)", "storing query vectors in LanceDB (minilm)", "dense-minilm: retrieving"]
    corpus = [step for step in steps if step.stage == "embedding corpus (minilm)"]
    assert {step.total for step in corpus} == {30} and {step.unit for step in corpus} == {"documents"}
    assert [step.done for step in corpus] == sorted(step.done for step in corpus)
    assert corpus[0].done == 0 and corpus[-1].done == 30
    retrieving = [step for step in steps if step.stage == "dense-minilm: retrieving"]
    assert [(s.done, s.total, s.unit) for s in retrieving] == [(0, len(dataset.judged_queries), "queries"),
                                                               (len(dataset.judged_queries), len(dataset.judged_queries), "queries")]


def test_a_first_bm25_run_counts_tokenized_documents(tmp_path, csn_mini):
    dataset = _small(csn_mini, 120)
    steps: list[Step] = []
    Engine(Workspace.open(tmp_path / "ws"), dataset, default_profiles(), progress=steps.append).run("bm25-code")
    stages = list(dict.fromkeys(step.stage for step in steps))
    assert stages == ["BM25 index (code): tokenizing", "BM25 index (code): writing", "bm25-code: retrieving"]
    tokenizing = [step for step in steps if step.stage == "BM25 index (code): tokenizing"]
    assert tokenizing[-1].done == tokenizing[-1].total == 120


def test_the_cli_bar_counts_documents_and_never_shows_a_percent_rate(capsys):
    report = tqdm_progress()
    for done in (0, 64, 128, 200):
        report(Step("embedding corpus (minilm)", done, 200, "documents", seconds=done / 100))
    err = capsys.readouterr().err
    assert "200/200" in err
    assert "%/s" not in err
    assert re.search(r"documents/s", err)
