"""Shared identifiers between a query and a document, and the spans that mark them."""
import pytest
from hypothesis import given, strategies as st

from core.retrieval.highlight import highlight_spans, shared_identifiers


def test_camel_case_query_shares_its_parts_with_a_plain_docstring():
    shared = shared_identifiers("def getUserName(account): return account.user_name", "Return the user name of an account.")
    assert shared == ("user", "name", "account")


def test_keywords_are_not_reported_as_shared_identifiers():
    shared = shared_identifiers("def parse(self, text): return None", "Return None if the text cannot be parsed.")
    assert "return" not in shared and "none" not in shared
    assert shared == ("text",)


def test_nothing_is_shared_when_the_texts_have_no_common_token():
    assert shared_identifiers("def add(a, b): return a + b", "Open a socket.") == ()


def test_shared_words_are_marked_and_a_phrase_becomes_one_span():
    spans = highlight_spans("Return the user name, or None.", ["user", "name"])
    assert [(s.text, s.shared) for s in spans] == [("Return the ", False), ("user name", True), (", or None.", False)]


def test_a_compound_identifier_is_marked_when_one_of_its_parts_is_shared():
    spans = highlight_spans("calls getUserName twice", ["user"])
    assert [s.text for s in spans if s.shared] == ["getUserName"]


def test_no_shared_tokens_gives_one_unmarked_span():
    spans = highlight_spans("plain text here", [])
    assert [(s.text, s.shared) for s in spans] == [("plain text here", False)]


@given(st.text(), st.lists(st.sampled_from(["user", "name", "x1", "é", "get"]), max_size=3))
def test_spans_join_back_to_the_original_text(text, shared):
    spans = highlight_spans(text, shared)
    assert "".join(s.text for s in spans) == text
    assert all(a.shared != b.shared for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("text,code", [
    ("def load_json(path):\n    with open(path) as handle:\n        return json.load(handle)", True),
    ("function add(a, b) {\n  return a + b;\n}", True),
    ("x = compute(y)", True),
    ("Load a javascript file and minify.\n\nParameters\n----------\npath : str\n    the file to read", False),
    ("python read json file into dict", False),
    ("Returns the value of foo(x) for every x.", False),
    ("", False),
])
def test_code_is_told_from_prose(text, code):
    from core.retrieval.highlight import looks_like_code

    assert looks_like_code(text) is code


def test_real_docstrings_and_code_queries_of_csn_are_told_apart(csn_mini):
    from core.retrieval.highlight import looks_like_code

    docstrings = [d.full_text for d in csn_mini.documents[:100]]
    queries = [q.text for q in csn_mini.queries[:40]]
    assert sum(map(looks_like_code, docstrings)) <= 5  # prose, with the odd code example inside a docstring
    assert sum(map(looks_like_code, queries)) >= 38  # Python functions
