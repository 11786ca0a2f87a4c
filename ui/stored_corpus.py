"""The Datasets page's stored corpus: opened with a progress bar, held for the session, its hits as table rows.

Nothing here loads the dataset: storing reads corpus.jsonl once, and a search or a document shown reads only its
rows from the Lance store. The opened corpus is held per session under the corpus file's size and modification
time and the store stamp's modification time, so a changed corpus file, or a store rewritten by another session
or by ``store-corpus``, is opened again rather than served stale.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data.corpus_store import STAMP_FILE, store_folder
from core.data.datasets import CORPUS_FILE
from core.progress import staged
from core.retrieval.stored_search import StoredCorpus, StoredResult, open_stored_corpus, stage_names
from core.workspace import Workspace
from ui.progress import ProgressBar

HELD_KEY = "datasets_stored_corpora"  # session state: {(workspace, dataset, analyzer): (files_key, StoredCorpus)}


def _files_key(workspace: Workspace, name: str, dataset_folder: Path) -> tuple[int, int, int] | None:
    """The corpus file's size and mtime and the store stamp's mtime; None when either is missing."""
    try:
        source = (Path(dataset_folder) / CORPUS_FILE).stat()
        stamp = (store_folder(workspace, name) / STAMP_FILE).stat()
    except OSError:
        return None
    return source.st_size, source.st_mtime_ns, stamp.st_mtime_ns


def held_corpus(workspace: Workspace, name: str, dataset_folder: Path, analyzer: str) -> StoredCorpus | None:
    """The stored corpus this session opened, if its corpus file and its store are still the ones it opened."""
    held = st.session_state.get(HELD_KEY, {}).get((str(workspace.root), name, analyzer))
    if held is None:
        return None
    files_key, corpus = held
    return corpus if files_key == _files_key(workspace, name, dataset_folder) else None


def forget_corpus(workspace: Workspace, name: str, analyzer: str) -> None:
    st.session_state.get(HELD_KEY, {}).pop((str(workspace.root), name, analyzer), None)


def open_with_progress(workspace: Workspace, name: str, dataset_folder: Path, analyzer: str, rebuild: bool) -> StoredCorpus:
    """Store the corpus and build its BM25 index (or reuse both), on a progress bar; hold the result for the session.

    Raises what ``open_stored_corpus`` raises (WorkbenchError subclasses for what the user can fix); a failed
    build leaves the store and index already on disk as they were.
    """
    bar = ProgressBar(f"Opening the stored corpus of {name}…")
    try:
        corpus = open_stored_corpus(workspace, name, dataset_folder, analyzer, rebuild=rebuild,
                                    progress=staged(bar, stage_names(analyzer)))
    finally:
        bar.clear()
    held = st.session_state.setdefault(HELD_KEY, {})
    held[(str(workspace.root), name, analyzer)] = (_files_key(workspace, name, dataset_folder), corpus)
    return corpus


def hit_rows(result: StoredResult) -> list[dict]:
    """One table row per hit: rank, score, id, language and the document's text as read from the store."""
    return [{"rank": hit.rank, "score": round(hit.score, 4), "doc id": hit.document.id, "language": hit.document.language,
             "text": hit.document.full_text} for hit in result.hits]


def mebibytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"
