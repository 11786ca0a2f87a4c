"""Profiles: create, edit and delete retrieval profiles, saved to the workspace's profiles.toml."""
from __future__ import annotations

import streamlit as st

from core.errors import WorkbenchError
from core.index.analyzers import ANALYZERS
from core.index.bm25_batch import LENGTH_NORM_KINDS
from core.retrieval.profiles import (FUSION_METHODS, NORMALIZATIONS, RERANKERS, Bm25Profile, DenseProfile, HybridProfile, RerankProfile, default_profiles,
                                     delete_profile, load_profiles, profile_to_dict, upsert_profile)
from ui.render import escape_markdown
from ui.state import current_selection

NEW = "➕ New profile"
KINDS = ("bm25", "dense", "hybrid", "rerank")
FLASH_KEY = "profiles_flash"

sel = current_selection()
if sel is None:
    st.stop()
path = sel.workspace.profiles_file
st.title("Profiles")
st.caption(f"Built-in profiles live in code; what you create or change here is written to "
           f"{escape_markdown(str(path))} and appears in the sidebar of every page.")
if FLASH_KEY in st.session_state:
    st.success(escape_markdown(st.session_state.pop(FLASH_KEY)))
try:
    profiles = load_profiles(path)
except WorkbenchError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
defaults = default_profiles()

st.dataframe([{"profile": name, "kind": p.kind, "source": "built in" if defaults.get(name) == p else
               ("built in, changed" if name in defaults else "profiles.toml"),
               "parameters": ", ".join(f"{k}={v}" for k, v in profile_to_dict(p).items() if k not in ("kind", "name"))}
              for name, p in profiles.items()], hide_index=True, width="stretch", key="profiles_table",
             column_config={"parameters": st.column_config.TextColumn(width="large")})

choice = st.selectbox("Profile to edit", [NEW, *profiles], key="profiles_choice")
current = profiles.get(choice)
kind = st.selectbox("Kind", KINDS, index=KINDS.index(current.kind) if current else 0, key=f"profiles_kind_{choice}",
                    disabled=current is not None, help="A saved profile keeps its kind; create a new one for another kind.")
others = [name for name in profiles if name != choice]

with st.form(f"profiles_form_{choice}_{kind}", border=True):
    name = st.text_input("Name", value="" if current is None else current.name,
                         help="Letters, digits, '.', '_' and '-' (at most 64, no '..'), starting with a letter or digit. "
                              "Renaming saves under the new name.")
    if kind == "bm25":
        base = current if isinstance(current, Bm25Profile) else Bm25Profile("new")
        left, middle, right, last = st.columns(4)
        analyzer = left.selectbox("Analyzer", list(ANALYZERS), index=list(ANALYZERS).index(base.analyzer))
        k1 = middle.number_input("k1", 0.0, 10.0, float(base.k1), 0.1)
        b = right.number_input("b", 0.0, 1.0, float(base.b), 0.05)
        length_norm = last.selectbox("Length norm", list(LENGTH_NORM_KINDS), index=list(LENGTH_NORM_KINDS).index(base.length_norm))
        build = lambda: Bm25Profile(name.strip(), analyzer, float(k1), float(b), length_norm)  # noqa: E731
    elif kind == "dense":
        base = current if isinstance(current, DenseProfile) else DenseProfile("new")
        left, right = st.columns(2)
        model = left.text_input("Model", value=base.model, help="alias (minilm), fine-tuned model name, local folder or hub id")
        backend = right.selectbox("Backend", ["torch", "onnx"], index=["torch", "onnx"].index(base.backend))
        build = lambda: DenseProfile(name.strip(), model.strip(), backend)  # noqa: E731
    elif kind == "hybrid":
        base = current if isinstance(current, HybridProfile) else HybridProfile("new")
        members = st.multiselect("Members", others, default=[m for m in base.members if m in others])
        left, middle, right = st.columns(3)
        method = left.selectbox("Fusion", list(FUSION_METHODS), index=list(FUSION_METHODS).index(base.method))
        normalization = middle.selectbox("Normalization (weighted)", list(NORMALIZATIONS),
                                         index=list(NORMALIZATIONS).index(base.normalization))
        rrf_k = right.number_input("rrf_k (rrf)", 0, 10_000, int(base.rrf_k), 1)
        weights_text = st.text_input("Weights, one per member (empty: equal)", value=", ".join(f"{w:g}" for w in base.weights))
        depth = st.number_input("Candidate depth per member", 1, 1000, int(base.candidate_depth), 10)

        def build() -> HybridProfile:
            try:
                weights = tuple(float(w) for w in weights_text.replace(" ", "").split(",") if w)
            except ValueError:
                raise WorkbenchError(f"Weights {weights_text!r}: write numbers separated by commas, as in 0.3, 0.7.") from None
            return HybridProfile(name.strip(), tuple(members), method, int(rrf_k), weights, normalization, int(depth))
    else:
        base = current if isinstance(current, RerankProfile) else RerankProfile("new")
        first_options = others or [base.first_stage]
        first = st.selectbox("First stage", first_options,
                             index=first_options.index(base.first_stage) if base.first_stage in first_options else 0)
        left, middle, right = st.columns(3)
        pool = left.number_input("Pool depth", 1, 1000, int(base.pool_depth), 5)
        reranker = middle.selectbox("Reranker", list(RERANKERS), index=list(RERANKERS).index(base.reranker))
        alpha = right.number_input("alpha (fusion)", 0.0, 1.0, float(base.alpha), 0.05)
        model = st.text_input("Model", value=base.model)
        build = lambda: RerankProfile(name.strip(), first, int(pool), reranker, model.strip(), float(alpha))  # noqa: E731
    saved = st.form_submit_button("Save profile", type="primary", icon=":material/save:")

if saved:
    try:
        profile = build()
        upsert_profile(path, profile, replace_name=choice if current is not None else None)
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
    else:
        st.session_state[FLASH_KEY] = f"Saved {profile.name} to {path}."
        st.session_state.pop("profiles_choice", None)
        st.rerun()

if current is not None:
    label = "Reset to the built-in default" if choice in defaults else f"Delete {escape_markdown(choice)}"
    # markdown-safe: label is a literal or holds the escaped profile name
    if st.button(label, key="profiles_delete", icon=":material/delete:", disabled=choice in defaults and current == defaults[choice]):
        try:
            delete_profile(path, choice)
        except WorkbenchError as exc:
            st.error(escape_markdown(str(exc)))
        else:
            st.session_state[FLASH_KEY] = f"{'Reset' if choice in defaults else 'Deleted'} {choice}."
            st.session_state.pop("profiles_choice", None)
            st.rerun()
