"""codeir workbench: the Streamlit entry point. Builds navigation and the shared sidebar only."""
import streamlit as st

from ui.state import sidebar

st.set_page_config(page_title="codeir workbench", page_icon=":material/manage_search:", layout="wide")

PAGES = [
    st.Page("pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", default=True),
    st.Page("pages/explorer.py", title="Query explorer", icon=":material/search:"),
    st.Page("pages/breakdown.py", title="Per-query breakdown", icon=":material/table_rows:"),
    st.Page("pages/compare_runs.py", title="Compare two runs", icon=":material/difference:"),
    st.Page("pages/failures.py", title="Failure cases", icon=":material/report:"),
    st.Page("pages/compare.py", title="Significance & report", icon=":material/compare_arrows:"),
    st.Page("pages/sweep.py", title="Quality vs latency", icon=":material/speed:"),
    st.Page("pages/datasets.py", title="Datasets", icon=":material/dataset:"),
    st.Page("pages/build_benchmark.py", title="Build a benchmark", icon=":material/construction:"),
    st.Page("pages/leakage.py", title="Leakage audit", icon=":material/policy:"),
    st.Page("pages/finetune.py", title="Fine-tune", icon=":material/model_training:"),
]

navigation = st.navigation(PAGES)
st.session_state["_selection"] = sidebar()
navigation.run()
