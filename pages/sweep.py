"""Quality vs latency: a rerank pool depth, a hybrid weight or BM25's k1/b swept, each point's metric against its ms/query."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from core.errors import WorkbenchError
from core.evaluation.metrics import parse_metric
from core.evaluation.sweep import (DEFAULT_BM25_VALUES, DEFAULT_POOL_DEPTHS, DEFAULT_WEIGHTS, SweepPoint, best_point, latency_spread, point_profile,
                                   sweep_bm25, sweep_frame,
                        sweep_hybrid_weight, sweep_rerank_pool)
from core.retrieval.profiles import upsert_profile
from ui.render import escape_markdown
from ui.progress import engine_progress
from ui.state import page_engine

POOL_CHOICES = (1, 5, 10, 20, 30, 50, 75, 100, 200)
WEIGHT_CHOICES = tuple(round(i / 20, 2) for i in range(21))
BM25_CHOICES = {"k1": (0.0, 0.3, 0.5, 0.6, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0),
                "b": (0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0)}
RESULTS_KEY = "sweep_results"


def _latency_chart(points: list[SweepPoint], label: str, value_text) -> go.Figure:
    """Metric (y) against ms/query (x), one labelled marker per setting, joined in sweep order."""
    figure = go.Figure(go.Scatter(
        x=[p.ms_per_query for p in points], y=[p.metric_value for p in points], mode="lines+markers+text",
        text=[value_text(p.value) for p in points], textposition="top center",
        hovertemplate="%{text}<br>%{y:.4f}<br>%{x:.2f} ms/query<extra></extra>"))
    figure.update_layout(title="Quality vs latency", xaxis_title="ms per query (this machine)", yaxis_title=label,
                         height=400, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def _parameter_chart(points: list[SweepPoint], label: str, value_name: str) -> go.Figure:
    """Metric (y) against the swept value (x): the trend without timing noise."""
    figure = go.Figure(go.Scatter(
        x=[p.value for p in points], y=[p.metric_value for p in points], mode="lines+markers",
        hovertemplate=f"{value_name} %{{x}}<br>%{{y:.4f}}<extra></extra>"))
    figure.update_layout(title=f"Quality vs {value_name}", xaxis_title=value_name, yaxis_title=label, height=400,
                         margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def _show(points: list[SweepPoint], label: str, value_name: str, value_text, key: str) -> None:
    latency, parameter = st.columns(2)
    latency.plotly_chart(_latency_chart(points, label, value_text), width="stretch", key=f"{key}_chart")
    spread = latency_spread(points)
    if spread.is_noise:
        latency.warning(f"ms/query ranges only from {spread.low:.2f} to {spread.high:.2f} ms across these settings: "
                        "below this machine's timing noise, so the x position says nothing about cost. Read quality on "
                        "the right-hand chart.", icon=":material/info:")
    parameter.plotly_chart(_parameter_chart(points, label, value_name), width="stretch", key=f"{key}_trend")
    frame = sweep_frame(points)[["value", "metric_value", "ms_per_query"]]
    frame.columns = [value_name, label, "ms/query"]
    st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}_table",
                 column_config={label: st.column_config.NumberColumn(label, format="%.4f"),
                                "ms/query": st.column_config.NumberColumn("ms/query", format="%.2f")})


def _save_best(points: list[SweepPoint], base, label: str, key: str) -> None:
    """A form that writes the base profile with the best point's setting to profiles.toml."""
    best = best_point(points)
    suggested = f"{base.name}-{best.param.replace('_', '-')}-{best.value:g}"
    with st.form(f"{key}_save", border=False):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        name = left.text_input(f"Save the best point ({escape_markdown(best.param)} = {best.value:g}, {escape_markdown(label)} {best.metric_value:.4f}) "
                               "as a profile", value=suggested, key=f"{key}_save_name")
        if right.form_submit_button("Save as profile", icon=":material/save:"):
            try:
                upsert_profile(sel.workspace.profiles_file, point_profile(base, best, name.strip()))
            except WorkbenchError as exc:
                st.error(escape_markdown(str(exc)))
            else:
                st.success(f"Saved {escape_markdown(name.strip())} to profiles.toml: pick it in the sidebar, or edit it "
                           "on the Profiles page.")


def _run(kind: str, settings: tuple, sweep, *args) -> list[SweepPoint] | None:
    """Run a sweep once per settings and keep its points for later reruns of the page."""
    results = st.session_state.setdefault(RESULTS_KEY, {})
    try:
        with engine_progress(engine, "Running each setting over every judged query…"):
            results[kind] = (settings, sweep(*args))
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
        return None
    return results[kind][1]


def _stored(kind: str, settings: tuple) -> list[SweepPoint] | None:
    stored = st.session_state.get(RESULTS_KEY, {}).get(kind)
    return stored[1] if stored is not None and stored[0] == settings else None


