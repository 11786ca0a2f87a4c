"""Leaderboard: the chosen profiles' metric means on the chosen dataset, with time, languages and a chart."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.datasets import Dataset
from core.errors import WorkbenchError
from core.evaluation.leaderboard import (RUN_ID_COLUMN, TIME_COLUMN, best_rows, data_fingerprint, language_table, leaderboard_table,
                              profile_statuses, saved_run_label, saved_runs_table, status_table)
from core.evaluation.metrics import Evaluation, evaluate, parse_metric
from core.retrieval.engine import Engine
from core.evaluation.bootstrap import confidence_intervals
from core.evaluation.significance import markers_frame, run_letters, superscript
from core.retrieval.runs import Run, list_runs, load_run, read_trec, save_run
from ui.render import escape_markdown, metrics_bar_chart, styled_leaderboard
from ui.progress import count, engine_progress
from ui.state import get_evaluation, get_run, page_engine

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
                save_run(get_run(engine, name), engine.workspace.runs_dir)
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
    best = best_rows(table, [*metric_columns, TIME_COLUMN])
    markers = significance_markers(labels, evaluations, sel.metrics)
    intervals = confidence_intervals(evaluations, metric_columns, labels)  # 95 %, 10,000 paired resamples, seed 0
    st.dataframe(styled_leaderboard(table, best, metric_columns, TIME_COLUMN, markers, intervals), width="stretch",
                 # the run id before the metrics: extra cutoffs add columns past the window's right edge
                 column_order=[TIME_COLUMN, RUN_ID_COLUMN, *metric_columns],
                 column_config={"_index": st.column_config.TextColumn("run", pinned=True),
                                # pinned beside the run name, so extra cutoffs never push the time out of sight
                                TIME_COLUMN: st.column_config.Column(TIME_COLUMN, pinned=True, width=80),
                                RUN_ID_COLUMN: st.column_config.TextColumn(RUN_ID_COLUMN, width="medium"),
                                **{key: st.column_config.Column(parse_metric(key).label(), width=130) for key in metric_columns}})
    if markers is not None:
        legend = " · ".join(f"{superscript(letter)} = {escape_markdown(label)}" for label, letter in run_letters(labels).items())
        # markdown-safe: legend joins superscript letters with escaped profile names
        st.markdown(f"**Significance letters:** {legend}", help="A letter beside a value: this row beats that letter's "
                    "row significantly on that metric.")
    st.caption("**Bold**: best in its column (for ms/query, the fastest). Superscript letters name the rows this row "
               "beats significantly (legend above) — paired randomization test, 10,000 permutations, Holm "
               "correction per metric, alpha 0.05; other tests on *Significance & report*. ± half the width of the "
               "95% percentile bootstrap interval over queries (10,000 resamples, seed 0; bars on the chart). ms/query: retrieval time per "
               "query on this machine, index building and model loading excluded.")
    st.download_button("Download CSV", table.to_csv().encode("utf-8"), file_name=f"leaderboard-{dataset.name}.csv",
                       mime="text/csv", key="leaderboard_csv", on_click="ignore", icon=":material/download:")

    chart_tab, language_tab = st.tabs(["Chart", "By language"], key="leaderboard_tab", on_change="rerun")
    with chart_tab:
        st.plotly_chart(metrics_bar_chart(table, metric_columns, intervals), width="stretch")
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
                    imported = save_run(read_trec(path, name=trec_name.strip() or None, dataset=dataset.name), runs_dir)
                except WorkbenchError as exc:
                    st.error(escape_markdown(str(exc)))
                else:
                    st.session_state[PENDING_KEY] = imported.run_id
                    st.rerun()
