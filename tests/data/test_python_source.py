"""Python parsed from many threads at once: one lock around ast (CPython 3.11, gh-106905)."""
from __future__ import annotations

import ast
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from core.data import python_source
from core.data.python_source import parse_python, python_literal
from core.training.leakage import strip_code

NESTED = "def f(x):\n" + "".join("    " * depth + f"if x > {depth}:\n" for depth in range(1, 30)) + "    " * 30 + "return x\n"


def test_parse_and_literal_give_what_ast_gives():
    assert ast.dump(parse_python(NESTED)) == ast.dump(ast.parse(NESTED))
    assert python_literal('"""Read\\q a file."""') == "Read\\q a file."  # an invalid escape: silenced, kept


def test_no_two_threads_are_ever_inside_ast_parse_at_once(monkeypatch):
    """The race itself is rare; what the lock promises is checked instead: ast.parse made slow, and never entered twice."""
    expected = ast.dump(ast.parse(NESTED))
    real_parse, guard = python_source._UNLOCKED_PARSE, threading.Lock()
    inside = {"now": 0, "most": 0}

    def slow_parse(*args, **kwargs):
        with guard:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        time.sleep(0.005)  # without the lock, the other threads are inside by now
        try:
            return real_parse(*args, **kwargs)
        finally:
            with guard:
                inside["now"] -= 1

    monkeypatch.setattr(python_source, "_UNLOCKED_PARSE", slow_parse)  # what parse_python calls under the lock
    start = threading.Barrier(4)

    def parse_many(_: int) -> set[str]:
        start.wait()
        return {ast.dump(parse_python(NESTED)) for _ in range(10)} | {repr(python_literal("'x'"))}

    with ThreadPoolExecutor(4) as pool:
        assert set().union(*pool.map(parse_many, range(4))) == {expected, "'x'"}
    assert inside["most"] == 1


def test_strip_code_still_drops_docstrings_and_comments():
    assert "Read" not in strip_code('def f():\n    """Read it."""\n    return 1  # one\n', "python")
