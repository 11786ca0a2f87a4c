"""Datasets: what each benchmark holds and its rows; bring datasets in (zip, hub, built-in) and take them out (zip).

The "Large corpus" tab never loads the dataset: it stores the corpus in Lance and searches it with BM25, reading
only the rows it shows, so it works for corpora too large to load.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from core.data.archives import export_zip, import_zip_bytes
from core.data.catalog import list_datasets, names_held_elsewhere
from core.data.datasets import Dataset, is_beir_folder
from core.errors import DatasetError, WorkbenchError
from core.data.hub import NANOCODESEARCHNET_REPO, NANOCODESEARCHNET_SUBSETS, NANOCOIR_REPO, NANOCOIR_SUBSETS, download_nano_dataset
from core.evaluation.stats import (MAX_SHOWN_DOCUMENTS, catalog_table, dataset_stats, document_rows, filter_rows, is_sampled,
                                   language_counts, length_summary, length_table, page_count, page_of, problems_table, query_rows)
from core.data.stdlib_benchmark import ensure_stdlib_benchmark
from core.index.distributed import RayOptions
from core.retrieval.scale import ENGINES, build_indexes
from core.workspace import BUILTIN_DATASET
from ui.render import escape_markdown, length_histogram
from ui.state import current_selection, get_dataset, get_engine
from ui.stored_corpus import stored_corpus_tab

FLASH_KEY = "datasets_flash"  # a success message shown after the rerun that refreshes the sidebar
PAGE_SIZES = (25, 50, 100, 200)


@st.cache_data(show_spinner=False, max_entries=16)
def _rows(kind: str, dataset_key: str, _dataset: Dataset):
    return query_rows(_dataset) if kind == "queries" else document_rows(_dataset)


@st.cache_data(show_spinner=False, max_entries=16)
def _lengths(dataset_key: str, _dataset: Dataset):
    return length_table(_dataset)


def _zip_bytes(folder: Path):
    """A callable for st.download_button: the zip is only built when the user clicks."""
    def build() -> bytes:
        with tempfile.TemporaryDirectory() as temp:
            return export_zip(folder, Path(temp) / f"{folder.name}.zip").read_bytes()

    return build


def _show_dataset_error(exc: WorkbenchError) -> None:
    """The message (escaped: archive entry names and file rows are untrusted) and each problem as a table row."""
    problems = getattr(exc, "problems", ())
    message = str(exc).split("\n  - ", 1)[0] if problems else str(exc)
    st.error(escape_markdown(message))
    if problems:
        st.dataframe(problems_table(problems), hide_index=True, width="stretch")


def _added(message: str) -> None:
    st.session_state[FLASH_KEY] = message
    st.rerun()


sel = current_selection()
if sel is None:
    st.stop()
workspace = sel.workspace
st.title("Datasets")

infos = list_datasets(workspace)
st.dataframe(catalog_table(infos), hide_index=True, width="stretch", placeholder="—",
             column_config={"built": st.column_config.CheckboxColumn("built"),
                            "path": st.column_config.TextColumn("path", width="large")})
st.caption("Counts come from each dataset's meta.json; the overview below counts the loaded rows. "
           "Pick the dataset to inspect in the sidebar.")

info = next((i for i in infos if i.name == sel.dataset_name), None)
# A keyed, stateful tab bar keeps the tab the user acted in across the rerun an action causes, so its result or
# error is drawn where they look (an unkeyed one returns to Overview and hides both).
overview_tab, browse_tab, index_tab, stored_tab, add_tab = st.tabs(
    ["Overview", "Browse rows", "Build indexes", "Large corpus", "Add a dataset"], key="datasets_tab", on_change="rerun")
dataset = None
on_disk = info is not None and is_beir_folder(info.path)
if not on_disk:
    for tab in (overview_tab, stored_tab):
        with tab:
            st.info(f"{escape_markdown(sel.dataset_name)} is not built yet: build it under **Add a dataset**.")
elif not (stored_tab.open or add_tab.open):  # neither reads the loaded dataset: a corpus of millions is not loaded for them
    try:
        data_dir = str(workspace.data_dir) if workspace.data_dir else None
        dataset = get_dataset(str(workspace.root), data_dir, sel.dataset_name)
    except WorkbenchError as exc:
        with overview_tab:
            _show_dataset_error(exc)

if dataset is not None:
    key = f"{dataset.name}:{dataset.source}:{dataset.corpus_hash}:{dataset.queries_hash}"
    with overview_tab:
        stats = dataset_stats(dataset)
        cells = st.columns(6)
        cells[0].metric("Documents", f"{stats.documents:,}")
        cells[1].metric("Queries", f"{stats.queries:,}")
        cells[2].metric("Judged queries", f"{stats.judged_queries:,}", help="queries with at least one relevant document")
        cells[3].metric("Qrels", f"{stats.qrels:,}", help=f"judgment lines in qrels/{escape_markdown(dataset.split)}.tsv")
        cells[4].metric("Grades", "graded" if stats.graded else "binary", help="graded: some judgment is not 0 or 1")
        cells[5].metric("Skipped rows", f"{stats.problems:,}")
        if dataset.problems:
            st.warning(f"{len(dataset.problems):,} rows were skipped while loading {escape_markdown(dataset.name)}:")
            st.dataframe(problems_table(dataset.problems), hide_index=True, width="stretch")

        lengths = _lengths(key, dataset)
        unit = st.radio("Length in", ["tokens", "characters"], horizontal=True, key="datasets_length_unit")
        left, right = st.columns(2)
        left.plotly_chart(length_histogram(lengths, "document", unit), width="stretch")
        right.plotly_chart(length_histogram(lengths, "query", unit), width="stretch")
        left_table, right_table = st.columns([3, 2])
        with left_table:
            st.markdown("**Lengths**")
            st.dataframe(length_summary(lengths), width="stretch",
                         column_config={kind: st.column_config.NumberColumn(kind, format="%.1f")
                                        for kind in ("document", "query")})
        with right_table:
            st.markdown("**Languages**")
            st.dataframe(language_counts(dataset), width="stretch")
        st.caption("Tokens: runs of letters, digits and underscores. A query's language is its own, when the dataset gives one.")
        if is_sampled(dataset):
            st.caption(f"Opened from its corpus store ({len(dataset.documents):,} documents, read by row): the document lengths "
                       f"are those of {MAX_SHOWN_DOCUMENTS:,} documents spread evenly over the corpus; every count is exact.")
        st.download_button(f"Download {escape_markdown(dataset.name)} as .zip", _zip_bytes(Path(info.path)), file_name=f"{dataset.name}.zip",
                           mime="application/zip", key="datasets_export", icon=":material/download:", on_click="ignore")

    with browse_tab:
        kind = st.radio("Rows", ["queries", "documents"], horizontal=True, key="datasets_browse_kind",
                        format_func=lambda k: {"queries": "Queries with their relevant document", "documents": "Documents"}[k])
        filter_col, size_col, page_col = st.columns([4, 1, 1])
        needle = filter_col.text_input("Filter: rows containing", key="datasets_filter", placeholder="text or id")
        size = size_col.selectbox("Rows per page", PAGE_SIZES, key="datasets_page_size")
        rows = filter_rows(_rows(kind, key, dataset), needle)
        pages = page_count(len(rows), size)
        # markdown-safe: the label holds a page count
        page = page_col.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1,
                                     key=f"datasets_page_{kind}_{needle}_{size}")  # a new filter starts at page 1
        shown = page_of(rows, int(page), size)
        st.dataframe(shown, hide_index=True, width="stretch", height=38 + 35 * max(len(shown), 1),
                     column_config={"query": st.column_config.TextColumn("query", width="large"),
                                    "positive": st.column_config.TextColumn("relevant document", width="large"),
                                    "text": st.column_config.TextColumn("text", width="large")})
        first = (int(page) - 1) * size + 1 if len(rows) else 0
        st.caption(f"Rows {first:,}–{first + len(shown) - 1 if len(shown) else 0:,} of {len(rows):,}"
                   + (f" matching the filter (of {len(_rows(kind, key, dataset)):,})" if needle.strip() else ""))
        if kind == "documents" and is_sampled(dataset):
            st.caption(f"The first {MAX_SHOWN_DOCUMENTS:,} of {len(dataset.documents):,} documents (the corpus is read by row); "
                       f"search all of them under **Large corpus**.")

    with index_tab:
        engine = get_engine(sel)
        st.caption("Open or build the BM25 indexes and corpus embeddings the chosen profiles need. On Ray, the corpus "
                   "streams through a pool of embedding actors (a local Ray on this machine, or a cluster's address); "
                   "the table it writes is the one this process would write. See docs/scale.md.")
        chosen = st.multiselect("Profiles", list(engine.profiles), default=list(engine.profiles), key="datasets_index_profiles")
        engine_choice = st.radio("Embed the corpus", ENGINES, horizontal=True, key="datasets_index_engine",
                                 format_func=lambda e: {"local": "in this process", "ray": "on Ray"}[e])
        options = None
        if engine_choice == "ray":
            address_col, actors_col, cpus_col, gpus_col = st.columns([3, 1, 1, 1])
            address = address_col.text_input("Ray address", key="datasets_index_address",
                                             placeholder="empty: a local Ray; or auto, host:port, ray://host:port")
            actors = actors_col.number_input("Actors", min_value=1, max_value=1024, value=1, key="datasets_index_actors")
            cpus = cpus_col.number_input("CPUs per actor", min_value=0.1, value=1.0, step=0.5, key="datasets_index_cpus")
            gpus = gpus_col.number_input("GPUs per actor", min_value=0.0, value=0.0, step=1.0, key="datasets_index_gpus")
            options = RayOptions(address=address.strip() or None, actors=int(actors), cpus_per_actor=float(cpus),
                                 gpus_per_actor=float(gpus))
        if st.button("Build indexes", key="datasets_index_build", type="primary", disabled=not chosen):
            bar = st.progress(0.0, text="Opening indexes…")
            previous = engine.progress
            engine.progress = lambda stage, fraction: bar.progress(min(max(fraction, 0.0), 1.0), text=f"{stage} ({fraction:.0%})")
            try:
                reports = build_indexes(engine, chosen, options)
            except WorkbenchError as exc:
                st.error(escape_markdown(str(exc)))
            else:
                bar.progress(1.0, text="Done.")
                if reports:
                    st.success("\n".join(f"- {escape_markdown(str(report))}" for report in reports))
                else:
                    st.success("Every index these profiles need is already open.")
            finally:
                engine.progress = previous

if on_disk and stored_tab.open:
    with stored_tab:
        stored_corpus_tab(workspace, info.name, info.path)

with add_tab:
    if FLASH_KEY in st.session_state:
        st.success(escape_markdown(st.session_state.pop(FLASH_KEY)))
    st.subheader("Import a BEIR zip", anchor=False)
    st.caption("corpus.jsonl, queries.jsonl and qrels/<split>.tsv at the top of the zip or in one folder. "
               "Archives with absolute paths, '..', links or oversized contents are refused.")
    upload = st.file_uploader("Dataset archive (.zip)", type=["zip"], key="datasets_zip")
    zip_name = st.text_input("Name (optional)", key="datasets_zip_name", placeholder="defaults to the folder inside the zip")
    if st.button("Import", key="datasets_import", disabled=upload is None):
        try:
            with st.spinner("Checking and unpacking…"):
                folder = import_zip_bytes(upload, upload.name, datasets_dir=workspace.datasets_dir,
                                          name=zip_name.strip() or None, reserved=names_held_elsewhere(workspace))
        except DatasetError as exc:
            _show_dataset_error(exc)
        else:
            _added(f"Imported {folder.name} into {folder}. Pick it in the sidebar.")

    st.divider()
    st.subheader("Download from the Hugging Face hub", anchor=False)
    with st.form("datasets_hub", border=False):
        repo_col, subset_col, name_col = st.columns(3)
        repo = repo_col.text_input("Repo", value=NANOCOIR_REPO)
        subset = subset_col.text_input("Subset", value="NanoCodeSearchNet")
        hub_name = name_col.text_input("Name (optional)", placeholder="defaults to the subset")
        st.caption(f"{NANOCOIR_REPO} subsets: {', '.join(NANOCOIR_SUBSETS)}.  \n"
                   f"{NANOCODESEARCHNET_REPO} subsets: {', '.join(NANOCODESEARCHNET_SUBSETS)}.  \n"
                   "A subset downloaded once is kept in the workspace and opens offline afterwards.")
        if st.form_submit_button("Download"):
            try:
                with st.spinner(f"Downloading {escape_markdown(subset or repo)}…"):
                    folder = download_nano_dataset(repo.strip(), subset.strip() or None, workspace.datasets_dir,
                                                   name=hub_name.strip() or None,
                                                   reserved=names_held_elsewhere(workspace))
            except DatasetError as exc:
                _show_dataset_error(exc)
            else:
                _added(f"Downloaded {folder.name} into {folder}. Pick it in the sidebar.")

    st.divider()
    st.subheader("The standard-library benchmark", anchor=False)
    builtin = workspace.datasets_dir / BUILTIN_DATASET
    built = is_beir_folder(builtin)
    st.caption(f"{BUILTIN_DATASET}: this Python's standard-library functions (query: the code) and their docstrings "
               "(documents). Needs no download." + (" Already built." if built else ""))
    if st.button("Build the standard-library benchmark", key="datasets_build_stdlib", disabled=built):
        with st.spinner("Parsing the standard library…"):
            folder = ensure_stdlib_benchmark(workspace.datasets_dir)
        _added(f"Built {BUILTIN_DATASET} in {folder}.")
