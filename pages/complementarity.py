"""Complementarity: which queries each profile solves that the others do not, the oracle and what fusion leaves behind."""
from __future__ import annotations

import streamlit as st

from core.errors import WorkbenchError
from core.evaluation.complementarity import complementarity, fusions_of, oracle_comparison, weighted_fusions_of
from core.evaluation.metrics import parse_metric
from core.evaluation.sweep import sweep_frame, sweep_hybrid_weight
from core.retrieval.profiles import HybridProfile, RerankProfile
from ui.charts import sweep_against_oracle, upset_chart
from ui.links import breakdown_params
from ui.render import escape_markdown
from ui.state import get_evaluation, get_run, page_engine

SWEEPS_KEY = "complementarity_sweeps"

sel, engine = page_engine()
st.title("Complementarity")
st.caption("Which queries each profile solves (a relevant document in its top k) that no other does, what the oracle — "
           "per query the best member — reaches, and how much of it the fusions take.")
singles = [n for n in sel.profile_names if not isinstance(engine.profiles[n], (HybridProfile, RerankProfile))]
default = singles if len(singles) >= 2 else list(sel.profile_names)
left, middle, right = st.columns([3, 1, 1])
members = left.multiselect("Profiles to compare", list(engine.profiles), default=default, key="complementarity_members")
k = middle.number_input("k (hit@k)", min_value=1, max_value=100, value=10, step=1, key="complementarity_k")
metrics = list(dict.fromkeys([*sel.metrics]))
metric = right.selectbox("Oracle metric", metrics, format_func=lambda m: parse_metric(m).label(), key="complementarity_metric")
if len(members) < 2:
    st.info("Pick two or more profiles to compare.")
    st.stop()

hit = f"hit@{int(k)}"
fusions = fusions_of(engine.profiles, members)
try:
    with st.spinner(f"Running {len(members) + len(fusions)} profile(s)…"):
        wanted = tuple(dict.fromkeys([hit, metric]))
        runs = {name: get_run(engine, name) for name in [*members, *fusions]}
        evaluations = {name: get_evaluation(engine, run, wanted) for name, run in runs.items()}
    solved = complementarity([evaluations[m] for m in members], hit)
    comparison = oracle_comparison([evaluations[m] for m in members], [evaluations[f] for f in fusions], metric)
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

queries = len(solved.solved)
st.subheader(f"Who solves which queries at hit@{int(k):d}")
groups = solved.summary()
cells = st.columns(len(groups))
for cell, group in zip(cells, groups):
    cell.metric(escape_markdown(group.label), f"{group.queries:d} / {queries:d}")
    if group.queries:
        cell.page_link("pages/breakdown.py", label="open in the breakdown", icon=":material/table_rows:",
                       query_params=breakdown_params(engine.dataset.name, members, group.query_ids, members[0], members[1]))
intersections = solved.intersections()
table = intersections.drop(columns="query_ids").copy()
table.insert(0, "solved by", [" + ".join(p for p in members if row[p]) or "none" for _, row in intersections.iterrows()])
chart, listing = st.columns([3, 2])
chart.plotly_chart(upset_chart(intersections, members), width="stretch", key="complementarity_upset")
listing.dataframe(table[["solved by", "queries"]], hide_index=True, width="stretch", key="complementarity_table")
combination = listing.selectbox("Open one combination in the breakdown", list(table["solved by"]), key="complementarity_pick")
picked = intersections.iloc[list(table["solved by"]).index(combination)]
listing.page_link("pages/breakdown.py", label=f"{escape_markdown(combination)}: {int(picked['queries']):d} queries", icon=":material/table_rows:",
                  query_params=breakdown_params(engine.dataset.name, members, picked["query_ids"], members[0], members[1]))

label = parse_metric(metric).label()
st.subheader(f"The oracle on {escape_markdown(label)}")
frame = comparison.frame()
st.dataframe(frame, width="stretch", key="complementarity_oracle",
             column_config={comparison.metric: st.column_config.NumberColumn(label, format="%.4f"),
                            "oracle − run": st.column_config.NumberColumn(format="%+.4f")})
left, middle, right = st.columns(3)
left.metric(f"Oracle {escape_markdown(label)}", f"{comparison.oracle:.4f}", help="Per query, the best member's value, averaged.")
best_member = comparison.best_member
middle.metric(f"Best member: {escape_markdown(best_member[0])}", f"{best_member[1]:.4f}")
if comparison.best_fusion is None:
    right.metric("Left on the table", "—")
    st.caption(f"No hybrid profile fuses only {escape_markdown(', '.join(members))}: add one in profiles.toml to compare.")
else:
    right.metric(f"Left on the table (oracle − {escape_markdown(comparison.best_fusion[0])})", f"{comparison.left_on_the_table:.4f}")

st.subheader("Weighted fusion: the weight against the oracle")
sweepable = weighted_fusions_of(engine.profiles, members)
if not sweepable:
    st.caption("No two-member weighted hybrid over these profiles: the sweep needs one (hybrid-weighted fuses bm25-code "
               "and dense-minilm).")
else:
    base_name = st.selectbox("Weighted hybrid", sweepable, key="complementarity_sweep_base")
    base = engine.profiles[base_name]
    sweeps = st.session_state.setdefault(SWEEPS_KEY, {})
    sweep_key = f"{engine.dataset.name}:{engine.dataset.corpus_hash}:{base_name}:{metric}"
    if st.button("Run the weight sweep (11 weights)", key="complementarity_sweep", icon=":material/tune:"):
        try:
            with st.spinner("Sweeping the weight…"):
                sweeps[sweep_key] = sweep_frame(sweep_hybrid_weight(engine, base, metric=metric))
        except WorkbenchError as exc:
            st.error(escape_markdown(str(exc)))
    if sweep_key in sweeps:
        member_means = [(m, mean) for m, mean in comparison.members if m in base.members]
        oracle = oracle_comparison([evaluations[m] for m in base.members], [], metric).oracle
        st.plotly_chart(sweep_against_oracle(sweeps[sweep_key], oracle, member_means, label, base.members[0]),
                        width="stretch", key="complementarity_sweep_chart")
        best = sweeps[sweep_key].loc[sweeps[sweep_key]["metric_value"].idxmax()]
        st.caption(f"Best weight {best['value']:g}: {escape_markdown(label)} {best['metric_value']:.4f}, "
                   f"{oracle - best['metric_value']:.4f} below the oracle of {escape_markdown(' + '.join(base.members))}.")
