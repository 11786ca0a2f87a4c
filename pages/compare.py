"""Significance & report: paired tests between the chosen profiles, a marked leaderboard, and a one-click report."""
from __future__ import annotations

import streamlit as st

from core.errors import WorkbenchError
from core.evaluation.metrics import parse_metric
from core.evaluation.leaderboard import with_saved_ids
from core.retrieval.runs import list_runs
from core.evaluation.report import build_report, default_report_dir, report_zip
from core.evaluation.significance import CORRECTIONS, TESTS, compare_all, marked_leaderboard
from ui.render import escape_markdown
from ui.progress import ProgressBar
from ui.state import get_evaluation, page_engine, page_params, selected_runs

EVERY_PAIR = "(every pair)"
REPORT_KEY = "compare_report"
TEST_LABELS = {"randomization": "Fisher randomization", "t-test": "paired Student's t"}


def _from_url(key: str, options: list[str]) -> int:
    """Index of the option named in the query parameter ``key`` (0 when absent or unknown)."""
    value = st.query_params.get(key)
    return options.index(value) if value in options else 0


sel, engine = page_engine()

st.title("Significance & report")
try:
    runs = selected_runs(engine, sel)  # profiles (with a progress bar), then saved runs (imported TREC runs among them)
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
names = [run.name for run in runs]
if len(names) < 2:
    st.info("Pick at least two profiles (or saved runs) in the sidebar to compare them.")
    st.stop()

metric_keys = [parse_metric(m).key for m in sel.metrics]
left, middle, right, narrow, last = st.columns([1.2, 1.6, 1.4, 0.8, 1.4])
metric = left.selectbox("Metric", metric_keys, index=_from_url("cmp_metric", metric_keys), key="cmp_metric",
                        format_func=lambda key: parse_metric(key).label())
test = middle.selectbox("Test", list(TESTS), index=_from_url("cmp_test", list(TESTS)), key="cmp_test",
                        format_func=TEST_LABELS.get)
correction = right.selectbox("Correction", list(CORRECTIONS), index=_from_url("cmp_correction", list(CORRECTIONS)),
                             key="cmp_correction", help="Corrects the p-values of all comparisons on this metric as one family.")
alpha = narrow.number_input("alpha", min_value=0.001, max_value=0.5, value=0.05, step=0.01, format="%.3f", key="cmp_alpha")
baseline_options = [EVERY_PAIR, *names]
baseline_choice = last.selectbox("Baseline", baseline_options, index=_from_url("cmp_baseline", baseline_options),
                                 key="cmp_baseline", help="Compare each profile with the baseline only, or every pair.")
baseline = None if baseline_choice == EVERY_PAIR else baseline_choice
page_params(cmp_metric=metric, cmp_test=test, cmp_correction=correction, cmp_baseline=baseline_choice)

try:
    runs = with_saved_ids(runs, engine.dataset, engine.profiles, list_runs(engine.workspace.runs_dir, engine.dataset.name))
    evaluations = [get_evaluation(engine, run, tuple(metric_keys)) for run in runs]
    bar = ProgressBar("Testing significance…")
    table = compare_all(evaluations, metric, baseline, test, correction, alpha, progress=bar)
    bar.clear()
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

label = parse_metric(metric).label()
st.subheader(f"{escape_markdown(label)} with significance markers")
board = marked_leaderboard(table)
st.dataframe(board[["letter", metric, "shown", "beaten"]], width="stretch",
             column_config={"_index": st.column_config.TextColumn("profile", pinned=True),
                            metric: st.column_config.ProgressColumn(label, format="%.4f", min_value=0.0, max_value=1.0),
                            "shown": st.column_config.TextColumn(f"{label} + markers"),
                            "beaten": st.column_config.TextColumn("significantly better than")})
family = f"each profile against **{escape_markdown(baseline)}**" if baseline else "every pair of profiles"
st.caption(f"A superscript letter marks a profile that this profile beats significantly: two-sided "  # markdown-safe: options
           f"{TEST_LABELS[test]} test over {family}, {correction} correction, alpha = {alpha:g}, "  # of fixed lists,
           f"{table.queries} queries.")  # a count, and family's baseline escaped above

st.subheader("Comparisons")
comparisons = table.to_frame()
st.dataframe(comparisons, hide_index=True, width="stretch",
             column_config={"a": st.column_config.TextColumn("A"), "b": st.column_config.TextColumn("B"),
                            "mean_a": st.column_config.NumberColumn("mean A", format="%.4f"),
                            "mean_b": st.column_config.NumberColumn("mean B", format="%.4f"),
                            "delta": st.column_config.NumberColumn("B - A", format="%+.4f"),
                            "p_value": st.column_config.NumberColumn("p", format="%.4f"),
                            "corrected_p": st.column_config.NumberColumn(f"p ({correction})", format="%.4f"),
                            "significant": st.column_config.CheckboxColumn("significant"),
                            "wins": st.column_config.NumberColumn("B wins", help="queries where B scores higher"),
                            "ties": st.column_config.NumberColumn("ties"),
                            "losses": st.column_config.NumberColumn("B losses", help="queries where B scores lower")})
st.download_button("Download CSV", comparisons.to_csv(index=False).encode("utf-8"), key="cmp_csv", on_click="ignore",
                   file_name=f"significance-{engine.dataset.name}-{metric}.csv", mime="text/csv", icon=":material/download:")

st.subheader("Report")
st.caption("One HTML file with the charts embedded (to email), and a Markdown file with its images (zipped): leaderboard with "
           f"markers on every metric, {escape_markdown(label)} per language, the best profile's failure cases, profile parameters, "
           "dataset hashes and this machine.")
count_column, button_column, _ = st.columns([1, 1, 3], vertical_alignment="bottom")
failures = count_column.number_input("Failure cases to include", min_value=0, max_value=100, value=10, step=1, key="cmp_failures")
settings = (engine.dataset.name, tuple(names), tuple(metric_keys), metric, baseline, test, correction, alpha, failures)
if button_column.button("Build report", key="cmp_build_report", type="primary", icon=":material/description:"):
    ordered = [metric, *[m for m in metric_keys if m != metric]]  # the chosen metric picks the best profile
    try:
        with st.spinner("Writing the report…"):
            files = build_report(engine.dataset, evaluations, runs, ordered, baseline,
                                 default_report_dir(engine.workspace, engine.dataset.name), failures_top_n=int(failures),
                                 test=test, correction=correction, alpha=alpha)
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        st.session_state[REPORT_KEY] = (settings, files)
report = st.session_state.get(REPORT_KEY)
if report is not None and report[0] == settings:
    files = report[1]
    html_column, zip_column = st.columns(2)
    html_column.download_button("Download HTML", files.html.read_bytes(), file_name=f"report-{engine.dataset.name}.html",
                                mime="text/html", key="cmp_html", on_click="ignore", icon=":material/download:")
    zip_column.download_button("Download Markdown + images (zip)", report_zip(files), key="cmp_zip", on_click="ignore",
                               file_name=f"report-{engine.dataset.name}.zip", mime="application/zip", icon=":material/folder_zip:")
    st.caption(f"Written to {escape_markdown(str(files.html.parent))}")
