"""Slice finder: the kinds of query where a profile does significantly worse, or where B beats A."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.datasets import Dataset
from core.errors import WorkbenchError
from core.evaluation.metrics import parse_metric
from core.evaluation.slices import DEFAULT_ALPHA, DEFAULT_MIN_SIZE, difference_values, metric_values, query_features, slices_for
from ui.charts import slice_chart
from ui.links import breakdown_params
from ui.render import escape_markdown
from ui.state import get_evaluation, page_engine, selected_runs


@st.cache_data(show_spinner="Reading the queries' features…", max_entries=8)
def _features(dataset_key: str, _dataset: Dataset) -> pd.DataFrame:
    return query_features(_dataset)


@st.cache_data(show_spinner=False, max_entries=32)
def _slices(values: pd.Series, features: pd.DataFrame, worse: str, min_size: int, pairs: bool, alpha: float) -> pd.DataFrame:
    """A page rerun (a widget touched elsewhere) tests the same slices again: a second or more at 1,000 queries."""
    return slices_for(values, features, worse, min_size, pairs=pairs, alpha=alpha)


def show_slices(found: pd.DataFrame, dataset: str, profiles: list[str], what: str, key: str,
                a: str | None = None, b: str | None = None, runs: tuple[str, ...] = ()) -> None:
    """The slice table, a chart of the strongest, and a link opening the chosen slice in the breakdown."""
    if found.empty:
        st.info(f"No slice holds enough queries: lower the minimum size ({escape_markdown(what)}).")
        return
    significant = int(found["significant"].sum())
    st.caption(f"{len(found):d} slices tested, {significant:d} significant after Holm's correction. {escape_markdown(what)}")
    st.plotly_chart(slice_chart(found.head(15)), width="stretch", key=f"{key}_chart")
    st.dataframe(found.drop(columns="query_ids"), hide_index=True, width="stretch", key=f"{key}_table",
                 column_config={"slice mean": st.column_config.NumberColumn(format="%.4f"),
                                "rest mean": st.column_config.NumberColumn(format="%.4f"),
                                "effect": st.column_config.NumberColumn(format="%+.4f"),
                                "score": st.column_config.NumberColumn(format="%.4f"),
                                "p": st.column_config.NumberColumn(format="%.2g"),
                                "p (Holm)": st.column_config.NumberColumn(format="%.2g")})
    picked = st.selectbox("Open a slice in the breakdown", list(range(len(found))), key=f"{key}_pick",
                          format_func=lambda i: f"{found.at[i, 'slice']} ({found.at[i, 'queries']} queries)")
    st.page_link("pages/breakdown.py", label=f"Open {escape_markdown(str(found.at[picked, 'slice']))} in the breakdown", icon=":material/table_rows:",
                 query_params=breakdown_params(dataset, profiles, found.at[picked, "query_ids"], a, b, runs=runs))


sel, engine = page_engine()
dataset = engine.dataset
st.title("Slice finder")
st.caption("Kinds of query — language, length, identifiers, overlap with the positive, constructs in the code found with "
           "tree-sitter — where a profile does significantly worse than overall. One-sided Welch t-test of the slice "
           "against the other queries, Holm-corrected for the number of slices tested; score = effect × share of queries.")
if not sel.profile_names and not sel.run_ids:
    st.info("Pick one or more profiles or saved runs in the sidebar.")
    st.stop()

try:
    features = _features(f"{dataset.name}:{dataset.corpus_hash}:{dataset.queries_hash}", dataset)
    runs = {run.name: run for run in selected_runs(engine, sel)}  # profiles, then saved runs as ``name [run id]``
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

profiles = list(runs)
left, middle, right, last = st.columns(4)
metric = left.selectbox("Metric", list(sel.metrics), format_func=lambda m: parse_metric(m).label(), key="slices_metric")
min_size = middle.number_input("Minimum slice size", min_value=2, max_value=100_000, value=min(DEFAULT_MIN_SIZE, max(2, len(features) // 4)),
                               step=1, key="slices_min_size")
alpha = right.number_input("alpha", min_value=0.001, max_value=0.5, value=DEFAULT_ALPHA, step=0.01, format="%.3f", key="slices_alpha")
pairs = last.toggle("Pairs of features", value=True, key="slices_pairs")
st.caption(f"{len(features)} evaluated queries; code features read from the {escape_markdown(str(features.attrs.get('code side', 'query')))}.")

worse_tab, beats_tab, features_tab = st.tabs(["Where a profile does worse", "Where B beats A", "Features"])
with worse_tab:
    profile = st.selectbox("Run", profiles, key="slices_profile")
    try:
        evaluation = get_evaluation(engine, runs[profile], sel.metrics)
        found = _slices(metric_values(evaluation, metric), features, "lower", int(min_size), pairs, alpha)
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        # show_slices escapes the text once: the run name goes in raw, or its escapes would show
        show_slices(found, dataset.name, list(sel.profile_names), f"Overall {parse_metric(metric).label()} of {profile}: "
                    f"{metric_values(evaluation, metric).mean():.4f}.", "slices_worse", a=profile, runs=sel.run_ids)
with beats_tab:
    if len(profiles) < 2:
        st.info("Pick two runs (profiles or saved runs) in the sidebar to see where one beats the other.")
    else:
        left, right = st.columns(2)
        name_a = left.selectbox("A", profiles, key="slices_a")
        name_b = right.selectbox("B", profiles, index=1, key="slices_b")
        if name_a == name_b:
            st.info("Pick two different profiles as A and B.")
        else:
            try:
                a = get_evaluation(engine, runs[name_a], sel.metrics)
                b = get_evaluation(engine, runs[name_b], sel.metrics)
                difference = difference_values(a, b, metric)
                found = _slices(difference, features, "higher", int(min_size), pairs, alpha)
            except WorkbenchError as exc:
                st.error(escape_markdown(str(exc)))
            else:
                show_slices(found, dataset.name, list(sel.profile_names), f"Overall B − A: {difference.mean():+.4f}; effect = slice's "
                            "B − A minus the overall.", "slices_beats", a=name_a, b=name_b, runs=sel.run_ids)
with features_tab:
    st.dataframe(features, width="stretch", key="slices_features")
