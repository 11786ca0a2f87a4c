"""Making any pasted text a searchable query: what every retriever, stored or loaded, does before it searches.

Kept apart from the engine so that commands which only search a stored corpus import neither LanceDB nor torch.
"""
from __future__ import annotations

from core.errors import QueryError

MAX_QUERY_CHARS = 100_000  # longer pastes are cut (and the result says so): models read 256 tokens anyway


def clean_query_text(text: str) -> tuple[str, bool]:
    """Make any pasted text searchable: drop NULs and lone surrogates, cut very long input."""
    if not isinstance(text, str):
        raise QueryError("A query must be text.")
    text = text.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")
    truncated = len(text) > MAX_QUERY_CHARS
    text = text[:MAX_QUERY_CHARS]
    if not text.strip():
        raise QueryError("The query is empty: paste some code or type a few words.")
    return text, truncated
