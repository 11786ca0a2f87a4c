"""Tokenisation of code and text."""
import re

from hypothesis import given, settings, strategies as st

from core.index.analyzers import STOPWORDS, code_tokens, identifier_parts, plain_tokens, word_tokens


def test_identifiers_are_split_and_kept_whole():
    tokens = code_tokens("def getUserName(parse_HTTPResponse2): pass")
    assert {"getusername", "get", "user", "name", "parse_httpresponse2", "parse", "http", "response"} <= set(tokens)


def test_acronyms_and_digits_split_like_people_read_them():
    assert identifier_parts("HTTPServer") == ["HTTP", "Server"]
    assert identifier_parts("utf8Decode") == ["utf", "8", "Decode"]


def test_plain_analyzer_does_not_split_identifiers():
    assert "get" not in plain_tokens("getUserName")
    assert plain_tokens("The user Name") == ["user", "name"]


def test_non_latin_identifiers_survive():
    assert {"שלום", "变量名", "données"} <= set(code_tokens("שלום = 变量名 + données 🙂"))


def test_query_syntax_characters_vanish_from_tokens():
    assert code_tokens('foo:"bar" AND (baz* OR qux~2) [lo TO hi]^3') == ["foo", "bar", "baz", "qux", "lo", "hi"]


def test_words_analyzer_splits_on_letters_and_digits_only():
    assert word_tokens("def read_json(path): return getUserName(__init__, HTTP2)") == [
        "def", "read", "json", "path", "return", "getusername", "init", "http2"]
    assert word_tokens("חשב_סכום 变量名") == ["חשב", "סכום", "变量名"], "other scripts' words survive, split at '_'"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_words_analyzer_equals_the_ascii_regex_on_ascii_text(text):
    expected = [w for w in (m.lower() for m in re.findall(r"[A-Za-z0-9]+", text)) if 1 < len(w) <= 64 and w not in STOPWORDS]
    assert word_tokens(text) == expected
