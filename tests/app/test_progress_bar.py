"""A progress bar fed from another thread (Lance's batch reader) draws into its own session and leaves that thread bare."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest


def drawn_from_a_worker_thread() -> None:
    import threading

    import streamlit as st
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    from core.progress import Step
    from ui.progress import ProgressBar

    bar = ProgressBar("storing")
    after: list[object] = []

    def worker() -> None:
        bar(Step("storing corpus", 3, 4, "documents"))
        after.append(get_script_run_ctx(suppress_warning=True))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    st.session_state["context_left_on_worker"] = after[0]


def test_a_step_from_another_thread_draws_on_the_page_and_the_thread_keeps_no_context():
    at = AppTest.from_function(drawn_from_a_worker_thread, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "storing corpus" in at.get("progress")[0].proto.text and at.get("progress")[0].proto.value == 75
    assert at.session_state["context_left_on_worker"] is None
