"""Tokenisation for lexical retrieval, kept apart from scoring (as bm25s does).

``code`` splits identifiers into their parts (camelCase, PascalCase, snake_case, digits) and keeps
the whole identifier too, so ``getUserName`` matches both "get user name" and ``getusername``.
``words`` splits text into runs of letters and digits (``[A-Za-z0-9]+`` on ASCII), so ``read_json`` gives
``read`` and ``json`` but ``getUserName`` stays whole; the ``bm25-plain`` profile uses it (docs/results.md
compares it with ``plain``). ``plain`` keeps underscores inside words (``read_json`` stays whole), as the
``bm25-plain`` profile did before; it stays for profiles that name it.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

# Words: runs of letters/digits/underscore in any script; \w covers RTL scripts and CJK.
_WORD = re.compile(r"\w+", re.UNICODE)
# Letters and digits only: exactly [A-Za-z0-9]+ on ASCII text; other scripts' letters and digits count too.
_ALNUM = re.compile(r"[^\W_]+", re.UNICODE)
# Parts of one identifier piece: acronyms (HTTPServer -> HTTP, Server), Capitalised, lower, digits, other letters.
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\W\d_A-Za-z]+", re.UNICODE)

# A short English list: enough to stop "the"/"of" dominating docstring matches, small enough to keep code words.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to "
    "was will with".split()
)
MAX_TOKEN_CHARS = 64  # longer tokens are hashes/base64 blobs; Tantivy refuses terms over 65k bytes anyway


def plain_tokens(text: str) -> list[str]:
    """Lowercased words of two or more characters, stopwords dropped."""
    return [w for w in (m.group().lower() for m in _WORD.finditer(text))
            if len(w) > 1 and len(w) <= MAX_TOKEN_CHARS and w not in STOPWORDS]


def word_tokens(text: str) -> list[str]:
    """Lowercased runs of letters and digits (``[A-Za-z0-9]+`` on ASCII) of two or more characters, stopwords dropped."""
    return [w for w in (m.group().lower() for m in _ALNUM.finditer(text))
            if len(w) > 1 and len(w) <= MAX_TOKEN_CHARS and w not in STOPWORDS]


def identifier_parts(word: str) -> list[str]:
    """``parse_HTTPResponse2`` -> ``['parse', 'HTTP', 'Response', '2']``."""
    return [part for piece in word.split("_") if piece for part in _PART.findall(piece)]


def code_tokens(text: str) -> list[str]:
    """Plain words plus the lowercased parts of every compound identifier."""
    tokens: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        lowered = word.lower()
        if len(lowered) > MAX_TOKEN_CHARS:
            continue
        parts = identifier_parts(word)
        if len(parts) > 1 or (parts and parts[0].lower() != lowered):
            if len(lowered) > 1 and lowered.strip("_"):
                tokens.append(lowered.strip("_"))
            tokens.extend(p.lower() for p in parts if len(p) > 1 and p.lower() not in STOPWORDS)
        elif len(lowered) > 1 and lowered not in STOPWORDS:
            tokens.append(lowered)
    return tokens


@dataclass(frozen=True)
class Analyzer:
    """A named tokenizer; the name is stored with every index built with it."""

    name: str
    description: str
    tokenize: Callable[[str], list[str]]

    def term_counts(self, text: str) -> Counter[str]:
        return Counter(self.tokenize(text))


ANALYZERS: dict[str, Analyzer] = {
    "code": Analyzer("code", "identifiers split (camelCase, snake_case, digits) + whole identifier", code_tokens),
    "plain": Analyzer("plain", "lowercased words, no identifier splitting", plain_tokens),
    "words": Analyzer("words", "lowercased [A-Za-z0-9]+ words, as common BM25 tokenisers split", word_tokens),
}


def get_analyzer(name: str) -> Analyzer:
    from core.errors import ProfileError

    try:
        return ANALYZERS[name]
    except KeyError:
        raise ProfileError(f"Unknown analyzer {name!r}; choose one of {', '.join(ANALYZERS)}.") from None
