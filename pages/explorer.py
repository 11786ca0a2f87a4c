"""Query explorer: one query under every chosen profile, side by side, with the relevant document's rank.

Link here with ``?qid=<query id>`` to open a benchmark query. Pasted text is never put in the URL.
"""
from __future__ import annotations

import streamlit as st

from core.errors import QueryError, WorkbenchError
from core.retrieval.explore import positive_ranks, query_label, rank_summary, ranked_documents, search_benchmark_query
from core.retrieval.highlight import highlight_spans
from core.retrieval.engine import DEFAULT_DEPTH, MAX_QUERY_CHARS, SearchResult
from ui.render import code_language, escape_markdown, highlighted_markdown, preview_text
from ui.progress import engine_progress
from ui.state import page_engine, page_params

RELEVANT_MARK = " ✅"  # beside a top document that is judged relevant

PASTE, BENCHMARK = "Paste code", "Benchmark query"
MODE_KEY, QID_KEY, TEXT_KEY = "explorer_mode", "explorer_qid", "explorer_text"
SUBMITTED_KEY = "explorer_submitted"  # the pasted text last searched
SEEN_LINK_KEY = "explorer_seen_qid"  # the ?qid= value already applied, so a link opens its query once


TOP_PREVIEW_CHARS = 300  # of the top document, shown as wrapped text above each profile's table


def _per_row(profiles: int) -> int:
    """Profile columns per row: at most two side by side, so a docstring keeps a readable width at 1024 px."""
    return min(profiles, 2)


sel, engine = page_engine()
dataset = engine.dataset

st.title("Query explorer")
linked = st.query_params.get("qid")
if linked and linked != st.session_state.get(SEEN_LINK_KEY) and linked in dataset.query_index:
    st.session_state[MODE_KEY] = BENCHMARK
    st.session_state[QID_KEY] = linked
elif linked and linked not in dataset.query_index:
    st.warning(f"The link names query {escape_markdown(linked)}, which {escape_markdown(dataset.name)} does not have; "
               "pick a benchmark query below or paste code.")
    linked = None
st.session_state[SEEN_LINK_KEY] = linked
if st.session_state.get(QID_KEY) not in dataset.query_index:
    st.session_state.pop(QID_KEY, None)  # a query of another dataset

mode = st.radio("Query", [PASTE, BENCHMARK], key=MODE_KEY, horizontal=True, label_visibility="collapsed")
query_text, positives, query_id = None, [], None
if mode == PASTE:
    page_params(qid=None)
    st.session_state[SEEN_LINK_KEY] = None
    # a form: Ctrl+Enter (Cmd+Enter) in its text area submits it, as the Search button does
    with st.form("explorer_query", border=False):
        text = st.text_area("Code query", key=TEXT_KEY, height=180,
                            placeholder="def read_json(path):\n    with open(path) as handle:\n        return json.load(handle)")
        button, hint = st.columns([1, 5], vertical_alignment="center")
        searched = button.form_submit_button("Search", type="primary", key="explorer_search")
        hint.caption("or press Ctrl+Enter (Cmd+Enter on a Mac) in the text area")
    if searched:
        st.session_state[SUBMITTED_KEY] = text
        if not (text or "").strip():
            st.session_state.pop(SUBMITTED_KEY)
            st.warning("The query is empty: paste some code or type a few words, then press Search.")
    query_text = st.session_state.get(SUBMITTED_KEY)
    if query_text is not None and query_text != text:
        st.caption("Showing results for the text last searched; press **Search** to search the edited text.")
else:
    query_id = st.selectbox(f"Benchmark query ({len(dataset.queries):,})", [q.id for q in dataset.queries], key=QID_KEY,
                            format_func=lambda qid: query_label(dataset.query(qid)))
    page_params(qid=query_id)
    st.session_state[SEEN_LINK_KEY] = query_id
    query = dataset.query(query_id)
    st.code(query.text, language=code_language(dataset.query_language(query_id), query.text),
            height=220 if query.text.count("\n") > 10 else "content")
    query_text = query.text
    positives = dataset.qrels.positives(query_id)
    if not positives:
        st.caption("This query has no relevant document in the qrels.")

