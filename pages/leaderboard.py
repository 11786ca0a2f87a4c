"""Leaderboard: the chosen profiles' metric means on the chosen dataset, with time, languages and a chart."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.datasets import Dataset
from core.errors import WorkbenchError
import plotly.express as px

from core.evaluation.leaderboard import (COST_COLUMNS, RUN_ID_COLUMN, TIME_COLUMN, best_rows, breakdown_link, cost_columns,
                                         data_fingerprint, language_table, leaderboard_table, profile_statuses,
                                         quality_latency_points, saved_run_label, saved_runs_table, status_table,
                                         with_columns)
from core.evaluation.manifest import import_trec_run, make_saved_run, manifest_json, run_manifest
from core.evaluation.metrics import Evaluation, evaluate, parse_metric
from core.retrieval.engine import Engine
from core.evaluation.bootstrap import confidence_intervals
from core.evaluation.significance import markers_frame, run_letters, superscript
from core.retrieval.runs import Run, list_runs, load_run
from ui.render import escape_markdown, metrics_bar_chart, plotly_text, styled_leaderboard
from ui.progress import count, engine_progress
from ui.state import SIDEBAR_PARAMS, get_evaluation, page_engine

ADDED_KEY = "leaderboard_added_runs"
PENDING_KEY = "leaderboard_pending_run"  # a run imported in the last script run, added before the widget exists
FAILURES_KEY = "leaderboard_failures"  # what failed in the last Evaluate, shown after the rerun that refreshes the status


@st.cache_data(show_spinner=False, max_entries=64)
def _saved_run(runs_dir: str, run_id: str) -> Run:
    """A saved run from disk (run files never change once written, so the id is the key)."""
    return load_run(Path(runs_dir), run_id)


@st.cache_data(show_spinner=False, max_entries=128)
def _saved_evaluation(runs_dir: str, run_id: str, metrics: tuple[str, ...], data_key: str, _dataset: Dataset) -> Evaluation:
    return evaluate(_dataset.qrels, _saved_run(runs_dir, run_id), metrics)


def _evaluate_missing(engine: Engine, names: list[str]) -> list[str]:
    """Run, save and cache each profile, drawing progress per profile and per index build; return failures."""
    failures = []
    with engine_progress(engine, f"Evaluating {len(names)} profile(s)…") as bar:
        for position, name in enumerate(names):
            count(bar, f"evaluating {name} (profile {position + 1} of {len(names)})", position, len(names), "profiles")
            try:
                make_saved_run(engine, name, metrics=sel.metrics)  # cost measured, manifest attached
            except WorkbenchError as exc:
                failures.append(f"{name}: {exc}")
    return failures


# ── Significance markers ─────────────────────────────────────────────────────────────────────────
@st.cache_data(show_spinner="Testing significance…", max_entries=32)
def _markers(labels: tuple[str, ...], fingerprint: tuple[int, ...], metrics: tuple[str, ...],
             _evaluations: list[Evaluation]) -> pd.DataFrame | None:
    return markers_frame(_evaluations, metrics, labels)


def significance_markers(labels: list[str], evaluations: list[Evaluation], metrics: tuple[str, ...]) -> pd.DataFrame | None:
    """Superscript letters of the rows each row beats (paired randomization test, Holm-corrected, alpha 0.05)."""
    fingerprint = tuple(int(pd.util.hash_pandas_object(e.per_query).sum()) for e in evaluations)
    return _markers(tuple(labels), fingerprint, tuple(metrics), evaluations)


sel, engine = page_engine()

dataset = engine.dataset
runs_dir = engine.workspace.runs_dir
st.title("Leaderboard")
st.caption(f"**{escape_markdown(dataset.name)}** · {len(dataset.judged_queries):,} judged queries · "
           f"{len(dataset.documents):,} documents · metrics are means over the judged queries")
if not sel.profile_names:
    st.info("Pick one or more profiles in the sidebar.")
    st.stop()

saved = list_runs(runs_dir, dataset.name)
for damaged in (s for s in saved if s.damaged):
    st.warning(escape_markdown(damaged.damage))
statuses = profile_statuses(dataset, engine.profiles, sel.profile_names, saved)
missing = [s.profile for s in statuses if s.needs_run]
with st.expander(f"Run status: {len(statuses) - len(missing)} saved, {len(missing)} need a run", expanded=bool(missing)):
    st.dataframe(status_table(statuses), hide_index=True, width="stretch")
    st.caption("A saved run is reused when it was made by the same profile parameters on the same corpus, queries and "
               "depth. Evaluating retrieves every judged query, saves the run (see `python -m core runs`) and adds it here.")
    clicked = st.button(f"Evaluate {len(missing)} profile(s)" if missing else "Evaluate", key="evaluate", type="primary",
                        disabled=not missing, help="Runs: " + (escape_markdown(", ".join(missing)) or "none needed"))
if clicked and missing:
    st.session_state[FAILURES_KEY] = _evaluate_missing(engine, missing)
    st.rerun()
for failure in st.session_state.pop(FAILURES_KEY, []):
    st.error(escape_markdown(failure))

# Saved runs a user added by hand (an imported TREC file, an older run) join the profile rows.
saved_ids = {s.run_id: s for s in saved if not s.damaged}  # a damaged run is listed below, never scored
added = [*st.session_state.get(ADDED_KEY, []), *([st.session_state.pop(PENDING_KEY)] if PENDING_KEY in st.session_state else [])]
st.session_state[ADDED_KEY] = [run_id for run_id in dict.fromkeys(added) if run_id in saved_ids]
rows: list[tuple[str, Run, Evaluation]] = []
try:
    for status in statuses:
        if status.saved is not None:
            run = _saved_run(str(runs_dir), status.saved.run_id)
            rows.append((status.profile, run, get_evaluation(engine, run, sel.metrics)))
    for run_id in st.session_state[ADDED_KEY]:
        run = _saved_run(str(runs_dir), run_id)
        evaluation = _saved_evaluation(str(runs_dir), run_id, sel.metrics, data_fingerprint(dataset), dataset)
        rows.append((saved_run_label(run_id, run.name), run, evaluation))
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

if not rows:
    st.info(f"No results yet for {escape_markdown(', '.join(sel.profile_names))}: press **Evaluate** above to run them.")
else:
    labels = [label for label, _, _ in rows]
    runs = [run for _, run, _ in rows]
    evaluations = [evaluation for _, _, evaluation in rows]
    metric_columns = [parse_metric(m).key for m in sel.metrics]
    table = leaderboard_table(runs, evaluations, labels)
    show_cost = st.toggle("Cost columns", key="leaderboard_cost",
                          help="Index build time and size on disk, single-query latency p50/p95 and peak memory, "
                               "measured when each run was made (— : not measured, e.g. an imported run).")
    if show_cost:
        table = with_columns(table, cost_columns(runs, labels))
    cost_shown = [c for c in COST_COLUMNS if c in table.columns]
    best = best_rows(table, [*metric_columns, TIME_COLUMN, *cost_shown])
    markers = significance_markers(labels, evaluations, sel.metrics)
    intervals = confidence_intervals(evaluations, metric_columns, labels)  # 95 %, 10,000 paired resamples, seed 0
    styled = styled_leaderboard(table, best, metric_columns, TIME_COLUMN, markers, intervals)
    if cost_shown:
        styled = styled.format("{:.1f}", subset=cost_shown, na_rep="—").apply(
            lambda column: ["font-weight: bold" if label in best[column.name] else "" for label in column.index],
            subset=cost_shown)
    clicked_cell = st.dataframe(styled, width="stretch", key="leaderboard_table", on_select="rerun", selection_mode="single-cell",
                                # the run id before the metrics: extra cutoffs add columns past the window's right edge
                                column_order=[TIME_COLUMN, *cost_shown, RUN_ID_COLUMN, *metric_columns],  # cost, when asked for, in sight
                                column_config={"_index": st.column_config.TextColumn("run", pinned=True),
                                               # pinned beside the run name, so extra cutoffs never push the time out of sight
                                               TIME_COLUMN: st.column_config.Column(TIME_COLUMN, pinned=True, width=80),
                                               RUN_ID_COLUMN: st.column_config.TextColumn(RUN_ID_COLUMN, width="medium"),
                                               **{key: st.column_config.Column(parse_metric(key).label(), width=130)
                                                  for key in metric_columns}})
    cells = clicked_cell.selection.get("cells", []) if clicked_cell is not None else []
    if cells:
        row, column = cells[0][0], cells[0][1]
        if column in metric_columns and 0 <= int(row) < len(labels):
            label, run = labels[int(row)], runs[int(row)]
            saved_id = run.run_id if label == saved_run_label(run.run_id, run.name) else None
            if saved_id:  # the sidebar's saved runs are bound to the URL: add it there, the switch carries it
                st.session_state["runs"] = list(dict.fromkeys([*sel.run_ids, saved_id]))
            link = {key: value for key, value in breakdown_link(label, column, saved_id).items() if key not in SIDEBAR_PARAMS}
            st.switch_page("pages/breakdown.py", query_params=link)
    if markers is not None:
        legend = " · ".join(f"{superscript(letter)} = {escape_markdown(label)}" for label, letter in run_letters(labels).items())
        # markdown-safe: legend joins superscript letters with escaped profile names
        st.markdown(f"**Significance letters:** {legend}", help="A letter beside a value: this row beats that letter's "
                    "row significantly on that metric.")
    st.caption("**Bold**: best in its column (for ms/query and cost, the lowest). Superscript letters name the rows this row "
               "beats significantly (legend above) — paired randomization test, 10,000 permutations, Holm "
               "correction per metric, alpha 0.05; other tests on *Significance & report*. ± half the width of the "
               "95% percentile bootstrap interval over queries (10,000 resamples, seed 0; bars on the chart). ms/query: retrieval time per "
               "query on this machine, index building and model loading excluded. **Click a metric cell** to open the "
               "queries behind it, worst first.")
    st.download_button("Download CSV", table.to_csv().encode("utf-8"), file_name=f"leaderboard-{dataset.name}.csv",
                       mime="text/csv", key="leaderboard_csv", on_click="ignore", icon=":material/download:")

    with_manifest = {label: run_manifest(run) for label, run in zip(labels, runs) if run_manifest(run) is not None}
    manifest_column, download_column = st.columns([3, 1], vertical_alignment="bottom")
    if with_manifest:
        chosen_manifest = manifest_column.selectbox("Manifest of", list(with_manifest), key="leaderboard_manifest",
                                                    help="Data hashes, profile parameters, model fingerprints, package "
                                                         "versions, machine, seed, time, cost and metrics of the saved run. "
                                                         "`python -m core reproduce manifest.json` re-runs it.")
        download_column.download_button("Download manifest (JSON)", manifest_json(with_manifest[chosen_manifest]).encode("utf-8"),
                                        file_name=f"manifest-{with_manifest[chosen_manifest]['run'].get('run_id', 'run')}.json",
                                        mime="application/json", key="leaderboard_manifest_json", on_click="ignore",
                                        icon=":material/download:")
    else:
        manifest_column.caption("These runs were saved before manifests existed: evaluate them again to get one.")

    chart_tab, cost_tab, language_tab = st.tabs(["Chart", "Quality vs latency", "By language"], key="leaderboard_tab",
                                                 on_change="rerun")
    with chart_tab:
        st.plotly_chart(metrics_bar_chart(table, metric_columns, intervals), width="stretch")
    with cost_tab:
        quality = st.selectbox("Quality", metric_columns, format_func=lambda key: parse_metric(key).label(),
                               key="leaderboard_quality_metric", width=240)
        points = quality_latency_points(with_columns(leaderboard_table(runs, evaluations, labels), cost_columns(runs, labels)),
                                        quality)
        points["run"] = points["run"].map(plotly_text)  # Plotly reads text as HTML; run names come from files
        figure = px.scatter(points, x="latency ms", y=quality, text="run", symbol="latency", log_x=True,
                            labels={quality: parse_metric(quality).label(), "latency ms": "latency per query (ms, log)"})
        figure.update_traces(textposition="top center", marker={"size": 12})
        figure.update_layout(height=420, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend_title_text="",
                             legend={"orientation": "h", "y": -0.2})
        st.plotly_chart(figure, width="stretch", key="leaderboard_quality_latency")
        st.caption("Up and to the left is better. Latency: the median of single queries timed when the run was made "
                   "(embedding included); runs without that measurement use the batch run's ms/query.")
    with language_tab:
        metric = st.selectbox("Metric", metric_columns, format_func=lambda key: parse_metric(key).label(),
                              key="leaderboard_language_metric", width=240)
        by_language = language_table(dataset, evaluations, metric, labels)
        st.dataframe(by_language, width="stretch",
                     column_config={label: st.column_config.NumberColumn(label, format="%.4f") for label in labels})
        st.caption("Rows: the query's language (else its relevant document's). `queries`: evaluated queries in that language.")

with st.expander(f"Saved runs for {escape_markdown(dataset.name)} ({len(saved)})"):
    if saved:
        st.dataframe(saved_runs_table(saved, dataset), hide_index=True, width="stretch",
                     column_config={TIME_COLUMN: st.column_config.NumberColumn(TIME_COLUMN, format="%.2f")})
        st.multiselect("Add saved runs to the table", list(saved_ids), key=ADDED_KEY,
                       format_func=lambda run_id: saved_run_label(run_id, saved_ids[run_id].name))
    else:
        st.caption("No saved runs yet.")
    with st.form("import_trec", clear_on_submit=True, border=False):
        trec_file = st.file_uploader("Import a TREC run file (qid Q0 docid rank score tag)", type=["txt", "trec", "run", "tsv"])
        trec_name = st.text_input("Name for the imported run", placeholder="defaults to the file's tag")
        if st.form_submit_button("Import run") and trec_file is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / Path(trec_file.name).name
                path.write_bytes(trec_file.getvalue())
                try:
                    imported = import_trec_run(engine.workspace, path, dataset, name=trec_name.strip() or None)
                except WorkbenchError as exc:
                    st.error(escape_markdown(str(exc)))
                else:
                    st.session_state[PENDING_KEY] = imported.run_id
                    st.rerun()
