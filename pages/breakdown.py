"""Per-query breakdown: every query's metric and positive rank per profile, filters, A-vs-B charts."""
import html
import math

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.evaluation.compare import (
    BASE_COLUMNS,
    filter_queries,
    interesting_queries,
    metric_column,
    per_query_table,
    rank_column,
    rank_histogram,
    rank_movement,
    scatter_points,
    win_tie_loss,
)
from core.errors import WorkbenchError
from core.evaluation.metrics import parse_metric
from ui.links import QIDS_PARAM, decode_query_ids
from ui.render import escape_markdown, plotly_text
from ui.state import current_selection, get_engine, get_evaluation, page_params, selected_runs

OUTCOME_COLOURS = {"A wins": "#1f77b4", "tie": "#9e9e9e", "B wins": "#d62728"}
SHOW = {"all": "all queries", "b_wins": "lost by A, won by B", "a_wins": "won by A, lost by B", "ties": "ties (A = B)"}

st.title("Per-query breakdown")
sel = current_selection()
if sel is None:
    st.stop()
if not sel.profile_names and not sel.run_ids:
    st.info("Select at least one profile (or saved run) in the sidebar.")
    st.stop()
try:
    engine = get_engine(sel)
    runs = selected_runs(engine, sel)  # profiles (with a progress bar), then saved runs (imported TREC runs among them)
    evaluations = [get_evaluation(engine, run, sel.metrics) for run in runs]
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
profiles = [run.name for run in runs]
by_name = dict(zip(profiles, evaluations))
run_by_name = dict(zip(profiles, runs))
compare_key = {run.name: run.run_id or run.name for run in runs}  # what the two-run page's ?a= / ?b= take


def _rank_text(rank: float) -> str:
    return "not retrieved" if math.isnan(rank) else str(int(rank))


def _compare_params(query_id: str) -> dict[str, str]:
    """URL parameters of the two-run view on this page's A and B at one query (the browser carries the sidebar's)."""
    return {"a": compare_key[profile_a], "b": compare_key[profile_b], "qid": query_id}


def _remember(key: str, options: list[str], wanted: str | None, fallback: str) -> None:
    """Seed a selectbox from the URL once, and repair it when the sidebar dropped its value."""
    if key not in st.session_state or st.session_state[key] not in options:
        st.session_state[key] = wanted if wanted in options else fallback


focus = st.query_params.get("focus")  # set by a leaderboard cell: that run's metric, worst queries first
focus = focus if focus in profiles else None
if focus and st.session_state.get("breakdown_focus_seen") != (focus, st.query_params.get("metric")):
    st.session_state["breakdown_focus_seen"] = (focus, st.query_params.get("metric"))
    st.session_state["breakdown_a"] = focus
    if st.session_state.get("breakdown_b") in (None, focus):  # B: the first other run, so the A-vs-B charts show
        st.session_state["breakdown_b"] = next((p for p in profiles if p != focus), focus)
    if st.query_params.get("metric") in sel.metrics:
        st.session_state["breakdown_metric"] = st.query_params.get("metric")
    st.session_state["breakdown_worst"] = True
_remember("breakdown_a", profiles, st.query_params.get("a"), profiles[0])
_remember("breakdown_b", profiles, st.query_params.get("b"), next((p for p in profiles if p != profiles[0]), profiles[0]))
_remember("breakdown_metric", list(sel.metrics), st.query_params.get("metric"), sel.metrics[0])

left, middle, right = st.columns(3)
metric = left.selectbox("Metric", list(sel.metrics), key="breakdown_metric", format_func=lambda m: parse_metric(m).label())
profile_a = middle.selectbox("Profile A", profiles, key="breakdown_a")
profile_b = right.selectbox("Profile B", profiles, key="breakdown_b")
page_params(a=profile_a, b=profile_b, metric=metric)
label = parse_metric(metric).label()
worst_first = st.toggle(f"Worst first for A ({escape_markdown(profile_a)})", key="breakdown_worst",
                        help="Sort by A's metric, lowest first (then by how deep A ranked the positive).")

try:
    table = per_query_table(engine.dataset, evaluations, metric)
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

left, middle, right = st.columns(3)
languages = left.multiselect("Language", sorted(set(table["language"])), key="breakdown_languages",
                             placeholder="all languages")
lengths = middle.multiselect("Query length", list(dict.fromkeys(table["length"])), key="breakdown_lengths",
                             placeholder="all lengths")
