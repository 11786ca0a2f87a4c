"""codeir workbench: the Streamlit entry point. Builds navigation and the shared sidebar only."""
from pathlib import Path

import streamlit as st

from core.data.python_source import serialise_ast_parse

from ui.render import apply_stylesheet
from ui.state import note_page, sidebar

serialise_ast_parse()  # CPython 3.11's ast constructor is not thread-safe (core/data/python_source.py)

# A file, served by this server: a ":material/...:" or emoji icon makes the browser fetch the favicon from a font CDN
FAVICON = Path(__file__).resolve().parent / "ui" / "static" / "favicon.png"
st.set_page_config(page_title="codeir workbench", page_icon=str(FAVICON), layout="wide")
apply_stylesheet()  # multiselect chips show their whole text (ui.render.STYLESHEET)

PAGES = [
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", default=True, url_path=""),
    st.Page("pages/explorer.py", title="Query explorer", icon=":material/search:"),
    st.Page("pages/breakdown.py", title="Per-query breakdown", icon=":material/table_rows:"),
    st.Page("pages/compare_runs.py", title="Compare two runs", icon=":material/difference:"),
    st.Page("pages/failures.py", title="Failure cases", icon=":material/report:"),
    st.Page("pages/compare.py", title="Significance & report", icon=":material/compare_arrows:"),
    st.Page("pages/complementarity.py", title="Complementarity", icon=":material/join_inner:"),
    st.Page("pages/slices.py", title="Slice finder", icon=":material/filter_alt:"),
    st.Page("pages/embedding_map.py", title="Embedding map", icon=":material/scatter_plot:"),
    st.Page("pages/sweep.py", title="Quality vs latency", icon=":material/speed:"),
    st.Page("pages/profiles.py", title="Profiles", icon=":material/tune:"),
    st.Page("pages/datasets.py", title="Datasets", icon=":material/dataset:"),
    st.Page("pages/build_benchmark.py", title="Build a benchmark", icon=":material/construction:"),
    st.Page("pages/leakage.py", title="Leakage audit", icon=":material/policy:"),
    st.Page("pages/finetune.py", title="Fine-tune", icon=":material/model_training:"),
]


def _to_leaderboard() -> None:
    """``/leaderboard`` typed or linked directly: the default page lives at ``/``, so go there with the same parameters."""
    st.switch_page(PAGES[0], query_params=st.query_params.to_dict())  # no sidebar drew on this run: nothing is bound


# The default page answers at the root URL only (url_path "" frees its file name); this hidden alias keeps
# /leaderboard from showing "Page not found".
ALIASES = [st.Page(_to_leaderboard, title="Leaderboard", url_path="leaderboard", visibility="hidden")]

navigation = st.navigation(PAGES + ALIASES, expanded=True)  # every page listed: past ten, Streamlit folds the rest under "View more"
if navigation.url_path == ALIASES[0].url_path:
    navigation.run()  # the alias only forwards, with every parameter: the sidebar (whose widgets bind them) draws after it
else:
    note_page(navigation.url_path)
    st.session_state["_selection"] = sidebar()
    try:
        navigation.run()
    finally:
        note_page(None)  # the switch is over: a later run on the same page may write its URL parameters
