"""Compare two runs: the queries they disagree on most, and for one query both top-k lists side by side.

State lives in the URL (``?a=…&b=…&qid=…&measure=…``): a link opens the same view, and the browser's
Back button returns to the previous query or pair (the URL wins over the widgets whenever it changed).
"""
from __future__ import annotations

import streamlit as st

from core.errors import WorkbenchError
from core.evaluation.run_diff import MEASURES, TOP_K, check_comparable, query_diffs, rank_queries, side_by_side
from ui.render import escape_markdown
from ui.side_by_side import document_body, document_header, query_markdown
from ui.state import get_choice, page_engine, run_choices

URL_KEYS = ("a", "b", "qid", "measure")
WRITTEN = "compare_runs_written"  # the URL state this page last wrote; a different URL came from Back or a link
NONE_SELECTED = "(none)"


@st.cache_data(show_spinner="Comparing the two runs…", max_entries=16)
def _diffs(key: tuple, _dataset, _run_a, _run_b, k: int):
    return query_diffs(_dataset, _run_a, _run_b, k)


sel, engine = page_engine()
dataset = engine.dataset
st.title("Compare two runs")
choices = run_choices(engine, sel)
if len(choices) < 2:
    st.info("Pick at least two profiles in the sidebar, or save or import runs of this dataset on the Leaderboard.")
    st.stop()
keys = list(choices)

url = tuple(st.query_params.get(k) for k in URL_KEYS)
if url != st.session_state.get(WRITTEN):  # first visit, a link, or Back/Forward: the URL decides
    wanted_a, wanted_b, wanted_qid, wanted_measure = url
    st.session_state["compare_runs_a"] = wanted_a if wanted_a in choices else keys[0]
    st.session_state["compare_runs_b"] = wanted_b if wanted_b in choices else keys[1]
    for side, wanted, shown in (("A", wanted_a, keys[0]), ("B", wanted_b, keys[1])):
        if wanted is not None and wanted not in choices:  # a typo, an old link, ../path: said, never silently swapped
            # markdown-safe: side is the literal "A" or "B"; the run, dataset and label are escaped
            st.warning(f"Run {side} of the link, {escape_markdown(wanted)}, is unknown: it is neither a profile picked in "
                       f"the sidebar nor a saved run of {escape_markdown(dataset.name)}. Showing "
                       f"{escape_markdown(choices[shown])} as {side} instead.")
    st.session_state["compare_runs_measure"] = wanted_measure if wanted_measure in MEASURES else "ndcg_gap"
    st.session_state["compare_runs_wanted_qid"] = wanted_qid
for widget, fallback in (("compare_runs_a", keys[0]), ("compare_runs_b", keys[1])):
    if st.session_state.get(widget) not in choices:
        st.session_state[widget] = fallback

left, middle, right, narrow = st.columns([2, 2, 2, 1])
key_a = left.selectbox("Run A", keys, key="compare_runs_a", format_func=choices.get)
key_b = middle.selectbox("Run B", keys, key="compare_runs_b", format_func=choices.get)
measure = right.selectbox("Rank queries by", list(MEASURES), key="compare_runs_measure", format_func=lambda m: MEASURES[m][0])
k = int(narrow.number_input("top k", min_value=2, max_value=100, value=TOP_K, step=1, key="compare_runs_k",
                            help="Length of the two lists shown and compared by Kendall's τ and RBO."))
if key_a == key_b:
    st.info("Pick two different runs as A and B.")
    st.stop()
try:
    run_a, run_b = get_choice(engine, key_a), get_choice(engine, key_b)
    warnings = check_comparable(run_a, run_b, dataset)
    diffs = _diffs((dataset.name, dataset.corpus_hash, key_a, key_b, run_a.name, run_b.name), dataset, run_a, run_b, k)
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
for warning in warnings:
    st.warning(escape_markdown(warning))
ranked = rank_queries(diffs, measure)
ids = list(ranked.index)

wanted_qid = st.session_state.pop("compare_runs_wanted_qid", None)
if wanted_qid in ids:
    st.session_state["compare_runs_qid"] = wanted_qid
if st.session_state.get("compare_runs_qid") not in ids:
    st.session_state["compare_runs_qid"] = ids[0]

