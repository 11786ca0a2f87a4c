"""Markdown for the two-run view: one document of a top-k list with its movement, positive mark and shared identifiers.

No raw HTML (tests/test_security.py forbids it in the UI): corpus text goes through ``highlighted_markdown``,
which escapes every markdown character; ids through ``escape_markdown``.
"""
from __future__ import annotations

from core.evaluation.run_diff import ListedDocument
from core.retrieval.highlight import highlight_spans, shared_identifiers
from ui.render import escape_markdown, highlighted_markdown

PREVIEW_LINES = 4
PREVIEW_CHARS = 400
FOLLOWED = ":blue-background[**followed**]"


def preview(text: str) -> str:
    """The first few lines of a document, cut."""
    cut = "\n".join(text.splitlines()[:PREVIEW_LINES])[:PREVIEW_CHARS]
    return cut + ("…" if len(cut) < len(text.rstrip()) else "")


def marker_markdown(marker: str) -> str:
    """The movement marker in its colour: up green, down red, new blue, dropped orange, same grey."""
    colour = {"↑": "green", "↓": "red", "n": "blue", "d": "orange"}.get(marker[:1], "gray")
    return f":{colour}[**{escape_markdown(marker)}**]"


def document_header(doc: ListedDocument, followed: bool) -> str:
    badge = f" :green-badge[positive · grade {doc.grade}]" if doc.relevant else ""
    follow = f" {FOLLOWED}" if followed else ""
    return f"**{doc.rank}** · {escape_markdown(doc.doc_id)}{badge}{follow} · {marker_markdown(doc.marker)}"


def document_body(query_text: str, text: str) -> str:
    """The document's first lines with the identifiers it shares with the query highlighted."""
    return highlighted_markdown(highlight_spans(preview(text), shared_identifiers(query_text, text)))


def query_markdown(query_text: str, document_text: str | None) -> str:
    """The query with the identifiers it shares with ``document_text`` highlighted (none when None)."""
    shared = shared_identifiers(query_text, document_text) if document_text is not None else ()
    return highlighted_markdown(highlight_spans(query_text, shared))
