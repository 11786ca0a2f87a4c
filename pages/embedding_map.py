"""Embedding map: queries and documents in 2-D under a dense model, queries coloured by how a profile ranks their positive."""
from __future__ import annotations

import streamlit as st

from core.errors import WorkbenchError
from core.evaluation.embedding_map import MAX_MAP_DOCUMENTS, dense_model, embedding_map, has_vectors, map_points
from ui.charts import embedding_map_figure
from ui.render import escape_markdown
from ui.state import get_choice, get_evaluation, page_engine, run_choices

QUERY_KEY = "map_query"


def _pick_from_chart() -> None:
    """A click or lasso on a query selects it (the first query among the points picked)."""
    points = st.session_state["map_chart"].selection.get("points", [])
    ids = [str(p.get("customdata")) for p in points if p.get("customdata") is not None]
    queries = [q for q in ids if q in st.session_state.get("map_query_ids", ())]
    if queries:
        st.session_state[QUERY_KEY] = queries[0]


sel, engine = page_engine()
dataset = engine.dataset
st.title("Embedding map")
st.caption("Documents (grey) and judged queries projected to 2-D from a dense model's embeddings; queries coloured by "
           "the rank of their positive under the chosen run (a profile or a saved run, imported TREC files among them). Click a query to draw the line to its positive.")
profiles = list(engine.profiles)
left, middle, right, last = st.columns([2, 1, 1, 1])
mappable = [p for p in [*sel.profile_names, *profiles] if p in engine.profiles and has_vectors(engine.profiles, p)]
profile = left.selectbox("Profile (its dense model places the points)", profiles,
                         index=profiles.index(mappable[0]) if mappable else 0, key="map_profile")
colourings = {"": f"{profile} (the same profile)", **{name: name for name in profiles if name != profile},
              **{key: label for key, label in run_choices(engine, sel).items() if key not in engine.profiles}}
colouring = left.selectbox("Run (colours the queries)", list(colourings), format_func=colourings.__getitem__,
                           index=list(colourings).index(sel.run_ids[0]) if sel.run_ids and sel.run_ids[0] in colourings else 0,
                           key="map_run", help="Any profile or saved run of this dataset, imported TREC runs among them.")
method = middle.radio("Projection", ["pca", "umap"], format_func=lambda m: m.upper(), horizontal=True, key="map_method",
                      help="PCA: seconds. UMAP (umap-learn): a minute or more the first time per dataset and model.")
colour_by = right.radio("Colour", ["rank", "hit"], format_func={"rank": "positive's rank", "hit": "hit@k"}.get,
                        horizontal=True, key="map_colour")
k = last.number_input("k", min_value=1, max_value=100, value=10, key="map_k")
try:
    model, backend = dense_model(engine.profiles, profile)
    with st.spinner(f"Projecting {min(len(dataset.documents), MAX_MAP_DOCUMENTS):,} documents and {len(dataset.judged_queries):,} queries "
                    f"({escape_markdown(method.upper())}; cached after the first time)…"):
        projection = embedding_map(engine, model, backend, method)
        coloured = get_choice(engine, colouring or profile)
        evaluation = get_evaluation(engine, coloured, sel.metrics)
    points = map_points(projection, dataset, evaluation, int(k))
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

query_ids = list(projection.query_ids)
st.session_state["map_query_ids"] = frozenset(query_ids)
if st.session_state.get(QUERY_KEY) not in ["", *query_ids]:
    st.session_state[QUERY_KEY] = ""
selected = st.session_state.get(QUERY_KEY) or None
st.caption(f"{len(points):,} points · model {escape_markdown(model)} ({escape_markdown(backend)}) · {escape_markdown(method.upper())} · colours from "
           f"{escape_markdown(coloured.name)}")
if projection.sampled:
    st.caption(f"The corpus holds {projection.corpus_documents:,} documents: the map draws {len(projection.doc_ids):,} of them, "
               f"every judged positive and the rest spread evenly over the corpus.")
st.plotly_chart(embedding_map_figure(points, colour_by, int(k), selected), width="stretch", key="map_chart",
                on_select=_pick_from_chart, selection_mode="points")
left, right = st.columns([3, 1])
choice = left.selectbox("Query", ["", *query_ids], key=QUERY_KEY,
                        format_func=lambda q: "(click a query on the map, or pick one)" if not q else q)
if choice:
    row = points[(points["kind"] == "query") & (points["id"] == choice)].iloc[0]
    rank = "not retrieved" if row["positive_rank"] != row["positive_rank"] else f"rank {int(row['positive_rank'])}"
    st.markdown(f"**{escape_markdown(choice)}**: {escape_markdown(row['hover'])}  \npositive "
                f"**{escape_markdown(row['positive_id'])}** at {escape_markdown(rank)} under {escape_markdown(coloured.name)}")
    if right.button("Open in the query explorer", icon=":material/search:", key="map_open", type="primary"):
        st.switch_page("pages/explorer.py", query_params={"qid": choice})
