"""Leakage audit: which eval pairs and texts a training set already holds, and a filtered train set without them."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.catalog import list_datasets
from core.data.datasets import validate_name, write_dataset
from core.errors import WorkbenchError
from core.training.leakage import ALL_KINDS, DEFAULT_JACCARD, audit_many, audit_texts, filter_leaked
from ui.render import escape_markdown
from ui.state import current_selection, get_dataset

AUDIT_KEY = "leakage_audit"
KIND_HELP = {"exact_code": "same code once comments, docstrings and formatting are gone",
             "exact_docstring": "same docstring, ignoring case and punctuation",
             "function_name": "same defined function name (generic names ignored)",
             "near_duplicate_code": "code-token 3-gram Jaccard similarity at or above the threshold (MinHash + LSH)"}

sel = current_selection()
if sel is None:
    st.stop()
workspace = sel.workspace
data_dir = str(workspace.data_dir) if workspace.data_dir else None
names = [info.name for info in list_datasets(workspace)]

st.title("Leakage audit")
st.caption("Finds what of the eval sets a training set already contains, exactly or nearly, before you fine-tune on it: "
           "the judged (code, docstring) pairs by four checks, and every eval query and corpus document. "
           + " · ".join(f"**{kind}**: {text}" for kind, text in KIND_HELP.items()))  # markdown-safe: constants

left, right = st.columns(2)
others = [n for n in names if n != sel.dataset_name]  # by default, audit some other set against the one in the sidebar
train_name = left.selectbox("Train dataset", names, key="leak_train", index=names.index(others[0]) if others else 0)
eval_default = [sel.dataset_name] if sel.dataset_name in names and sel.dataset_name != train_name else []
eval_names = right.multiselect("Eval datasets", [n for n in names if n != train_name], default=eval_default, key="leak_evals")
left, right = st.columns(2)
kinds = left.multiselect("Checks", list(ALL_KINDS), default=list(ALL_KINDS), key="leak_kinds")
threshold = right.slider("Near-duplicate Jaccard threshold", 0.5, 1.0, DEFAULT_JACCARD, 0.05, key="leak_threshold")
settings = (train_name, tuple(eval_names), tuple(kinds), threshold)

if st.button("Run audit", key="leak_run", type="primary", disabled=not (eval_names and kinds)):
    try:
        with st.spinner(f"Fingerprinting {escape_markdown(train_name)} and {escape_markdown(', '.join(eval_names))}…"):
            train = get_dataset(str(workspace.root), data_dir, train_name)
            evals = [get_dataset(str(workspace.root), data_dir, name) for name in eval_names]
            st.session_state[AUDIT_KEY] = (settings, audit_many(train, evals, threshold, kinds), audit_texts(train, evals, threshold))
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))

stored = st.session_state.get(AUDIT_KEY)
if stored is None or stored[0] != settings:
    st.info("Choose a train set and one or more eval sets, then press **Run audit**.")
    st.stop()
reports, text_reports = stored[1], stored[2]

st.subheader("Leaked eval queries per check")
counts = pd.DataFrame({report.eval: report.counts() for report in reports}).T
counts["any check"] = [len(report.leaked_eval_ids()) for report in reports]
counts["eval pairs"] = [report.eval_pairs for report in reports]
counts["leaked share"] = counts["any check"] / counts["eval pairs"].clip(lower=1)
counts.index.name = "eval dataset"
st.dataframe(counts, width="stretch",
             column_config={"leaked share": st.column_config.ProgressColumn("leaked share", format="percent", min_value=0.0,
                                                                            max_value=1.0)})
leaked_train = set().union(*(report.leaked_train_ids() for report in reports))
st.caption(f"{reports[0].train_pairs:,} train pairs audited; {len(leaked_train):,} of them overlap some eval pair.")

st.subheader("Every eval text, judged or not")
st.caption("Each train query and corpus document against each eval query and corpus document: exact (normalised text; code "
           "without comments and docstrings) or near-duplicate (token 3-gram Jaccard at or above the threshold). Counts are "
           "train texts. The pair checks above only see judged eval pairs; a docstring sitting unjudged in an eval corpus "
           "shows up here. Fine-tuning drops all of these.")
text_counts = pd.DataFrame({report.eval: report.counts() for report in text_reports}).T
text_counts.index.name = "eval dataset"
st.dataframe(text_counts, width="stretch", key="leak_text_counts")

overlaps = pd.concat([report.to_frame() for report in reports], ignore_index=True)
st.subheader(f"Overlapping pairs ({len(overlaps):,})")
if len(overlaps):
    st.dataframe(overlaps.drop(columns=["train"]), hide_index=True, width="stretch",
                 column_config={"similarity": st.column_config.NumberColumn("similarity", format="%.3f"),
                                "train_snippet": st.column_config.TextColumn("train snippet", width="large"),
                                "eval_snippet": st.column_config.TextColumn("eval snippet", width="large")})
    st.download_button("Download CSV", overlaps.to_csv(index=False).encode("utf-8"), key="leak_csv", on_click="ignore",
                       file_name=f"leakage-{train_name}.csv", mime="text/csv", icon=":material/download:")
else:
    st.success("No overlap found: the eval sets are not in this train set.")

st.subheader("Filtered train set")
st.caption("The same filter fine-tuning applies: a leaking train query leaves with its judgments, a leaking corpus document "
           "leaves the corpus (no positive, no negative to mine), and a query left without its positive goes.")
drop_texts = st.checkbox("Also drop what the every-text audit found", value=True, key="leak_filter_texts",
                         help="Unticked: only the pair checks' overlaps are dropped (with the answers only they judged).")
leaked_texts = any(report.overlaps for report in text_reports)
filtered_name = st.text_input("Name of the filtered train set", value=f"{train_name}-noleak", key="leak_filtered_name")
if st.button("Write filtered train set", key="leak_write", disabled=not (leaked_train or (drop_texts and leaked_texts))):
    try:
        validate_name(filtered_name.strip())
        if filtered_name.strip() in names:
            raise WorkbenchError(f"A dataset named {filtered_name.strip()!r} already exists: choose another name.")
        train = get_dataset(str(workspace.root), data_dir, train_name)
        filtered = filter_leaked(train, [*reports, *(text_reports if drop_texts else [])], filtered_name.strip())
        meta = {"filtered_from": train_name, "audited_against": list(eval_names), "jaccard_threshold": threshold,
                "checks": list(kinds), "audits": ["judged pairs"] + (["every text"] if drop_texts else []),
                "removed_queries": len(train.queries) - len(filtered.queries),
                "removed_documents": len(train.documents) - len(filtered.documents)}
        folder = write_dataset(filtered, workspace.datasets_dir / filtered.name, meta)
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        st.success(f"Wrote **{escape_markdown(filtered.name)}**: {len(filtered.queries):,} queries, "
                   f"{len(filtered.documents):,} documents, in {escape_markdown(str(folder))} "
                   f"({meta['removed_queries']:,} queries and {meta['removed_documents']:,} documents removed).")
