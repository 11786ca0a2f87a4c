"""Failure cases: the queries a profile misses at k, what outranked their positive, and the user's tag for each."""
import streamlit as st

from core.errors import WorkbenchError
from core.evaluation.failures import dense_model_of, semantic_reading, explain_failure, find_failures
from core.evaluation.tags import REASONS, load_tags, remove_tag, save_tag, tags_frame
from ui.render import code_language, escape_markdown
from ui.state import ARRIVED_KEY, current_selection, get_engine, page_params, selected_runs


def _rank_text(rank: int | None) -> str:
    return "not retrieved" if rank is None else str(rank)


st.title("Failure cases")
sel = current_selection()
if sel is None:
    st.stop()
if not sel.profile_names and not sel.run_ids:
    st.info("Select at least one profile (or saved run) in the sidebar.")
    st.stop()
try:
    engine = get_engine(sel)
    runs = {run.name: run for run in selected_runs(engine, sel)}  # profiles (with a progress bar), then saved (imported) runs
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
profiles = list(runs)
if st.session_state.get("failures_profile") not in profiles:
    wanted = st.query_params.get("profile")
    st.session_state["failures_profile"] = wanted if wanted in profiles else profiles[0]

left, right = st.columns([3, 1])
profile = left.selectbox("Profile", profiles, key="failures_profile")
k = right.number_input("k", min_value=1, max_value=100, value=10, step=1, key="failures_k",
                       help="A query fails when none of its relevant documents is in the top k.")
try:
    dataset = engine.dataset
    failures = find_failures(dataset, runs[profile], int(k))
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

book = load_tags(sel.workspace)
for problem in book.problems:
    st.warning(escape_markdown(problem))
judged = len(dataset.judged_queries)
st.metric(f"Queries failing at k={k}", f"{len(failures)} of {judged}",  # markdown-safe: k is a slider int
          help="No relevant document in the top k; worst first (not retrieved, then deepest).")
if not failures:
    st.success(f"{escape_markdown(profile)} finds a relevant document in the top {k:d} for every query.")
    page_params(profile=profile, qid=None)
