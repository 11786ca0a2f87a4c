"""Identifiers a query and a document share, and where they sit in the document's text.

Shared means: the same code token (``core.index.analyzers.code_tokens``: whole identifiers and their
camelCase/snake_case parts, lowercased), so ``getUserName`` in a query and "user name" in a
docstring share ``user`` and ``name``. The explorer shows these to explain a lexical match.
"""
from __future__ import annotations

import keyword
import re
from collections.abc import Collection
from dataclasses import dataclass

from core.index.analyzers import code_tokens

_WORD = re.compile(r"\w+", re.UNICODE)
_JOINABLE_GAP = re.compile(r"[ \t]+")
# Keywords are not identifiers: "return" or "def" shared with every docstring explain nothing.
KEYWORDS = frozenset(k.lower() for k in keyword.kwlist) | frozenset(
    "self cls this func function var let const fn pub public private protected static void new end nil null "
    "undefined package".split())


@dataclass(frozen=True)
class Span:
    """A piece of a document's text; ``shared`` pieces hold words that also occur in the query."""

    text: str
    shared: bool


def shared_identifiers(query_text: str, document_text: str) -> tuple[str, ...]:
    """Code tokens (keywords left out) found in both texts, in the order they first appear in the document."""
    in_query = set(code_tokens(query_text)) - KEYWORDS
    return tuple(token for token in dict.fromkeys(code_tokens(document_text)) if token in in_query)


def highlight_spans(text: str, shared: Collection[str]) -> tuple[Span, ...]:
    """Cut ``text`` into spans, marking each word that has a shared token.

    Neighbouring shared words separated only by spaces become one span, so a phrase reads as one
    highlight. Joining the spans' texts gives back ``text`` exactly.
    """
    wanted = set(shared)
    pieces: list[Span] = []
    position = 0
    for match in _WORD.finditer(text):
        if match.start() > position:
            pieces.append(Span(text[position:match.start()], False))
        word = match.group()
        pieces.append(Span(word, bool(wanted) and any(token in wanted for token in code_tokens(word))))
        position = match.end()
    if position < len(text):
        pieces.append(Span(text[position:], False))
    return _merge(pieces)


def _merge(pieces: list[Span]) -> tuple[Span, ...]:
    """Join runs of equal marking, and shared words across a plain space or tab gap."""
    merged: list[Span] = []
    for index, piece in enumerate(pieces):
        bridges = (not piece.shared and _JOINABLE_GAP.fullmatch(piece.text) is not None and merged
                   and merged[-1].shared and index + 1 < len(pieces) and pieces[index + 1].shared)
        shared = piece.shared or bool(bridges)
        if merged and merged[-1].shared == shared:
            merged[-1] = Span(merged[-1].text + piece.text, shared)
        else:
            merged.append(Span(piece.text, shared))
    return tuple(merged)


_CODE_LINE = re.compile(
    r"^\s*(import|package|public|private|static|#include|using)\s+[\w.<>]+"  # a declaration
    r"|^\s*from\s+[\w.]+\s+import\b"  # Python import
    r"|^\s*[\w.\[\]'\"]+\s*[-+*/]?=\s*\S"  # an assignment
    r"|[{};]\s*$|\)\s*:\s*$|\)\s*\{"  # a block opened or closed, a statement ended
    r"|=>|::|->\s*\w", re.MULTILINE)
CODE_LINE_SHARE = 0.3  # of non-blank lines that read like code, for a text to count as code
_DEFINITION = re.compile(r"^\s*(async\s+)?(def|class|function|func|fn)\s+\w+\s*[(<:{]", re.MULTILINE)


def looks_like_code(text: str) -> bool:
    """True when enough lines of ``text`` read like code (definitions, assignments, braces), False for prose.

    Used to decide whether a docstring or query is highlighted as code: a dataset tags its
    natural-language side with the code's language, and prose highlighted as Python reads badly.
    """
    if _DEFINITION.search(text):
        return True  # a function or class definition, however long the docstring inside it
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return False
    return sum(1 for line in lines if _CODE_LINE.search(line)) / len(lines) >= CODE_LINE_SHARE
