"""BM25 over a corpus too large to load: the corpus store and a streamed Tantivy build, hits read back by row.

Nothing here holds the corpus: the store is written and the index built one batch at a time, and a search
reads only its hits' rows from the store. The loaded-dataset path (``Engine``) stays the one for evaluation;
both name the index by the same corpus hash, so they share it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from core.data.corpus_store import CorpusStore, StoreReport, open_corpus_store
from core.data.datasets import Document, OnProblem
from core.index.lexical import BuildReport, LexicalIndex, open_lexical_index
from core.progress import ItemProgress
from core.retrieval.query_text import clean_query_text
from core.retrieval.runs import reverse_key
from core.workspace import Workspace, folder_bytes


@dataclass(frozen=True)
class StoredCorpus:
    """A corpus store with its BM25 index, opened together, and what opening them cost."""

    store: CorpusStore
    index: LexicalIndex
    reports: tuple[StoreReport | BuildReport, ...]


@dataclass(frozen=True)
class StoredHit:
    """One ranked document, read by row from the store."""

    rank: int
    score: float
    document: Document


@dataclass(frozen=True)
class StoredResult:
    hits: tuple[StoredHit, ...]
    seconds: float  # search and reading the hits' rows
    truncated: bool = False


@dataclass(frozen=True)
class StoredFacts:
    """What a user is told about an opened stored corpus: how big it is on disk and whether this opening built anything."""

    documents: int
    skipped: int  # corpus lines refused when the store was written
    store_bytes: int
    index_bytes: int
    store_folder: Path
    reused: bool  # the store and the index were both reused as they were on disk


def stage_names(analyzer: str) -> dict[str, str]:
    """The name shown for each phase ``open_stored_corpus`` reports, so the CLI's bars and the page's bar say the same."""
    return {"store": "corpus store: parsing and writing", "tokenize": f"BM25 index ({analyzer}): tokenizing",
            "commit": f"BM25 index ({analyzer}): writing"}


def open_stored_corpus(workspace: Workspace, name: str, dataset_folder: str | os.PathLike, analyzer: str = "code",
                       rebuild: bool = False, on_problem: OnProblem = "skip",
                       progress: ItemProgress | None = None) -> StoredCorpus:
    """Store the dataset's corpus (or reuse the store) and build its BM25 index from the store by streaming (or reuse it).

    ``rebuild`` rewrites both. A damaged or stale store or index is rebuilt, never served.
    """
    store, store_report = open_corpus_store(workspace, name, dataset_folder, rebuild, on_problem, progress)
    index, index_report = open_lexical_index(workspace, store, analyzer, rebuild=rebuild, progress=progress)
    return StoredCorpus(store, index, (store_report, index_report))


def stored_facts(corpus: StoredCorpus) -> StoredFacts:
    """Rows, skipped lines and bytes on disk of the store and its index (file sizes, nothing read)."""
    return StoredFacts(corpus.store.num_docs, int(corpus.store.stamp.get("problem_count", 0)), folder_bytes(corpus.store.folder),
                       folder_bytes(corpus.index.path), corpus.store.folder, all(report.reused for report in corpus.reports))


def search_stored(corpus: StoredCorpus, text: str, k: int = 10) -> StoredResult:
    """The top-k documents for a query at Tantivy's BM25, best first (ties by document id descending, as trec_eval)."""
    cleaned, truncated = clean_query_text(text)
    started = time.perf_counter()
    hits = corpus.index.search(cleaned, k)
    documents = corpus.store.take(hits.rows.tolist())
    ranked = sorted(zip(hits.scores.tolist(), documents), key=lambda hit: (-hit[0], reverse_key(hit[1].id)))
    found = tuple(StoredHit(rank, score, document) for rank, (score, document) in enumerate(ranked, start=1))
    return StoredResult(found, time.perf_counter() - started, truncated)