else:
    tagged = {tag.query_id: tag.reason for tag in book.tags if tag.dataset == dataset.name and tag.profile == profile}
    st.dataframe([{"query_id": f.query_id, "positive rank": _rank_text(f.positive_rank), "language": f.language,
                   "query": f.preview, "tag": tagged.get(f.query_id, "")} for f in failures],
                 column_config={"query": st.column_config.TextColumn(width="large")},
                 hide_index=True, width="stretch", height=min(38 + 35 * len(failures), 320), key="failures_table")

    ids = [f.query_id for f in failures]
    by_id = {f.query_id: f for f in failures}
    if st.session_state.get("failures_qid") not in ids:
        wanted = st.query_params.get("qid")
        st.session_state["failures_qid"] = wanted if wanted in ids else ids[0]
        if wanted and wanted not in ids and st.session_state.get(ARRIVED_KEY):
            st.warning(f"The link names query {escape_markdown(wanted)}, which is not among {escape_markdown(profile)}'s "
                       f"failures at k={k:d} on {escape_markdown(dataset.name)}; showing the worst failure instead.")
    query_id = st.selectbox("Failure", ids, key="failures_qid",
                            format_func=lambda q: f"{q} · rank {_rank_text(by_id[q].positive_rank)} · {by_id[q].preview}")
    page_params(profile=profile, qid=query_id)
    others = [runs[name] for name in profiles if name != profile]
    explanation = explain_failure(dataset, runs[profile], query_id, int(k), others)

    st.subheader(f"Query {escape_markdown(query_id)}")
    st.code(explanation.query.text, language=code_language(explanation.query.language, explanation.query.text), wrap_lines=True)

    positive_side, evidence_side = st.columns(2)
    with positive_side:
        for positive in explanation.positives:
            st.markdown(f"**Positive** · rank **{_rank_text(positive.rank)}** · grade {positive.grade:d}")  # markdown-safe: a rank
            st.text(f"id: {positive.document.id}")
            st.code(positive.document.full_text, language=code_language(positive.document.language, positive.document.full_text),
                    wrap_lines=True)
            st.caption("Query terms it shares")
            st.text(", ".join(positive.shared_terms) or "none")
    with evidence_side:
        st.markdown("**Positive's rank under the other profiles**")
        if explanation.other_ranks:
            st.dataframe([{"profile": o.run_name, "positive rank": _rank_text(o.rank)} for o in explanation.other_ranks],
                         hide_index=True, width="stretch", key="failures_other_ranks")
        else:
            st.caption("Select more profiles in the sidebar to compare.")
        st.markdown("**Query terms the positive lacks** (but documents above it have)")
        st.text(", ".join(explanation.terms_positive_lacks) or "none")
        st.markdown("**Suggested reasons** (heuristics: you decide)")
        for suggestion in explanation.suggestions:
            st.text(f"{suggestion.reason}: {suggestion.detail}")
        dense = dense_model_of(engine.profile(profile), engine.profiles)
        reading = None
        if dense is not None:
            try:
                reading = semantic_reading(engine, explanation, *dense)
            except WorkbenchError as exc:
                st.warning(escape_markdown(str(exc)))
        if reading is not None:
            st.markdown(f"**Semantic reading** ({escape_markdown(reading.model)} embeddings)")
            cells = st.columns(3)
            cells[0].metric("Positive cosine", f"{reading.positive_cosine:.3f}", help="query · best positive")
            cells[1].metric(f"Rank {reading.distractor_rank:d} cosine", f"{reading.distractor_cosine:.3f}",
                            help=f"query · {escape_markdown(reading.distractor_id)}, the document above the positive closest to the query")
            cells[2].metric("Margin", f"{reading.margin:+.3f}", help="how much closer the distractor is than the positive")
            for hint in reading.hints:
                st.text(f"{hint.reason}: {hint.detail}")
        elif not explanation.suggestions:
            st.caption("No heuristic fits this case.")

    st.subheader(f"Ranked above the positive (top {len(explanation.outranking)})")
    if explanation.outranking:
        st.dataframe([{"rank": d.rank, "doc_id": d.document.id, "shared terms": ", ".join(d.shared_terms),
                       "terms the positive lacks": ", ".join(d.terms_positive_lacks),
                       "overlap": d.jaccard, "text": d.document.full_text} for d in explanation.outranking],
                     column_config={"rank": st.column_config.NumberColumn(width=50),
                                    "text": st.column_config.TextColumn(width="large"),
                                    "overlap": st.column_config.ProgressColumn(
                                        format="percent", min_value=0.0, max_value=1.0, width="small",
                                        help="Jaccard overlap of code tokens with the positive's text")},
                     hide_index=True, width="stretch", key="failures_above")
        by_rank = {d.rank: d for d in explanation.outranking}
        shown_rank = st.selectbox("Read one beside the positive", list(by_rank), key=f"failures_read|{query_id}",
                                  format_func=lambda r: f"rank {r} · {by_rank[r].document.id} · "
                                                        f"{len(by_rank[r].shared_terms)} shared terms"
                                                        f"{' · near-duplicate' if by_rank[r].near_duplicate else ''}")
        above_side, positive_again = st.columns(2)
        chosen_doc = by_rank[shown_rank].document
        above_side.caption(f"rank {shown_rank:d}")
        above_side.code(chosen_doc.full_text, language=chosen_doc.language or None, wrap_lines=True)
        if explanation.positives:
            best = min(explanation.positives, key=lambda p: p.rank or float("inf"))
            positive_again.caption(f"positive · rank {_rank_text(best.rank)}")  # markdown-safe: a rank
            positive_again.code(best.document.full_text, language=best.document.language or None, wrap_lines=True)
    else:
        st.caption("Nothing: the positive is at rank 1.")

    st.subheader("Tag this failure")
    flash = st.session_state.pop("failures_flash", None)
    if flash:
        st.success(flash)  # markdown-safe: built with escape_markdown where it is set
    existing = book.find(dataset.name, profile, query_id)
    if existing is not None:
        st.caption(f"Tagged {escape_markdown(existing.time)}")
        st.text(existing.reason + (f" — {existing.note}" if existing.note else ""))
    suggested = explanation.suggestions[0].reason if explanation.suggestions else "other"
    default_reason = existing.reason if existing is not None else suggested
    options = list(REASONS) + ([default_reason] if default_reason not in REASONS else [])
    case = f"{dataset.name}|{profile}|{query_id}"  # widget keys per case, so one case's draft never leaks into another
    with st.form(f"failures_tag_form|{case}"):
        reason = st.selectbox("Reason", options, index=options.index(default_reason), accept_new_options=True,
                              help="Pick a reason or type your own.", key=f"failures_reason|{case}")
        note = st.text_area("Note", value=existing.note if existing is not None else "", key=f"failures_note|{case}",
                            placeholder="What you saw, for whoever reads the tags next.")
        saved = st.form_submit_button("Save tag", type="primary", icon=":material/sell:")
    if saved:
        try:
            written = save_tag(sel.workspace, dataset.name, profile, query_id, reason or "", note or "")
        except WorkbenchError as exc:
            st.error(escape_markdown(str(exc)))
        else:
            for problem in written.problems:
                st.warning(escape_markdown(problem))
            if not written.problems:
                st.session_state["failures_flash"] = f"Saved the tag of {escape_markdown(query_id)}."
                st.rerun()
            book = written
    if existing is not None and st.button("Remove tag", icon=":material/delete:", key=f"failures_remove|{case}"):
        try:
            remove_tag(sel.workspace, dataset.name, profile, query_id)
        except WorkbenchError as exc:
            st.error(escape_markdown(str(exc)))
        else:
            st.session_state["failures_flash"] = f"Removed the tag of {escape_markdown(query_id)}."
            st.rerun()

st.subheader(f"Tags on {escape_markdown(dataset.name)}")
frame = tags_frame([tag for tag in book.tags if tag.dataset == dataset.name])
if frame.empty:
    st.caption("No failure of this dataset is tagged yet.")
else:
    st.dataframe(frame, hide_index=True, width="stretch", key="failures_tags",
                 column_config={"note": st.column_config.TextColumn(width="large")})
    st.download_button("Download tags as CSV", frame.to_csv(index=False).encode("utf-8"),
                       file_name=f"{dataset.name}-failure-tags.csv", mime="text/csv", icon=":material/download:")
