"""A Streamlit progress bar fed by core's progress steps: the stage, n / N items and an ETA, not a spinner."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.script_run_context import SCRIPT_RUN_CONTEXT_ATTR_NAME

from core.progress import Step, notify
from core.retrieval.engine import Engine
from ui.render import escape_markdown


class ProgressBar:
    """``st.progress`` drawing each step it is given as ``stage: n / N documents · ETA 0:42``.

    A step may come from a thread other than the script's: Lance pulls a corpus store's batches, and so calls
    their progress, on a worker thread of its own (one Rust made, whose Python context is fresh on each call).
    Such a thread is given the script's context for the draw and its own back after it, so a worker thread that
    later serves another session never carries this one's.
    """

    def __init__(self, label: str):
        self.bar = st.progress(0.0, text=escape_markdown(label))
        self.context = get_script_run_ctx()
        self.thread = threading.current_thread()

    def __call__(self, step: Step) -> None:
        thread = threading.current_thread()
        if thread is self.thread or self.context is None:
            self.bar.progress(step.fraction, text=escape_markdown(step.describe()))
            return
        own = get_script_run_ctx(suppress_warning=True)
        add_script_run_ctx(thread, self.context)
        try:
            self.bar.progress(step.fraction, text=escape_markdown(step.describe()))
        finally:  # add_script_run_ctx cannot detach (None means "the caller's"): the attribute it sets is restored
            setattr(thread, SCRIPT_RUN_CONTEXT_ATTR_NAME, own)

    def clear(self) -> None:
        self.bar.empty()


@contextmanager
def engine_progress(engine: Engine, label: str) -> Iterator[ProgressBar]:
    """Route the engine's steps to a bar for the duration of the block; the bar goes when the block ends."""
    bar = ProgressBar(label)
    previous = engine.progress
    engine.progress = bar
    try:
        yield bar
    finally:
        engine.progress = previous
        bar.clear()


def count(bar: ProgressBar, stage: str, done: int, total: int, unit: str) -> None:
    """Report a page's own loop (profiles run, comparisons made) on the same bar."""
    notify(bar, Step(stage, done, total, unit))
