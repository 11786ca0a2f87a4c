"""Sidebar state and cached resources shared by every page.

The sidebar (dataset, profiles, cutoffs) is mirrored into the URL's query parameters so a view can
be shared. Engines are cached per (workspace, dataset, profiles) with ``st.cache_resource``; runs and
evaluations with ``st.cache_data``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import streamlit as st

from core.data.catalog import default_dataset, list_datasets, open_dataset, stored_min_docs
from core.data.datasets import Dataset
from core.errors import WorkbenchError
from core.progress import StageCounter
from core.evaluation.leaderboard import saved_run_label
from core.evaluation.metrics import DEFAULT_METRICS, Evaluation, evaluate
from core.retrieval.profiles import Profile, load_profiles, profile_from_dict, profile_to_dict
from core.retrieval.engine import Engine
from core.retrieval.limits import parse_cutoffs
from core.retrieval.runs import Run, list_runs, load_run
from core.workspace import DATA_DIR_ENV, WORKSPACE_ENV, Workspace
from ui.render import escape_markdown

DEFAULT_SELECTED = ("bm25-code", "dense-minilm", "hybrid-rrf", "hybrid-weighted", "rerank-fusion")
MAX_CUTOFF_WARNINGS = 3  # sidebar warnings for refused cutoffs; the rest are counted in one more


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



@st.cache_resource(show_spinner="Opening the dataset (a large corpus is stored in Lance on its first opening)…", max_entries=8)
def _dataset(workspace_root: str, data_dir: str | None, name: str, stored_min: int) -> Dataset:
    return open_dataset(Workspace.open(workspace_root, data_dir), name)


def get_dataset(workspace_root: str, data_dir: str | None, name: str) -> Dataset:
    """The dataset, cached per workspace and name and per the size from which corpora open from their store."""
    return _dataset(workspace_root, data_dir, name, stored_min_docs())


def _profiles_key(profiles: dict[str, Profile]) -> str:
    return json.dumps({n: profile_to_dict(p) for n, p in profiles.items()}, sort_keys=True)


@st.cache_resource(show_spinner=False, max_entries=8)
def _engine(workspace_root: str, data_dir: str | None, dataset_name: str, profiles_json: str, stored_min: int) -> Engine:
    workspace = Workspace.open(workspace_root, data_dir)
    profiles = {n: profile_from_dict(d, n) for n, d in json.loads(profiles_json).items()}
    return Engine(workspace, get_dataset(workspace_root, data_dir, dataset_name), profiles)


def get_engine(selection: Selection) -> Engine:
    profiles = load_profiles(selection.workspace.profiles_file)
    data_dir = str(selection.workspace.data_dir) if selection.workspace.data_dir else None
    return _engine(str(selection.workspace.root), data_dir, selection.dataset_name, _profiles_key(profiles), stored_min_docs())


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_run(_engine: Engine, dataset_key: str, profile_name: str, profile_json: str, depth: int) -> Run:
    return _engine.run(profile_name, depth=depth)


def get_run(engine: Engine, profile_name: str, depth: int = 100) -> Run:
    """The profile's run over every judged query (cached per dataset content and profile parameters).

    Indexes and models are opened first, outside the cache, so their progress reaches the page's bar;
    inside the cached call the engine reports nothing, since st.cache_data would record those bar
    updates and replay them on another page, where the bar does not exist.
    """
    profile_json = json.dumps(profile_to_dict(engine.profile(profile_name)), sort_keys=True)
    dataset_key = f"{engine.dataset.name}:{engine.dataset.corpus_hash}:{engine.dataset.queries_hash}:{_profiles_key(engine.profiles)}"
    progress = engine.progress
    engine.warm([profile_name])
    counter = StageCounter(progress, f"{profile_name}: retrieving", len(engine.dataset.judged_queries), "queries")
    counter(0)
    engine.progress = None
    try:
        run = _cached_run(engine, dataset_key, profile_name, profile_json, depth)
    finally:
        engine.progress = progress
    counter(len(engine.dataset.judged_queries))
    return run


def run_profiles(engine: Engine, names: Sequence[str]) -> list[Run]:
    """Each profile's run, drawing a bar (stage, n / N documents or queries, ETA) while indexes build or queries run."""
    from ui.progress import count, engine_progress

    runs = []
    with engine_progress(engine, f"Running {len(names)} profile(s)…") as bar:
        for position, name in enumerate(names):
            count(bar, f"running {name} (profile {position + 1} of {len(names)})", position, len(names), "profiles")
            runs.append(get_run(engine, name))
    return runs