queries_side, lists_side = st.columns([2, 5])
with queries_side:
    st.caption(f"{len(ranked)} queries, most interesting first. A: **{escape_markdown(run_a.name)}**, "
               f"B: **{escape_markdown(run_b.name)}**. Select a row to open it.")
    shown = ranked[["query", "delta", "rank_a", "rank_b", "tau", "rbo"]]
    picked = st.dataframe(shown, on_select="rerun", selection_mode="single-row", key=f"compare_runs_table|{measure}|{key_a}|{key_b}",
                          height=560, width="stretch",
                          column_config={"_index": st.column_config.TextColumn("query id"),
                                         "query": st.column_config.TextColumn("query", width=150),
                                         "delta": st.column_config.NumberColumn("Δ nDCG@10", format="%+.3f",
                                                                                help="B − A"),
                                         "rank_a": st.column_config.NumberColumn("A pos.", format="%d",
                                                                                 help="Rank of the positive in A; None: not retrieved"),
                                         "rank_b": st.column_config.NumberColumn("B pos.", format="%d"),
                                         "tau": st.column_config.NumberColumn("τ", format="%.2f",
                                                                              help="Kendall's τ over the documents both top-k lists hold"),
                                         "rbo": st.column_config.NumberColumn("RBO", format="%.2f", help="Rank-biased overlap, p = 0.9")})
    rows = picked.selection.rows
    table_key = f"compare_runs_rows|{measure}|{key_a}|{key_b}"
    if rows and rows[0] < len(ids) and st.session_state.get(table_key) != rows[0]:
        st.session_state["compare_runs_qid"] = ids[rows[0]]
    st.session_state[table_key] = rows[0] if rows else None

with lists_side:
    query_id = st.selectbox("Query", ids, key="compare_runs_qid",
                            format_func=lambda q: f"{q} · Δ {ranked.at[q, 'delta']:+.3f} · {ranked.at[q, 'query']}")
    row = ranked.loc[query_id]
    left_docs, right_docs = side_by_side(run_a, run_b, dataset.qrels, query_id, k)
    follow_options = [NONE_SELECTED, *dict.fromkeys(d.doc_id for d in [*left_docs, *right_docs])]
    if st.session_state.get(f"compare_runs_follow|{query_id}") not in follow_options:
        st.session_state[f"compare_runs_follow|{query_id}"] = NONE_SELECTED
    stats = st.columns(4)
    stats[0].metric("nDCG@10 of B (Δ vs A)", f"{row['ndcg_b']:.3f}", f"{row['delta']:+.3f}",
                    help=f"A: {row['ndcg_a']:.3f}")
    stats[1].metric("positive's rank A → B",
                    " → ".join("—" if r != r else str(int(r)) for r in (row["rank_a"], row["rank_b"])),
                    help="Rank of the best-ranked relevant document; — : not retrieved")
    stats[2].metric(f"Kendall's τ (top {k:d})", "—" if row["tau"] != row["tau"] else f"{row['tau']:.3f}",
                    help="Over the documents both lists hold; — : fewer than two shared")
    stats[3].metric(f"RBO p=0.9 (top {k:d})", f"{row['rbo']:.3f}")
    follow = st.selectbox("Follow a document in both lists", follow_options, key=f"compare_runs_follow|{query_id}",
                          help="Marks the document as followed wherever it appears in the two lists.")
    selected = None if follow == NONE_SELECTED else follow
    query = dataset.query(query_id) if query_id in dataset.query_index else None
    query_text = query.text if query is not None else ""
    texts = {doc_id: dataset.documents[dataset.doc_index[doc_id]].full_text
             for doc_id in follow_options[1:] if doc_id in dataset.doc_index}
    shared_with = texts.get(selected) if selected else texts.get(left_docs[0].doc_id) if left_docs else None
    about = f"the followed document {selected}" if selected else f"A's first document" if left_docs else "no document"
    st.caption(f"Query {escape_markdown(query_id)} — identifiers it shares with {escape_markdown(about)} are marked")
    with st.container(border=True, height=min(60 + 24 * len(query_text.splitlines()), 300)):
        st.markdown(query_markdown(query_text, shared_with))  # markdown-safe: highlighted_markdown escapes every span
    for column, title, documents in zip(st.columns(2), (f"A · {run_a.name}", f"B · {run_b.name}"), (left_docs, right_docs)):
        with column:
            st.markdown(f"**{escape_markdown(title)}**")
            if not documents:
                st.caption("No documents retrieved.")
            for doc in documents:
                with st.container(border=True):
                    st.markdown(document_header(doc, doc.doc_id == selected))  # markdown-safe: ui.side_by_side escapes the id
                    st.markdown(document_body(query_text, texts.get(doc.doc_id, "")))  # markdown-safe: highlighted_markdown
    st.caption("Arrows: how far B moved a document against A (on A's side: where B put A's document). "
               "\"new in B\": A never retrieved it; \"dropped\": B never retrieved it. Green badge: a positive. "
               "Highlighted words: identifiers shared with the query.")

written = (key_a, key_b, query_id, measure)
st.session_state[WRITTEN] = written
st.query_params.update(dict(zip(URL_KEYS, written)))
