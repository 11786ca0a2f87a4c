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
from ui.state import get_choice, get_evaluation, get_run, page_engine, run_choices

SWEEPS_KEY = "complementarity_sweeps"

sel, engine = page_engine()
st.title("Complementarity")
st.caption("Which queries each profile solves (a relevant document in its top k) that no other does, what the oracle — "
           "per query the best member — reaches, and how much of it the fusions take.")
singles = [n for n in sel.profile_names if not isinstance(engine.profiles[n], (HybridProfile, RerankProfile))]
choices = {**{name: name for name in engine.profiles}, **run_choices(engine, sel)}  # profiles, then saved (imported) runs
default = [*(singles if len(singles) >= 2 else sel.profile_names), *sel.run_ids]
left, middle, right = st.columns([3, 1, 1])
keys = left.multiselect("Runs to compare", list(choices), default=[key for key in default if key in choices],
                        format_func=choices.__getitem__, key="complementarity_members",
                        help="Profiles, and saved runs (imported TREC files among them) of this dataset.")
k = middle.number_input("k (hit@k)", min_value=1, max_value=100, value=10, step=1, key="complementarity_k")
metrics = list(dict.fromkeys([*sel.metrics]))
metric = right.selectbox("Oracle metric", metrics, format_func=lambda m: parse_metric(m).label(), key="complementarity_metric")
if len(keys) < 2:
    st.info("Pick two or more runs to compare.")
    st.stop()

hit = f"hit@{int(k)}"
fusions = fusions_of(engine.profiles, [key for key in keys if key in engine.profiles])
try:
    with st.spinner(f"Running {len(keys) + len(fusions)} run(s)…"):
        wanted = tuple(dict.fromkeys([hit, metric]))
        runs = {key: get_choice(engine, key) for key in keys} | {name: get_run(engine, name) for name in fusions}
        evaluations = {key: get_evaluation(engine, run, wanted) for key, run in runs.items()}
    members = [runs[key].name for key in keys]  # a saved run by its label, ``name [run id]``
    evaluations |= {runs[key].name: evaluations[key] for key in keys}
    profiles = [key for key in keys if key in engine.profiles]  # what a breakdown link can name as profiles
    saved = [key for key in keys if key not in engine.profiles]
    solved = complementarity([evaluations[m] for m in keys], hit)
    comparison = oracle_comparison([evaluations[m] for m in keys], [evaluations[f] for f in fusions], metric)
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
                       query_params=breakdown_params(engine.dataset.name, profiles, group.query_ids, members[0], members[1], runs=saved))
intersections = solved.intersections()
table = intersections.drop(columns="query_ids").copy()
table.insert(0, "solved by", [" + ".join(p for p in members if row[p]) or "none" for _, row in intersections.iterrows()])
chart, listing = st.columns([3, 2])
chart.plotly_chart(upset_chart(intersections, members), width="stretch", key="complementarity_upset")
listing.dataframe(table[["solved by", "queries"]], hide_index=True, width="stretch", key="complementarity_table")
combination = listing.selectbox("Open one combination in the breakdown", list(table["solved by"]), key="complementarity_pick")
picked = intersections.iloc[list(table["solved by"]).index(combination)]
listing.page_link("pages/breakdown.py", label=f"{escape_markdown(combination)}: {int(picked['queries']):d} queries", icon=":material/table_rows:",
                  query_params=breakdown_params(engine.dataset.name, profiles, picked["query_ids"], members[0], members[1], runs=saved))

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
