"""One dataset, any size: above a threshold a dataset opens from its corpus store and every result stays the same.

The whole-read path (``load_dataset``) is the reference: a stored dataset must give the same rows, ids, hash,
judgments, runs and metrics, while holding only its ids, queries and judgments in memory.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.data.catalog import STORED_MIN_DOCS_ENV, open_dataset, opens_stored
from core.data.corpus_store import StoredDocuments
from core.data.distractors import DISTRACTOR_PREFIX, grow_corpus, synthetic_texts
from core.errors import DatasetError
from core.evaluation.metrics import evaluate
from core.retrieval.engine import Engine
from core.retrieval.profiles import default_profiles
from core.workspace import PROJECT_ROOT, Workspace
from tests.conftest import SHARED, require_shared

GROWN_DOCUMENTS = 30_000  # "tens of thousands": the large-corpus path at a size CI affords


@pytest.fixture(scope="module")
def grown_workspace(tmp_path_factory) -> Workspace:
    """csn-python-code2doc (200 real queries, 6,037 real documents) grown to 30,000 documents with distractors."""
    require_shared()
    workspace = Workspace.open(tmp_path_factory.mktemp("grown"), SHARED)
    source = open_dataset(workspace, "csn-python-code2doc", stored=False)
    grow_corpus(source, workspace.datasets_dir / "csn-grown", GROWN_DOCUMENTS)
    return workspace


def test_a_stored_dataset_has_the_rows_ids_hash_and_judgments_of_the_whole_read(workspace):
    whole = open_dataset(workspace, "csn-mini", stored=False)
    stored = open_dataset(workspace, "csn-mini", stored=True)
    assert stored.is_stored and not whole.is_stored
    assert isinstance(stored.documents, StoredDocuments)
    assert stored.corpus_hash == whole.corpus_hash and stored.queries_hash == whole.queries_hash
    assert stored.doc_ids == whole.doc_ids and stored.doc_index == whole.doc_index
    assert stored.qrels == whole.qrels and stored.queries == whole.queries
    assert len(stored.documents) == len(whole.documents)
    assert list(stored.documents) == list(whole.documents)  # streamed in row order
    assert stored.documents[0] == whole.documents[0] and stored.documents[-1] == whole.documents[-1]
    assert list(stored.documents[5:9]) == list(whole.documents[5:9])
    some = [whole.documents[row].id for row in (17, 3, 250)]
    assert stored.documents_for([*some, "no-such-id"]) == whole.documents_for(some)
    assert stored.languages == whole.languages
    assert stored.document_languages() == whole.document_languages()


def test_the_threshold_decides_and_the_environment_moves_it(workspace, monkeypatch):
    folder = Path(open_dataset(workspace, "csn-mini", stored=False).source)
    monkeypatch.delenv(STORED_MIN_DOCS_ENV, raising=False)
    assert not opens_stored(folder)  # 400 documents, default threshold 200k
    monkeypatch.setenv(STORED_MIN_DOCS_ENV, "300")
    assert opens_stored(folder) and open_dataset(workspace, "csn-mini").is_stored
    monkeypatch.setenv(STORED_MIN_DOCS_ENV, "401")
    assert not open_dataset(workspace, "csn-mini").is_stored
    monkeypatch.setenv(STORED_MIN_DOCS_ENV, "lots")
    with pytest.raises(DatasetError, match=STORED_MIN_DOCS_ENV):
        open_dataset(workspace, "csn-mini")


def test_bm25_and_dense_runs_on_a_stored_dataset_equal_the_whole_read_to_the_bit(session_workspace, csn_engine):
    whole = csn_engine  # the session's warm engine over the whole read of csn-mini
    stored = Engine(session_workspace, open_dataset(session_workspace, "csn-mini", stored=True), default_profiles())
    for profile in ("bm25-code", "dense-minilm", "hybrid-rrf", "rerank-fusion"):
        expected, got = whole.run(profile), stored.run(profile)
        assert got.rankings == expected.rankings, profile
        assert evaluate(stored.dataset.qrels, got, ["ndcg@10"]).mean()["ndcg@10"] == \
            evaluate(whole.dataset.qrels, expected, ["ndcg@10"]).mean()["ndcg@10"]
    assert all(report.reused for report in stored.reports)  # one index per corpus hash, whichever way it was opened


def test_stored_documents_keep_a_bounded_cache_not_the_corpus(workspace):
    stored = open_dataset(workspace, "csn-mini", stored=True)
    documents = StoredDocuments(stored.documents.store, cache_rows=16)
    for row in range(0, 400, 3):
        assert documents[row].id == stored.doc_ids[row]
    assert len(documents._cache) == 16


def test_grown_corpus_keeps_queries_and_judgments_and_adds_unjudged_distractors(grown_workspace):
    grown = open_dataset(grown_workspace, "csn-grown", stored=True)
    source = open_dataset(grown_workspace, "csn-python-code2doc", stored=False)
    assert len(grown.documents) == GROWN_DOCUMENTS
    assert grown.qrels == source.qrels and grown.queries == source.queries
    assert grown.doc_ids[: len(source.documents)] == source.doc_ids
    synthetic = grown.doc_ids[len(source.documents):]
    assert all(doc_id.startswith(DISTRACTOR_PREFIX) for doc_id in synthetic)
    assert len(set(grown.doc_ids)) == GROWN_DOCUMENTS
    texts = [d.full_text for d in grown.documents[len(source.documents): len(source.documents) + 50]]
    assert len(set(texts)) == 50 and not set(texts) & {d.full_text for d in source.documents}
    meta = json.loads((grown_workspace.datasets_dir / "csn-grown" / "meta.json").read_text())
    assert meta["synthetic_documents"] == GROWN_DOCUMENTS - len(source.documents)
    with pytest.raises(DatasetError, match="already exists"):
        grow_corpus(source, grown_workspace.datasets_dir / "csn-grown", GROWN_DOCUMENTS)
    with pytest.raises(DatasetError, match="between"):
        grow_corpus(source, grown_workspace.datasets_dir / "too-small", 10)
    assert not (grown_workspace.datasets_dir / "too-small").exists()


def test_synthetic_texts_are_seeded_and_start_with_the_real_ones():
    base = ["Read a file.", "Write the lines to disk."]
    first, second = list(synthetic_texts(base, 9, seed=3)), list(synthetic_texts(base, 9, seed=3))
    assert first == second and first[:2] == base and len(set(first)) == 9


def test_evaluate_on_tens_of_thousands_opens_the_store_and_scores_as_the_whole_read(grown_workspace, tmp_path):
    """The CLI end to end at 30,000 documents: stored by size, every BM25 setting, the same numbers as a whole read."""
    env = {"CODEIR_WORKSPACE": str(grown_workspace.root), "CODEIR_DATA_DIR": str(SHARED), "HF_HUB_OFFLINE": "1",
           "PATH": "/usr/bin:/bin", STORED_MIN_DOCS_ENV: "20000", "HOME": str(tmp_path)}

    def evaluate_cli(extra_env: dict) -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-m", "core", "evaluate", "--dataset", "csn-grown", "--profiles",
                               "bm25-code,bm25-plain", "--quiet"], cwd=PROJECT_ROOT, env={**env, **extra_env},
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr

    out, err = evaluate_cli({})
    assert "opened from its corpus store (30,000 documents" in err
    table = {line.split()[0]: [float(cell) for cell in line.split()[1:5]] for line in out.splitlines() if line.startswith("bm25-")}
    whole = Engine(grown_workspace, open_dataset(grown_workspace, "csn-grown", stored=False), default_profiles())
    for profile in ("bm25-code", "bm25-plain"):
        metrics = ["ndcg@10", "hit@10", "recall@100", "mrr@10"]
        means = evaluate(whole.dataset.qrels, whole.run(profile), metrics).mean()
        assert table[profile] == pytest.approx([round(float(means[m]), 4) for m in metrics], abs=5e-5), profile


def test_asking_for_more_rows_than_the_cache_holds_returns_every_one_in_order(workspace):
    stored = open_dataset(workspace, "csn-mini", stored=True)
    documents = StoredDocuments(stored.documents.store, cache_rows=16)
    first = documents.take(range(10))  # cached; the next call reads 390 more, evicting these while it answers
    assert [d.id for d in documents.take(range(400))] == stored.doc_ids
    assert [d.id for d in first] == stored.doc_ids[:10] and len(documents._cache) == 16
