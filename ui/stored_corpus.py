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
from core.errors import WorkbenchError
from core.retrieval.engine import MAX_QUERY_CHARS
from core.retrieval.stored_search import (StoredCorpus, StoredResult, open_stored_corpus, search_stored, stage_names,
                                         stored_facts)
from core.workspace import Workspace
from ui.progress import ProgressBar
from ui.render import code_language, escape_markdown

MAX_STORED_K = 1000
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


def stored_corpus_tab(workspace: Workspace, name: str, dataset_folder: Path) -> None:
    """The Datasets page's Large corpus tab: store the corpus, search it, show a document by id, never loading the dataset."""
    st.caption("For corpora too large to load: the corpus is stored once as a Lance dataset in the workspace and its "
               "BM25 index built from it by streaming, as `python -m core store-corpus` does; a search reads only its "
               "hits' rows. Only corpus.jsonl is read, never the queries or qrels. See docs/scale.md.")
    analyzer_col, rebuild_col = st.columns([1, 3])
    analyzer = analyzer_col.radio("BM25 analyzer", ["code", "plain"], horizontal=True, key="datasets_stored_analyzer")
    rebuild = rebuild_col.checkbox("Rebuild even when current", key="datasets_stored_rebuild",
                                   help="A damaged or stale store or index is rebuilt anyway.")
    corpus = held_corpus(workspace, name, dataset_folder, analyzer)
    if st.button("Store for large corpora", key="datasets_stored_open", type="primary"):
        try:
            corpus = open_with_progress(workspace, name, dataset_folder, analyzer, rebuild)
        except WorkbenchError as exc:
            st.error(escape_markdown(str(exc)) + "  \nWhat was stored or indexed before is kept as it was.")
        else:
            reports = "\n".join(f"- {escape_markdown(str(report))}" for report in corpus.reports)
            (st.warning if any(report.damage for report in corpus.reports) else st.success)(reports)
    if corpus is None:
        st.info("Not opened in this session: **Store for large corpora** stores the corpus (or reuses the store "
                "already on disk) and opens it for searching.")
    else:
        facts = stored_facts(corpus)
        cells = st.columns(4)
        cells[0].metric("Stored documents", f"{facts.documents:,}")
        cells[1].metric("Store on disk", mebibytes(facts.store_bytes))
        cells[2].metric("BM25 index on disk", mebibytes(facts.index_bytes))
        cells[3].metric("Opened", "reused" if facts.reused else "built")
        st.caption(f"Stored in {escape_markdown(str(facts.store_folder))}.")
        if facts.skipped:
            st.warning(f"{facts.skipped:,} corpus lines were skipped when the store was written; the first: "
                       + escape_markdown("; ".join(corpus.store.problems[:3])))
        query_col, k_col = st.columns([5, 1])
        query = query_col.text_area("Query", key="datasets_stored_query", placeholder="code or text")
        k = k_col.number_input("Results", min_value=1, max_value=MAX_STORED_K, value=10, key="datasets_stored_k")
        if query.strip():
            try:
                result = search_stored(corpus, query, int(k))
            except WorkbenchError as exc:
                forget_corpus(workspace, name, analyzer)
                st.error(escape_markdown(str(exc)))
            else:
                st.caption(f"{len(result.hits)} results in {result.seconds * 1000:.1f} ms (search and reading their rows)"
                           + (f"; the query was cut to its first {MAX_QUERY_CHARS:,} characters" if result.truncated else ""))
                st.dataframe(hit_rows(result), hide_index=True, width="stretch", key="datasets_stored_hits",
                             column_config={"text": st.column_config.TextColumn("text", width="large")})
        doc_id = st.text_input("Show a document by id", key="datasets_stored_doc_id", placeholder="an id from the results")
        if doc_id.strip():
            try:
                document = corpus.store.lookup([doc_id.strip()])[0]
            except WorkbenchError as exc:  # the store was deleted or replaced since it was opened
                forget_corpus(workspace, name, analyzer)
                st.error(escape_markdown(str(exc)))
            else:
                if document is None:
                    st.warning(f"The stored corpus has no document {escape_markdown(doc_id.strip())}.")
                else:
                    st.code(document.full_text, language=code_language(document.language, document.full_text),
                            wrap_lines=True)
