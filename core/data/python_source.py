"""Python source parsed with ``ast`` safely from any thread.

CPython 3.11 keeps the ast constructor's recursion depth in interpreter-wide state, so two threads
parsing at once can fail with ``SystemError: AST constructor recursion depth mismatch``
(python/cpython gh-106905; seen here when two Streamlit sessions compiled at the same moment).
Streamlit runs every browser session in a thread of its own, so the benchmark builder and the
leakage audit parse through one lock; ``warnings.catch_warnings``, which is not thread-safe
either, sits inside it.
"""
from __future__ import annotations

import ast
import threading
import warnings

_PARSE_LOCK = threading.RLock()
_UNLOCKED_PARSE = ast.parse


def _locked_parse(*args, **kwargs):
    with _PARSE_LOCK:
        return _UNLOCKED_PARSE(*args, **kwargs)


def serialise_ast_parse() -> None:
    """Make every ``ast.parse`` in this process take the lock, Streamlit's own page compile (its magic) included.

    app.py calls it: two sessions compiling pages while a third parses were seen to fail even with one script cache.
    """
    ast.parse = _locked_parse


def parse_python(source: str, mode: str = "exec") -> ast.AST:
    """``ast.parse`` under the lock, with the warnings old code raises (invalid escapes) silenced: it is read, not run."""
    with _PARSE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _UNLOCKED_PARSE(source, mode=mode)


def python_literal(text: str) -> object:
    """``ast.literal_eval`` of one literal's source text, parsed under the lock."""
    return ast.literal_eval(parse_python(text, mode="eval"))
