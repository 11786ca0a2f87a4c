"""Hostile queries: whatever a user pastes, every profile answers with a ranking or a clear QueryError.

The fixed inputs below and the hypothesis examples are counted in docs/reliability.md; keep
``FIXED_INPUT_COUNT`` and the ``max_examples`` there in step when adding cases.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.datasets import Dataset, Document, Qrels, Query
from core.errors import QueryError
from core.retrieval.profiles import Bm25Profile, default_profiles
from core.retrieval.engine import MAX_QUERY_CHARS, Engine, SearchResult, clean_query_text

SYNTAX_CHARACTERS = ["+", "-", "&&", "||", "!", "(", ")", "{", "}", "[", "]", "^", '"', "~", "*", "?", ":", "\\", "/",
                     "AND", "OR", "NOT", "TO"]
EMPTY_INPUTS = {
    "empty": "",
    "spaces": "   ",
    "whitespace mix": " \t\n\r\x0b\x0c \u00a0\u2003\u3000",
    "only NUL bytes": "\x00" * 16,
    "NULs and newlines": "\x00\n\x00\t",
}
HOSTILE_INPUTS = {
    "one character": "x",
    "binary with NUL": "def f():\x00\x01\x02\x7f\x1b[31m return 1",
    "decoded random bytes": bytes(range(256)).decode("utf-8", "replace"),
    "lone high surrogate": "\ud800",
    "lone low surrogate in code": "def f(\udfff): return x",
    "surrogate pair halves reversed": "\udc00\ud800 parse",
    "every syntax character spaced": " ".join(SYNTAX_CHARACTERS),
    "every syntax character glued": "".join(SYNTAX_CHARACTERS),
    "syntax around words": 'title:"parse json" AND (url* OR [a TO z]) NOT ~fuzzy^2 -minus +plus \\escape /regex/',
    "unbalanced quote": '"parse the url',
    "unbalanced parens": "((((parse",
    "field syntax": "body:parse row:3 _id:d1",
    "regex syntax": "/.*/ /[a-z]+/",
    "wildcards only": "* ? ** *?*",
    "boolean words only": "AND OR NOT TO",
    "sql injection": "SELECT * FROM users WHERE name = '' OR '1'='1'; DROP TABLE documents; --",
    "sql comment": "1; -- ' /* */ UNION SELECT password FROM accounts",
    "script tag": "<script>alert(1)</script>",
    "attribute breakout": '"><img src=x onerror=alert(1)>',
    "javascript url": "javascript:alert(document.cookie)",
    "markdown injection": "[click](javascript:alert(1)) ![x](http://evil/x.png) **bold** `code`",
    "hebrew identifiers": "def חשב_סכום(רשימה):\n    return sum(רשימה)",
    "arabic identifiers": "دالة_الجمع = lambda قائمة: sum(قائمة)",
    "right-to-left override": "def f(\u202eevil\u202c): return \u2067x\u2069",
    "emoji identifiers": "def 🚀_launch(😀): return '👍🏽' + 🐍",
    "zero-width and BOM": "\ufeffpar\u200bse\u200d_url\u2060",
    "combining marks": "Z\u0351\u0364\u036b\u0313a\u0302\u0310l\u0346go parse",
    "cjk": "解析 JSON 文件 def 读取(路径):",
    "very long token": "a" * 70_000,
    "many distinct words": " ".join(f"identifier{i}" for i in range(5_000)),
    "format string": "%s %n %x {0} {__class__} ${jndi:ldap://x}",
    "path traversal text": "../../etc/passwd ..\\..\\windows\\system32",
    "control characters": "".join(chr(c) for c in range(1, 32)) + "parse",
}
ONE_MEGABYTE_OF_CODE = "one megabyte of code"
FIXED_INPUT_COUNT = len(EMPTY_INPUTS) + len(HOSTILE_INPUTS) + 1  # + the megabyte of code


@pytest.fixture(scope="module")
def megabyte_of_code(csn_mini: Dataset) -> str:
    """About 1 MB of real Python: the benchmark's code queries pasted one after another."""
    code = "\n\n".join(q.text for q in csn_mini.queries)
    return (code * (1_000_000 // len(code) + 1))[:1_000_000]


def assert_valid_ranking(result: SearchResult, engine: Engine, name: str, depth: int = 100) -> None:
    """A ranking of known, distinct documents with finite scores, best first, at most ``depth`` long."""
    ranking = result.ranking
    assert result.profile == name
    assert len(ranking.doc_ids) == len(ranking.scores) <= depth
    assert len(set(ranking.doc_ids)) == len(ranking.doc_ids), f"{name}: a document is ranked twice"
    assert set(ranking.doc_ids) <= set(engine.dataset.doc_index), f"{name}: ranks a document not in the corpus"
    assert all(math.isfinite(s) for s in ranking.scores), f"{name}: non-finite score"
    assert list(ranking.scores) == sorted(ranking.scores, reverse=True), f"{name}: not best first"
    assert result.seconds >= 0


def search_or_query_error(engine: Engine, name: str, text: str) -> SearchResult | None:
    """Search; None when the engine refused the text with a QueryError (anything else propagates and fails)."""
    try:
        return engine.search(name, text)
    except QueryError as exc:
        assert "empty" in str(exc), f"{name}: unexpected QueryError {exc}"
        return None


def is_blank(text: str) -> bool:
    return not text.replace("\x00", " ").strip()


@pytest.mark.parametrize("case", EMPTY_INPUTS, ids=list(EMPTY_INPUTS))
def test_empty_or_whitespace_only_query_is_refused_by_every_profile_with_a_clear_message(csn_engine: Engine, case: str) -> None:
    for name in csn_engine.profiles:
        with pytest.raises(QueryError, match="The query is empty: paste some code or type a few words"):
            csn_engine.search(name, EMPTY_INPUTS[case])


@pytest.mark.parametrize("case", HOSTILE_INPUTS, ids=list(HOSTILE_INPUTS))
def test_hostile_query_gets_a_valid_ranking_from_every_profile(csn_engine: Engine, case: str) -> None:
    text = HOSTILE_INPUTS[case]
    for name in csn_engine.profiles:
        assert_valid_ranking(csn_engine.search(name, text), csn_engine, name)


def test_a_megabyte_of_code_is_cut_and_searched_by_every_profile(csn_engine: Engine, megabyte_of_code: str) -> None:
    assert len(megabyte_of_code.encode()) >= 1_000_000
    for name in csn_engine.profiles:
        result = csn_engine.search(name, megabyte_of_code)
        assert_valid_ranking(result, csn_engine, name)
        assert result.truncated, f"{name}: a 1 MB paste must be reported as cut"
        assert len(result.ranking) > 0, f"{name}: real code shares terms with the corpus"


def test_cleaned_query_text_is_valid_utf8_without_nul_and_at_most_the_cap() -> None:
    for text in [*HOSTILE_INPUTS.values(), "x" * (MAX_QUERY_CHARS + 10)]:
        cleaned, truncated = clean_query_text(text)
        cleaned.encode("utf-8")  # strict: no lone surrogates survive
        assert "\x00" not in cleaned
        assert len(cleaned) <= MAX_QUERY_CHARS
        assert truncated == (len(text) > MAX_QUERY_CHARS)
    with pytest.raises(QueryError, match="must be text"):
        clean_query_text(b"def f(): pass")  # type: ignore[arg-type]


# ---- query syntax is searched, not parsed -------------------------------------------------------

SYNTAX_CORPUS = {
    "d-alpha-beta": "alpha beta",
    "d-alpha": "alpha gamma",
    "d-beta": "beta epsilon",
    "d-delta": "delta",
    "d-title": "title of the page",
    "d-hebrew": "def חשב_סכום(רשימה): return sum(רשימה)",
    "d-emoji": "def 🚀_launch(): return '😀'",
    "d-and-mask": "AND_MASK = 0xFF  # used by the bitwise AND",
}


@pytest.fixture(scope="module")
def syntax_engine(tmp_path_factory) -> Engine:
    """BM25 profiles over a corpus whose words overlap the query syntax, in a workspace of its own."""
    from core.workspace import Workspace

    documents = tuple(Document(doc_id, text) for doc_id, text in SYNTAX_CORPUS.items())
    dataset = Dataset("syntax", documents, (Query("q", "alpha"),), Qrels({"q": {"d-alpha": 1}}))
    workspace = Workspace.open(tmp_path_factory.mktemp("syntax-workspace"))
    profiles = {name: p for name, p in default_profiles().items() if isinstance(p, Bm25Profile)}
    return Engine(workspace, dataset, profiles)


def found(engine: Engine, name: str, text: str) -> set[str]:
    return set(engine.search(name, text).ranking.doc_ids)


@pytest.mark.parametrize("name", ["bm25-code", "bm25-plain"])
def test_boolean_operators_are_words_not_operators(syntax_engine: Engine, name: str) -> None:
    both = {"d-alpha-beta", "d-alpha", "d-beta"}
    assert found(syntax_engine, name, "alpha AND beta") == both, "AND must not intersect"
    assert found(syntax_engine, name, "alpha && beta") == both
    assert found(syntax_engine, name, "NOT alpha") == {"d-alpha-beta", "d-alpha"}, "NOT must not exclude"
    assert found(syntax_engine, name, "-alpha") == {"d-alpha-beta", "d-alpha"}, "'-' must not exclude"
    assert found(syntax_engine, name, "+alpha +beta") == both, "'+' must not require"
    assert found(syntax_engine, name, "[alpha TO beta]") == both, "ranges are not parsed"


@pytest.mark.parametrize("name", ["bm25-code", "bm25-plain"])
def test_field_wildcard_fuzzy_and_boost_syntax_is_searched_as_text(syntax_engine: Engine, name: str) -> None:
    assert found(syntax_engine, name, "title:delta") == {"d-title", "d-delta"}, "'title' is a word, not a field"
    assert found(syntax_engine, name, "alph*") == set(), "'*' is not a wildcard"
    assert found(syntax_engine, name, "delt~2") == set(), "'~' is not fuzzy matching"
    assert found(syntax_engine, name, '"alpha') == {"d-alpha-beta", "d-alpha"}
    boosted = syntax_engine.search(name, "alpha^10 beta").ranking
    plain = syntax_engine.search(name, "alpha beta").ranking
    assert boosted.doc_ids == plain.doc_ids and np.allclose(boosted.scores, plain.scores), "'^' is not a boost"


@pytest.mark.parametrize("name", ["bm25-code", "bm25-plain"])
def test_a_query_made_only_of_syntax_characters_is_searched_not_parsed(syntax_engine: Engine, name: str) -> None:
    # the operator words are English stopwords in both analyzers: they match nothing, as "the" would
    for text in [*SYNTAX_CHARACTERS, " ".join(SYNTAX_CHARACTERS), "".join(SYNTAX_CHARACTERS)]:
        assert syntax_engine.search(name, text).ranking.doc_ids == (), repr(text)
    # the same words inside an identifier are searched, so the document using them is found
    assert syntax_engine.search(name, "AND_MASK").ranking.doc_ids[0] == "d-and-mask"


def test_right_to_left_and_emoji_identifiers_find_their_document(syntax_engine: Engine) -> None:
    assert syntax_engine.search("bm25-code", "חשב_סכום").ranking.doc_ids[0] == "d-hebrew"
    assert syntax_engine.search("bm25-code", "סכום").ranking.doc_ids[0] == "d-hebrew", "identifier parts are split"
    assert syntax_engine.search("bm25-code", "🚀_launch").ranking.doc_ids[0] == "d-emoji"


# ---- random text ----------------------------------------------------------------------------------

TEXT_EXAMPLES = 50
BYTES_EXAMPLES = 30


def check_every_profile(engine: Engine, text: str) -> None:
    for name in engine.profiles:
        result = search_or_query_error(engine, name, text)
        if result is None:
            assert is_blank(text), f"{name} refused a non-blank query {text!r}"
        else:
            assert not is_blank(text), f"{name} searched a blank query {text!r}"
            assert_valid_ranking(result, engine, name)


@settings(max_examples=TEXT_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=200))
def test_random_text_never_crashes_any_profile(csn_engine: Engine, text: str) -> None:
    check_every_profile(csn_engine, text)


@settings(max_examples=BYTES_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")))
def test_random_bytes_decoded_as_text_never_crash_any_profile(csn_engine: Engine, text: str) -> None:
    check_every_profile(csn_engine, text)