@st.cache_data(show_spinner=False, max_entries=128)
def _cached_evaluation(_run: Run, run_key: str, metrics: tuple[str, ...], _dataset: Dataset) -> Evaluation:
    return evaluate(_dataset.qrels, _run, metrics)


def get_evaluation(engine: Engine, run: Run, metrics: tuple[str, ...]) -> Evaluation:
    key = f"{engine.dataset.name}:{engine.dataset.corpus_hash}:{run.name}:{json.dumps(dict(run.profile), sort_keys=True)}"
    return _cached_evaluation(run, key, tuple(metrics), engine.dataset)


SIDEBAR_PARAMS = ("dataset", "profiles", "k", "runs")  # bound to the sidebar's widgets: Streamlit carries them to every page
PAGE_KEY, ARRIVED_KEY = "_page", "_arrived"  # the page the last run drew; whether this run switched to another


def note_page(url_path: str | None) -> None:
    """app.py calls this with the page about to run, and with None once it ran: page_params writes nothing in between
    on the run that switched pages."""
    if url_path is None:
        st.session_state[ARRIVED_KEY] = False
        return
    st.session_state[ARRIVED_KEY] = st.session_state.get(PAGE_KEY) != url_path
    st.session_state[PAGE_KEY] = url_path


def _linked_profiles(known: dict[str, Profile]) -> tuple[list[str] | None, list[str]]:
    """Profiles a link names, in either form (``profiles=a,b`` or ``profiles=a&profiles=b``), and the unknown ones.

    None when the link names none. The comma form is what links written before the sidebar was bound used.
    """
    raw = [name for value in st.query_params.get_all("profiles") for name in value.split(",") if name]
    if not raw:
        return None, []
    return [name for name in raw if name in known], [name for name in raw if name not in known]


def switch_params(**extra: str) -> dict[str, str]:
    """Query parameters for ``st.switch_page``: this page's own ones plus ``extra``, never the sidebar's.

    The sidebar's parameters are bound to its widgets: the browser carries them to every page, and
    Streamlit refuses them in ``switch_page``.
    """
    kept = {key: value for key, value in st.query_params.to_dict().items() if key not in SIDEBAR_PARAMS}
    return {**kept, **{key: value for key, value in extra.items() if key not in SIDEBAR_PARAMS}}


@st.cache_data(show_spinner=False, max_entries=64)
def _saved_run(runs_dir: str, run_id: str) -> Run:
    return load_run(Path(runs_dir), run_id)


def get_saved_run(engine: Engine, run_id: str) -> Run:
    """A saved run (run files never change once written, so the id is the cache key), named by its label."""
    run = _saved_run(str(engine.workspace.runs_dir), run_id)
    return replace(run, name=saved_run_label(run_id, run.name))


