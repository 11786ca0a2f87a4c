"""Tokenisation of code and text."""
from core.index.analyzers import code_tokens, identifier_parts, plain_tokens


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
