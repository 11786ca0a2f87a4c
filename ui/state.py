"""Sidebar state and cached resources shared by every page.

The sidebar (dataset, profiles, cutoffs) is mirrored into the URL's query parameters so a view can
be shared. Engines are cached per (workspace, dataset, profiles) with ``st.cache_resource``; runs and
evaluations with ``st.cache_data``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import streamlit as st

from core.data.catalog import default_dataset, list_datasets, open_dataset
from core.data.datasets import Dataset
from core.errors import WorkbenchError
from core.evaluation.leaderboard import saved_run_label
from core.evaluation.metrics import DEFAULT_METRICS, Evaluation, evaluate
from core.retrieval.profiles import Profile, load_profiles, profile_from_dict, profile_to_dict
from core.retrieval.engine import Engine
from core.retrieval.runs import Run, list_runs, load_run
from core.workspace import DATA_DIR_ENV, WORKSPACE_ENV, Workspace

DEFAULT_SELECTED = ("bm25-code", "dense-minilm", "hybrid-rrf", "rerank-fusion")


@dataclass(frozen=True)
class Selection:
    """What the sidebar chose: the page reads it, never the widgets."""

    workspace: Workspace
    dataset_name: str
    profile_names: tuple[str, ...]
    metrics: tuple[str, ...]
    run_ids: tuple[str, ...] = ()  # saved runs (imported TREC files, older runs) shown beside the profiles


@st.cache_resource(show_spinner=False)
def _workspace(root: str | None, data_dir: str | None) -> Workspace:
    return Workspace.open(root, data_dir)


def get_workspace() -> Workspace:
    """The workspace named by the environment; the cache is keyed by it, so a changed variable is followed."""
    return _workspace(os.environ.get(WORKSPACE_ENV) or None, os.environ.get(DATA_DIR_ENV) or None)



@st.cache_resource(show_spinner="Loading dataset…", max_entries=8)
def get_dataset(workspace_root: str, data_dir: str | None, name: str) -> Dataset:
    return open_dataset(Workspace.open(workspace_root, data_dir), name)


def _profiles_key(profiles: dict[str, Profile]) -> str:
    return json.dumps({n: profile_to_dict(p) for n, p in profiles.items()}, sort_keys=True)


@st.cache_resource(show_spinner=False, max_entries=8)
def _engine(workspace_root: str, data_dir: str | None, dataset_name: str, profiles_json: str) -> Engine:
    workspace = Workspace.open(workspace_root, data_dir)
    profiles = {n: profile_from_dict(d, n) for n, d in json.loads(profiles_json).items()}
    return Engine(workspace, get_dataset(workspace_root, data_dir, dataset_name), profiles)


def get_engine(selection: Selection) -> Engine:
    profiles = load_profiles(selection.workspace.profiles_file)
    data_dir = str(selection.workspace.data_dir) if selection.workspace.data_dir else None
    return _engine(str(selection.workspace.root), data_dir, selection.dataset_name, _profiles_key(profiles))


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_run(_engine: Engine, dataset_key: str, profile_name: str, profile_json: str, depth: int) -> Run:
    return _engine.run(profile_name, depth=depth)


def get_run(engine: Engine, profile_name: str, depth: int = 100) -> Run:
    """The profile's run over every judged query (cached per dataset content and profile parameters)."""
    profile_json = json.dumps(profile_to_dict(engine.profile(profile_name)), sort_keys=True)
    dataset_key = f"{engine.dataset.name}:{engine.dataset.corpus_hash}:{engine.dataset.queries_hash}:{_profiles_key(engine.profiles)}"
    return _cached_run(engine, dataset_key, profile_name, profile_json, depth)


@st.cache_data(show_spinner=False, max_entries=128)
def _cached_evaluation(_run: Run, run_key: str, metrics: tuple[str, ...], _dataset: Dataset) -> Evaluation:
    return evaluate(_dataset.qrels, _run, metrics)


def get_evaluation(engine: Engine, run: Run, metrics: tuple[str, ...]) -> Evaluation:
    key = f"{engine.dataset.name}:{engine.dataset.corpus_hash}:{run.name}:{json.dumps(dict(run.profile), sort_keys=True)}"
    return _cached_evaluation(run, key, tuple(metrics), engine.dataset)


@st.cache_data(show_spinner=False, max_entries=64)
def _saved_run(runs_dir: str, run_id: str) -> Run:
    return load_run(Path(runs_dir), run_id)


def get_saved_run(engine: Engine, run_id: str) -> Run:
    """A saved run (run files never change once written, so the id is the cache key), named by its label."""
    run = _saved_run(str(engine.workspace.runs_dir), run_id)
    return replace(run, name=saved_run_label(run_id, run.name))