show = right.selectbox("Show", list(SHOW), format_func=SHOW.get, key="breakdown_show",
                      help=f"Compares A ({escape_markdown(profile_a)}) and B ({escape_markdown(profile_b)}) on {escape_markdown(label)}, query by query.")
outcome = win_tie_loss(by_name[profile_a], by_name[profile_b], metric)
decided = set(outcome.won_query_ids) | set(outcome.lost_query_ids)
chosen_ids = {"all": None, "b_wins": outcome.lost_query_ids, "a_wins": outcome.won_query_ids,
              "ties": [q for q in table.index if q not in decided]}[show]
linked = decode_query_ids(st.query_params.get(QIDS_PARAM, ""))  # a link (complementarity, slices, map) names the queries
if linked:
    chosen_ids = [q for q in linked if chosen_ids is None or q in set(chosen_ids)]
    note, clear = st.columns([4, 1])
    found = len(set(linked) & set(table.index))
    # markdown-safe: a count and one of two literal nouns
    note.info(f"Showing only the {found:d} {'query' if found == 1 else 'queries'} named by the link that opened this page.")
    if clear.button("Show all queries", key="breakdown_clear_link"):
        del st.query_params[QIDS_PARAM]
        st.rerun()
shown = filter_queries(table, languages or None, lengths or None, chosen_ids)
if worst_first:
    shown = shown.assign(_rank=shown[rank_column(profile_a)].fillna(float("inf"))).sort_values(
        [metric_column(profile_a, parse_metric(metric).key), "_rank"], ascending=[True, False], kind="stable").drop(columns="_rank")
st.caption(f"{len(shown)} of {len(table)} queries · {escape_markdown(label)} of each profile, then the rank of its positive "
           "(None: not retrieved in the top 100). Click a header to sort, a row to select it.")

columns = {"query_id": st.column_config.TextColumn("query id", pinned=True),
           "query": st.column_config.TextColumn("query", width=240, help="First line of the query"),
           "length": st.column_config.TextColumn("length", width=140)}
for name in profiles:  # short headers: the profile's name over its metric, "rank · name" over its positive's rank
    columns[metric_column(name, parse_metric(metric).key)] = st.column_config.NumberColumn(
        name, format="%.3f", width=95, help=f"{label} of {name}")
    columns[rank_column(name)] = st.column_config.NumberColumn(
        f"rank · {name}", format="%d", width=110, help=f"Rank of the positive under {name}; None: not retrieved")
# every profile's metric column first, then the ranks: at 1024 px five profiles' metrics fit beside the query id,
# while metric and rank pairs (or the query text) would push the later profiles out of sight
metric_order = [metric_column(name, parse_metric(metric).key) for name in profiles]
order = [c for c in metric_order if c in shown.columns] + \
    [c for c in shown.columns if c not in BASE_COLUMNS and c not in metric_order] + \
    (["language"] if table["language"].nunique() > 1 else []) + ["length", "query"]
picked = st.dataframe(shown, column_config=columns, column_order=order, on_select="rerun", selection_mode="single-row",
                      key="breakdown_table", width="stretch", height=min(38 + 35 * len(shown), 420))
rows = picked.selection.rows
buttons = st.columns([2, 1])
if rows and rows[0] < len(shown):
    query_id = str(shown.index[rows[0]])
    if buttons[0].button(f"Open {escape_markdown(query_id)} in the query explorer", icon=":material/search:",
                         type="primary", key="breakdown_open"):
        st.switch_page("pages/explorer.py", query_params={"qid": query_id})
    if profile_a != profile_b and buttons[0].button(f"Compare A and B on {escape_markdown(query_id)}", icon=":material/difference:",
                                                    key="breakdown_compare"):
        st.switch_page("pages/compare_runs.py", query_params=_compare_params(query_id))
    if profile_a != profile_b:
        moves = rank_movement(run_by_name[profile_a], run_by_name[profile_b], engine.dataset.qrels, query_id)
        st.caption(f"Where the positive of {escape_markdown(query_id)} moves from A to B")
        st.dataframe([{"positive": m.doc_id, "grade": m.grade, f"rank in A ({profile_a})": m.rank_a,
                       f"rank in B ({profile_b})": m.rank_b, "A → B": m.describe()} for m in moves],
                     hide_index=True, key="breakdown_moves")
else:
    buttons[0].caption("Select a row to open its query in the explorer.")
buttons[1].download_button("Download CSV", shown.to_csv().encode("utf-8"), file_name=f"{engine.dataset.name}-per-query.csv",
                           mime="text/csv", icon=":material/download:")

