"""The dataset a page switch carries in its address wins over the one the session chose before.

AppTest runs only the page on ``switch_page`` (not app.py, which draws the sidebar), so these tests run
app.py's own sequence around the sidebar, ``note_page(page)``, ``sidebar()``, ``note_page(None)``, with the
page named in session state.
"""
from __future__ import annotations

from streamlit.testing.v1 import AppTest


def app_sequence() -> None:
    import streamlit as st

    from ui.state import note_page, sidebar

    note_page(st.session_state.get("page_to_draw", ""))
    selection = sidebar()
    st.session_state["drawn_dataset"] = selection.dataset_name if selection else None
    note_page(None)


def test_a_page_switch_whose_address_names_a_dataset_opens_on_it(app_env):
    at = AppTest.from_function(app_sequence, default_timeout=120)
    at.run()
    assert at.sidebar.selectbox(key="dataset").value == "cosqa-mini"  # no link: the default dataset
    at.session_state["page_to_draw"] = "explorer"  # a sidebar click, whose address names another dataset
    at.query_params["dataset"] = "csn-mini"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.selectbox(key="dataset").value == "csn-mini"
    assert at.session_state["drawn_dataset"] == "csn-mini"


def test_a_rerun_on_the_same_page_keeps_the_users_choice(app_env):
    """Only a switch adopts the address: on the same page, the selectbox the user just changed wins."""
    at = AppTest.from_function(app_sequence, default_timeout=120)
    at.query_params["dataset"] = "cosqa-mini"
    at.run()
    at.sidebar.selectbox(key="dataset").set_value("csn-mini").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.selectbox(key="dataset").value == "csn-mini"
    assert at.session_state["drawn_dataset"] == "csn-mini"