def selected_runs(engine: Engine, selection: Selection) -> list[Run]:
    """The sidebar's profiles' runs, then its saved runs (named ``name [run id]``), in that order."""
    return [*(get_run(engine, name) for name in selection.profile_names),
            *(get_saved_run(engine, run_id) for run_id in selection.run_ids)]


def run_choices(engine: Engine, selection: Selection) -> dict[str, str]:
    """Every run a page can pick: key (a profile name or a saved run id) -> label; selected profiles first."""
    choices = {name: name for name in selection.profile_names}
    for saved in list_runs(engine.workspace.runs_dir, engine.dataset.name):
        choices.setdefault(saved.run_id, saved_run_label(saved.run_id, saved.name))
    return choices


def get_choice(engine: Engine, key: str) -> Run:
    """The run behind a ``run_choices`` key: a profile's run (made if needed) or a saved run."""
    return get_run(engine, key) if key in engine.profiles else get_saved_run(engine, key)


def _query_param_list(key: str) -> list[str]:
    value = st.query_params.get(key, "")
    return [v for v in value.split(",") if v]


def sidebar() -> Selection | None:
    """Draw the shared sidebar; return the selection, or None (with an error shown) when nothing can load."""
    workspace = get_workspace()
    try:
        infos = list_datasets(workspace)
        profiles = load_profiles(workspace.profiles_file)
    except WorkbenchError as exc:
        st.error(str(exc))
        return None
    names = [info.name for info in infos]
    wanted = st.query_params.get("dataset") or st.session_state.get("dataset") or default_dataset(workspace)
    index = names.index(wanted) if wanted in names else names.index(default_dataset(workspace))
    with st.sidebar:
        st.markdown("### codeir workbench")
        dataset_name = st.selectbox("Dataset", names, index=index, key="dataset")
        chosen = [p for p in _query_param_list("profiles") if p in profiles] or [p for p in DEFAULT_SELECTED if p in profiles]
        if "profiles" not in st.session_state:
            st.session_state["profiles"] = chosen
        st.session_state["profiles"] = [p for p in st.session_state["profiles"] if p in profiles]
        profile_names = st.multiselect("Profiles", list(profiles), key="profiles")
        saved = {s.run_id: s for s in list_runs(workspace.runs_dir, dataset_name)}
        if "saved_runs" not in st.session_state:
            st.session_state["saved_runs"] = [r for r in _query_param_list("runs") if r in saved]
        st.session_state["saved_runs"] = [r for r in st.session_state["saved_runs"] if r in saved]
        run_ids = st.multiselect("Saved runs", list(saved), key="saved_runs",
                                 format_func=lambda run_id: saved_run_label(run_id, saved[run_id].name),
                                 placeholder="imported TREC runs, older runs",
                                 help="Saved runs of this dataset (imported TREC files among them) join the profiles "
                                      "on every page: breakdown, failure cases, significance, report.")
        cutoffs_text = st.text_input("Extra cutoffs k (comma-separated)", value=st.query_params.get("k", ""), key="cutoffs",
                                     help="Adds nDCG@k, hit@k, recall@k and MRR@k for each k.")
    metrics = list(DEFAULT_METRICS)
    for raw in cutoffs_text.split(","):
        raw = raw.strip()
        if raw.isdigit() and 0 < int(raw) <= 1000:
            metrics += [f"{m}@{raw}" for m in ("ndcg", "hit", "recall", "mrr") if f"{m}@{raw}" not in metrics]
        elif raw:
            st.sidebar.warning(f"Ignored cutoff {raw!r}: use whole numbers between 1 and 1000.")
    st.query_params["dataset"] = dataset_name
    st.query_params["profiles"] = ",".join(profile_names)
    if cutoffs_text.strip():
        st.query_params["k"] = cutoffs_text.strip()
    if run_ids:
        st.query_params["runs"] = ",".join(run_ids)
    elif "runs" in st.query_params:
        del st.query_params["runs"]
    return Selection(workspace, dataset_name, tuple(profile_names), tuple(metrics), tuple(run_ids))


def current_selection() -> Selection | None:
    """The selection app.py stored for this rerun (rerunning through app.py when it did not run)."""
    if "_selection" not in st.session_state:
        _rerun_through_app()
    return st.session_state.get("_selection")


def _rerun_through_app() -> None:
    """Route a page opened before app.py ever ran back through app.py.

    Until some script calls ``st.navigation``, Streamlit treats a ``pages/`` folder beside the entry
    script as a legacy multipage app and runs a requested page (``/breakdown?...`` as the first
    request after the server starts) on its own, without app.py and its sidebar. Turning that mode
    off and rerunning makes Streamlit run app.py, whose ``st.navigation`` then opens the same page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def page_engine() -> tuple[Selection, Engine]:
    """The sidebar's selection and its engine; stops the page (with the reason shown) when either cannot load."""
    from ui.render import escape_markdown

    selection = current_selection()
    if selection is None:
        st.stop()
    try:
        return selection, get_engine(selection)
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
        st.stop()