if shown.empty:
    st.info("No query matches these filters.")
    st.stop()

chart_left, chart_right = st.columns(2)
with chart_left:
    st.subheader(f"{escape_markdown(label)}: A vs B")
    if profile_a == profile_b:
        st.info("Pick two different profiles as A and B to compare them.")
    else:
        counts = win_tie_loss(by_name[profile_a], by_name[profile_b], metric, query_ids=list(shown.index))
        wins, ties, losses = st.columns(3)
        wins.metric("A wins", counts.wins, help=f"{escape_markdown(profile_a)} scores higher than {escape_markdown(profile_b)}")
        ties.metric("Ties", counts.ties)
        losses.metric("B wins", counts.losses, help=f"{escape_markdown(profile_b)} scores higher than {escape_markdown(profile_a)}")
        points = scatter_points(shown, metric, profile_a, profile_b)
        points["query_ids"] = points["query_ids"].map(html.escape)  # Plotly reads hover text as HTML; ids come from the dataset
        scatter = px.scatter(points, x="a", y="b", size="queries", color="outcome", size_max=28, custom_data=["first_query_id"],
                             color_discrete_map=OUTCOME_COLOURS, category_orders={"outcome": list(OUTCOME_COLOURS)},
                             hover_data={"queries": True, "query_ids": True, "outcome": False},
                             labels={"a": f"A: {plotly_text(profile_a)}", "b": f"B: {plotly_text(profile_b)}", "query_ids": "queries"})
        scatter.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                                     hoverinfo="skip", showlegend=False))
        scatter.update_layout(height=420, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend_title_text="",
                              legend={"orientation": "h", "y": -0.18},
                              xaxis={"range": [-0.05, 1.08]}, yaxis={"range": [-0.05, 1.08]})
        clicked = st.plotly_chart(scatter, width="stretch", on_select="rerun", selection_mode="points",
                                  key=f"breakdown_scatter|{profile_a}|{profile_b}|{metric}")
        picked_points = clicked.selection.points if clicked is not None else []
        if picked_points and picked_points[0].get("customdata"):
            st.switch_page("pages/compare_runs.py", query_params=_compare_params(str(picked_points[0]["customdata"][0])))
        st.caption("One marker per distinct pair of values, sized by how many queries share it. "
                   "Above the diagonal B does better, below it A does. **Click a marker** to open its first query "
                   "in *Compare two runs*.")
with chart_right:
    st.subheader("Where the positive came")
    histogram = rank_histogram(shown, profiles)
    histogram["profile"] = histogram["profile"].map(plotly_text)  # Plotly reads legend text as HTML
    bars = px.bar(histogram, x="rank", y="queries", color="profile", barmode="group",
                  category_orders={"rank": list(dict.fromkeys(histogram["rank"])), "profile": [plotly_text(p) for p in profiles]})
    bars.update_layout(height=520, margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend_title_text="",
                       legend={"orientation": "h", "y": -0.2}, xaxis={"type": "category", "title": "rank of the best positive"})
    st.plotly_chart(bars, width="stretch")

st.subheader("Queries worth a look")
if profile_a == profile_b:
    st.caption("Pick two different profiles as A and B to see where they disagree most.")
else:
    worth = interesting_queries(by_name[profile_a], by_name[profile_b], metric, top_n=10, query_ids=list(shown.index))
    if not worth:
        st.caption(f"A and B score the same {escape_markdown(label)} on every query shown.")
    else:
        st.caption(f"The queries where {escape_markdown(profile_a)} (A) and {escape_markdown(profile_b)} (B) differ most on {escape_markdown(label)}.")
        st.dataframe([{"query_id": q.query_id, "query": shown.loc[q.query_id, "query"], f"A · {label}": q.value_a,
                       f"B · {label}": q.value_b, "B − A": q.difference, "A rank": _rank_text(q.rank_a),
                       "B rank": _rank_text(q.rank_b)}
                      for q in worth],
                     column_config={f"A · {label}": st.column_config.NumberColumn(format="%.3f"),
                                    f"B · {label}": st.column_config.NumberColumn(format="%.3f"),
                                    "B − A": st.column_config.NumberColumn(format="%+.3f"),
                                    "A rank": st.column_config.TextColumn(width=100),
                                    "B rank": st.column_config.TextColumn(width=100),
                                    "query": st.column_config.TextColumn(width=280)},
                     hide_index=True, width="stretch", key="breakdown_worth")
