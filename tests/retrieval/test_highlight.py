"""Shared identifiers between a query and a document, and the spans that mark them."""
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