def selected_runs(engine: Engine, selection: Selection) -> list[Run]:
    """The sidebar's profiles' runs, then its saved runs (named ``name [run id]``), in that order."""
    return [*run_profiles(engine, list(selection.profile_names)),
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




def sidebar() -> Selection | None:
    """Draw the shared sidebar; return the selection, or None (with an error shown) when nothing can load.

    Dataset, profiles and cutoffs are widgets bound to the URL (``bind="query-params"``): the browser
    sends them with every page switch and updates them in place, so a sidebar click adds one history
    entry and the dataset never depends on widget state surviving the switch. A link naming an unknown
    dataset or profile says so instead of being ignored.
    """
    from ui.render import escape_markdown

    try:
        workspace = get_workspace()  # refused when a folder of it links outside (core.workspace)
        infos = list_datasets(workspace)
        profiles = load_profiles(workspace.profiles_file)
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
        return None
    names = [info.name for info in infos]
    default = default_dataset(workspace)
    linked_dataset = st.query_params.get("dataset")
    linked_profiles, unknown_profiles = _linked_profiles(profiles)
    if st.session_state.get("dataset") not in names:
        st.session_state.pop("dataset", None)  # a dataset deleted since, or a link to an unknown one
    if st.session_state.get(ARRIVED_KEY) and linked_dataset in names and st.session_state.get("dataset") != linked_dataset:
        # The run a page switch (or Back) started: the address it carries is the truth. Streamlit lets a bound
        # widget's session value win over the URL on reruns, and under load the sidebar was seen showing the
        # default dataset after a click while the address still named the linked one.
        st.session_state["dataset"] = linked_dataset
    if linked_profiles is not None and any("," in value for value in st.query_params.get_all("profiles")):
        st.session_state["profiles"] = linked_profiles  # the comma form, which the bound widget cannot read itself
    elif "profiles" not in st.session_state and linked_profiles is None:
        st.session_state["profiles"] = [p for p in DEFAULT_SELECTED if p in profiles]
    kept = [p for p in st.session_state.get("profiles", []) if p in profiles]
    if "profiles" in st.session_state and kept != st.session_state["profiles"]:
        st.session_state["profiles"] = kept  # a profile deleted since; assigning only then keeps the URL still
    with st.sidebar:
        st.markdown("### codeir workbench")
        dataset_name = st.selectbox("Dataset", names, index=names.index(default), key="dataset", bind="query-params")
        if linked_dataset and linked_dataset not in names:
            st.warning(f"The link names dataset {escape_markdown(linked_dataset)}, which is not here; showing "
                       f"{escape_markdown(dataset_name)} instead. Known: {escape_markdown(', '.join(names))}.")
        profile_names = st.multiselect("Profiles", list(profiles), key="profiles", bind="query-params")
        if unknown_profiles:
            st.warning(f"Unknown profile(s) in the link, skipped: {escape_markdown(', '.join(unknown_profiles))}.")
        saved = {s.run_id: s for s in list_runs(workspace.runs_dir, dataset_name)}
        linked_runs = [r for value in st.query_params.get_all("runs") for r in value.split(",") if r]
        if linked_runs and ("runs" not in st.session_state or any("," in v for v in st.query_params.get_all("runs"))):
            st.session_state["runs"] = [r for r in linked_runs if r in saved]  # a link; unknown ids are dropped below
        kept_runs = [r for r in st.session_state.get("runs", []) if r in saved]
        if "runs" in st.session_state and kept_runs != st.session_state["runs"]:
            st.session_state["runs"] = kept_runs  # a run deleted since, or one of another dataset
        run_ids = st.multiselect("Saved runs", list(saved), key="runs", bind="query-params",
                                 format_func=lambda run_id: saved_run_label(run_id, saved[run_id].name),
                                 placeholder="imported TREC runs, older runs",
                                 help="Saved runs of this dataset (imported TREC files among them) join the profiles "
                                      "on every page: breakdown, failure cases, significance, report.")
        cutoffs_text = st.text_input("Extra cutoffs k (comma-separated)", key="k", bind="query-params",
                                     help="Adds nDCG@k, hit@k, recall@k and MRR@k for each k.")
    metrics = list(DEFAULT_METRICS)
    cutoffs, refused = parse_cutoffs(cutoffs_text, "Cutoff")
    for cutoff in cutoffs:
        metrics += [f"{m}@{cutoff}" for m in ("ndcg", "hit", "recall", "mrr") if f"{m}@{cutoff}" not in metrics]
    for message in refused[:MAX_CUTOFF_WARNINGS]:  # the text may come from a crafted ?k= link: escaped, never markdown
        st.sidebar.warning(escape_markdown(f"Ignored: {message}"))
    if len(refused) > MAX_CUTOFF_WARNINGS:  # a link of 10,000 bad values must not draw 10,000 boxes
        st.sidebar.warning(f"... and {len(refused) - MAX_CUTOFF_WARNINGS:,} more values ignored.")
    return Selection(workspace, dataset_name, tuple(profile_names), tuple(metrics), tuple(run_ids))


def page_params(**values: str | None) -> None:
    """Write this page's own URL parameters (None removes one) when they changed, in as few updates as possible.

    Parameters a page writes are not bound to widgets, so Streamlit leaves them behind on a page switch:
    they never travel to another page. Nothing is written on the run that a page switch starts: the
    browser would record that write under the old page's address as an extra history entry, and Back
    would seem to do nothing.
    """
    if st.session_state.get(ARRIVED_KEY, False):
        return  # the run a page switch started: keep the address the switch made (and a deep link's own values)
    changed = {key: value for key, value in values.items() if st.query_params.get(key) != value}
    if not changed:
        return
    for key in [key for key, value in changed.items() if value is None and key in st.query_params]:
        del st.query_params[key]
    updates = {key: value for key, value in changed.items() if value is not None}
    if updates:
        st.query_params.update(updates)


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
    selection = current_selection()
    if selection is None:
        st.stop()
    try:
        return selection, get_engine(selection)
    except WorkbenchError as exc:
        st.error(escape_markdown(str(exc)))
        st.stop()