def _points(kind: str, settings: tuple, button: str, enabled: bool, sweep, *args) -> list[SweepPoint] | None:
    """The points kept for these settings, or new ones when the run button is pressed."""
    points = _stored(kind, settings)
    if st.button(button, key=f"sweep_{kind}_run", type="primary", disabled=not enabled):  # markdown-safe: literal labels
        points = _run(kind, settings, sweep, *args)
    return points


def _base_profile(label: str, names: list[str], key: str, chosen: list[str]):
    """A choice among the profiles this sweep applies to, opening on the first one chosen in the sidebar."""
    preferred = [n for n in chosen if n in names]
    return st.selectbox(label, names, key=key, index=names.index(preferred[0]) if preferred else 0)  # markdown-safe: literal labels


sel, engine = page_engine()

st.title("Quality vs latency")
st.caption(f"**{escape_markdown(engine.dataset.name)}** · {len(engine.dataset.judged_queries):,} judged queries. Each point "
           "is the base profile with one parameter changed, run over every judged query; ms/query is retrieval time on "
           "this machine (index building and model loading excluded).")
metric_keys = [parse_metric(m).key for m in sel.metrics]
metric = st.selectbox("Metric", metric_keys, format_func=lambda key: parse_metric(key).label(), key="sweep_metric")
label = parse_metric(metric).label()
rerank_names = [n for n, p in engine.profiles.items() if p.kind == "rerank"]
hybrid_names = [n for n, p in engine.profiles.items() if p.kind == "hybrid" and len(p.members) == 2]
bm25_names = [n for n, p in engine.profiles.items() if p.kind == "bm25"]
pool_tab, weight_tab, bm25_tab = st.tabs(["Rerank pool depth", "Hybrid weight", "BM25 k1 / b"], key="sweep_tab",
                                        on_change="rerun")  # keyed: a run keeps the user on the tab they ran

with pool_tab:
    if not rerank_names:
        st.info("No rerank profile: add one to profiles.toml to sweep its pool depth.")
    else:
        base = engine.profile(_base_profile("Rerank profile", rerank_names, "sweep_pool_profile", sel.profile_names))
        st.caption(f"First stage **{escape_markdown(base.first_stage)}**, reranker {escape_markdown(base.reranker)}; "
                   f"its pool depth is {base.pool_depth:d}.")
        depths = st.multiselect("Pool depths", POOL_CHOICES, default=list(DEFAULT_POOL_DEPTHS), key="sweep_pool_depths")
        settings = (engine.dataset.name, base, tuple(sorted(depths)), metric)
        points = _points("pool", settings, "Run pool sweep", bool(depths), sweep_rerank_pool, engine, base, sorted(depths), metric)
        if points:
            _show(points, label, "pool depth", lambda v: f"pool {v}", "sweep_pool")
            _save_best(points, base, label, "sweep_pool")

with weight_tab:
    if not hybrid_names:
        st.info("No two-member hybrid profile: add one to profiles.toml to sweep its weight.")
    else:
        base = engine.profile(_base_profile("Hybrid profile", hybrid_names, "sweep_weight_profile", sel.profile_names))
        first, second = base.members
        st.caption(f"{escape_markdown(base.method)} fusion; weight w goes to **{escape_markdown(first)}**, "
                   f"1 - w to **{escape_markdown(second)}**.")
        weights = st.multiselect("Weights w", WEIGHT_CHOICES, default=[round(w, 2) for w in DEFAULT_WEIGHTS], key="sweep_weights")
        settings = (engine.dataset.name, base, tuple(sorted(weights)), metric)
        points = _points("weight", settings, "Run weight sweep", bool(weights), sweep_hybrid_weight, engine, base,
                         sorted(weights), metric)
        if points:
            _show(points, label, f"weight of {first}", lambda v: f"w={v:g}", "sweep_weight")
            _save_best(points, base, label, "sweep_weight")

with bm25_tab:
    if not bm25_names:
        st.info("No bm25 profile: add one to profiles.toml to sweep k1 or b.")
    else:
        base = engine.profile(_base_profile("BM25 profile", bm25_names, "sweep_bm25_profile", sel.profile_names))
        param = st.radio("Parameter", ("k1", "b"), horizontal=True, key="sweep_bm25_param")
        held = "b" if param == "k1" else "k1"
        st.caption(f"Analyzer {escape_markdown(base.analyzer)}, {escape_markdown(held)} held at {getattr(base, held):g}, "
                   f"{escape_markdown(base.length_norm)} length norms; every document is scored at each value.")
        values = st.multiselect(f"Values of {escape_markdown(param)}", BM25_CHOICES[param], default=list(DEFAULT_BM25_VALUES[param]),
                                key=f"sweep_bm25_{param}_values")
        settings = (engine.dataset.name, base, param, tuple(sorted(values)), metric)
        points = _points("bm25", settings, "Run BM25 sweep", bool(values), sweep_bm25, engine, base, param, sorted(values), metric)
        if points:
            _show(points, label, param, lambda v, p=param: f"{p}={v:g}", "sweep_bm25")
            _save_best(points, base, label, "sweep_bm25")
