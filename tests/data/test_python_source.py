"""Python parsed from many threads at once: one lock around ast (CPython 3.11, gh-106905)."""
from __future__ import annotations

import ast
import threading
from concurrent.futures import ThreadPoolExecutor

from core.data.python_source import parse_python, python_literal
from core.training.leakage import strip_code

NESTED = "def f(x):\n" + "".join("    " * depth + f"if x > {depth}:\n" for depth in range(1, 30)) + "    " * 30 + "return x\n"


def test_parse_and_literal_give_what_ast_gives():
    assert ast.dump(parse_python(NESTED)) == ast.dump(ast.parse(NESTED))
    assert python_literal('"""Read\\q a file."""') == "Read\\q a file."  # an invalid escape: silenced, kept


def test_threads_parsing_at_once_all_get_the_same_tree():
    start = threading.Barrier(4)
    expected = ast.dump(ast.parse(NESTED))

    def parse_many(_: int) -> set[str]:
        start.wait()
        return {ast.dump(parse_python(NESTED)) for _ in range(200)}

    with ThreadPoolExecutor(4) as pool:
        assert set().union(*pool.map(parse_many, range(4))) == {expected}


def test_strip_code_still_drops_docstrings_and_comments():
    assert "Read" not in strip_code('def f():\n    """Read it."""\n    return 1  # one\n', "python")
