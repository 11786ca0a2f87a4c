"""Build a benchmark: pair the documented functions of a source tree on this machine with their docstrings."""
from __future__ import annotations

import streamlit as st

from core.data.catalog import list_datasets
from core.data.datasets import validate_name
from core.errors import WorkbenchError
from core.data.source_benchmark import DEFAULT_SEED, DIRECTIONS, LANGUAGES, build_from_tree, check_source_root
from core.evaluation.stats import dataset_stats, language_counts, length_summary, length_table, query_rows
from ui.render import escape_markdown
from ui.progress import ProgressBar
from ui.state import current_selection

BUILT_KEY = "build_benchmark_built"
DIRECTION_LABELS = {"code2doc": "code → docstring (query is the code)", "doc2code": "docstring → code (query is the docstring)"}

sel = current_selection()
if sel is None:
    st.stop()
workspace = sel.workspace

st.title("Build a benchmark")
st.caption("Functions and methods are parsed with tree-sitter and paired with their own docstring (CodeSearchNet style). "
           "Short docstrings, shared docstrings and test functions are left out, so every query has exactly one answer. "
           f"The dataset is written to {escape_markdown(str(workspace.datasets_dir))}.")

with st.form("build_benchmark"):
    root_text = st.text_input("Source folder on this machine", placeholder="/home/me/src/project",
                              help="A folder on the machine running the workbench (not a URL); links are not followed.")
    left, right = st.columns(2)
    name = left.text_input("Dataset name", placeholder="myproject-code2doc", help="Letters, digits, '.', '_' and '-'.")
    languages = right.multiselect("Languages", list(LANGUAGES), default=["python"])
    direction = left.radio("Direction", list(DIRECTIONS), format_func=DIRECTION_LABELS.get, horizontal=True)
    strip = right.checkbox("Strip the docstring from code queries", value=True,
                           help="code → docstring only: otherwise each query contains its answer verbatim.")
    queries = left.number_input("Number of queries", min_value=1, max_value=100_000, value=200, step=50)
    seed = right.number_input("Seed", min_value=0, max_value=2**32 - 1, value=DEFAULT_SEED, step=1)
    submitted = st.form_submit_button("Build benchmark", type="primary", icon=":material/construction:")

if submitted:
    try:
        root = check_source_root(root_text)
        validate_name(name.strip())
        if not languages:
            raise WorkbenchError("Choose at least one language.")
        taken = {info.name: info.path for info in list_datasets(workspace)}
        if name.strip() in taken:
            raise WorkbenchError(f"A dataset named {name.strip()!r} already exists ({taken[name.strip()]}): choose another name.")
        bar = ProgressBar(f"Parsing {escape_markdown(str(root))} and building {escape_markdown(name.strip())}…")
        try:
            dataset = build_from_tree(root, name.strip(), direction, languages, int(queries), int(seed),
                                      strip and direction == "code2doc", out_dir=workspace.datasets_dir, progress=bar)
        finally:
            bar.clear()
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        st.session_state[BUILT_KEY] = dataset
        st.rerun()  # redraws the sidebar, whose dataset list now holds the new one

dataset = st.session_state.get(BUILT_KEY)
if dataset is not None:
    st.success(f"Built **{escape_markdown(dataset.name)}**: pick it in the sidebar's Dataset list to evaluate profiles on it.")
    stats = dataset_stats(dataset)
    columns = st.columns(3)
    columns[0].metric("Queries", f"{stats.queries:,}")
    columns[1].metric("Documents", f"{stats.documents:,}")
    columns[2].metric("Languages", len(dataset.languages))
    counts, lengths = st.columns(2)
    counts.dataframe(language_counts(dataset), width="stretch")
    lengths.dataframe(length_summary(length_table(dataset)), width="stretch")
    st.subheader("First pairs")
    st.dataframe(query_rows(dataset).head(20)[["query id", "language", "query", "positive id", "positive"]],
                 hide_index=True, width="stretch")