k = st.slider("Documents shown per profile (top k)", 5, 50, 10, key="explorer_k")
if not sel.profile_names:
    st.info("Pick one or more profiles in the sidebar.")
    st.stop()
if query_text is None:
    st.info("Paste a code query and press **Search**, or pick a benchmark query.")
    st.stop()


def _search(name: str) -> SearchResult:
    with engine_progress(engine, f"Preparing {name}…"):
        engine.warm([name])  # open indexes and load models first (a bar while they build), so the latency is the search alone
    if query_id is not None:
        return search_benchmark_query(engine, name, query_id, DEFAULT_DEPTH)
    return engine.search(name, query_text, DEFAULT_DEPTH)


names = list(sel.profile_names)
per_row = _per_row(len(names))
for start in range(0, len(names), per_row):
    for position, (column, name) in enumerate(zip(st.columns(per_row, border=True), names[start:start + per_row]), start):
        with column:
            st.subheader(escape_markdown(name), anchor=False)
            try:
                result = _search(name)
            except QueryError as exc:
                st.warning(escape_markdown(str(exc)))
                continue
            except WorkbenchError as exc:
                st.error(escape_markdown(str(exc)))
                continue
            if result.truncated:
                st.caption(f"The query was cut to its first {MAX_QUERY_CHARS:,} characters.")
            ranks = positive_ranks(result.ranking, positives)
            latency_help = ("mean time per query of this profile's run over the judged queries" if query_id is not None
                            else "time to retrieve this query (indexes and models already loaded)")
            if ranks:
                best = min((r for r in ranks.values() if r is not None), default=None)
                latency, found = st.columns(2)
                found.metric("Relevant at", str(best) if best is not None else f"> {DEFAULT_DEPTH}",
                             help="; ".join(f"{escape_markdown(doc_id)}: {escape_markdown(rank_summary(rank, DEFAULT_DEPTH))}" for doc_id, rank in ranks.items()))
            else:
                latency = st.container()
            latency.metric("Latency", f"{result.seconds * 1000:.1f} ms", help=latency_help)  # markdown-safe: literal help texts
            table = ranked_documents(dataset, result.ranking, query_text, k, positives)
            if len(table):
                top = table.iloc[0]
                with st.container(key=f"explorer_top_{position}"):
                    st.markdown(f"**Top document** · {escape_markdown(top['doc id'])}{escape_markdown(RELEVANT_MARK if top['relevant'] else '')}  \n"
                                + escape_markdown(preview_text(top["document"], TOP_PREVIEW_CHARS)))
            # Rows taller than 4rem let the grid wrap text: about four lines of each docstring show in its row.
            st.dataframe(table, hide_index=True, width="stretch", key=f"explorer_table_{name}", row_height=88,
                         column_order=["rank", "relevant", "document", "score", "shared", "doc id"],
                         column_config={"relevant": st.column_config.TextColumn("✅", width=34, help="relevant document"),
                                        "rank": st.column_config.NumberColumn("#", width=34),
                                        "document": st.column_config.TextColumn("document", width="medium",
                                                                                help="click a cell to read all of it"),
                                        "shared": st.column_config.TextColumn("shared", width="small",
                                                                              help="identifiers also in the query"),
                                        "score": st.column_config.NumberColumn("score", format="%.4f", width=70),
                                        "doc id": st.column_config.TextColumn("doc id", width="small")})
            with st.expander("Full text, shared identifiers highlighted"):
                for row in table.to_dict("records"):
                    mark = " ✅" if row["relevant"] else ""
                    shared = [token for token in row["shared"].split(", ") if token]
                    st.markdown(f"**{row['rank']}.** {escape_markdown(row['doc id'])}{mark}  \n"  # markdown-safe: rank is an int, mark a literal
                                + highlighted_markdown(highlight_spans(row["document"], shared)))
