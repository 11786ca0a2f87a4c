"""HTML for the two-run view: two top-k lists in columns, the same document lit up in both on hover or selection.

Every piece of corpus or query text is ``html.escape``d; documents are addressed by their position in
the union of both lists (``data-doc="3"``), never by their id, so no id reaches the CSS. Hover works
without JavaScript: one ``:has()`` rule per shown document highlights every element with its number.
"""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from core.evaluation.run_diff import ListedDocument
from core.retrieval.highlight import Span, highlight_spans, shared_identifiers

PREVIEW_LINES = 4
PREVIEW_CHARS = 400
_STYLE = """
.cr-lists {display: grid; grid-template-columns: 1fr 1fr; gap: 14px; font-size: 0.86rem;}
.cr-head {font-weight: 600; margin-bottom: 4px;}
.cr-doc {border: 1px solid #ddd; border-radius: 6px; padding: 5px 8px; margin-bottom: 6px; background: #fff;}
.cr-doc.cr-selected {outline: 3px solid #1f77b4; background: #eaf3fb;}
.cr-doc.cr-relevant {border-left: 6px solid #2e9d4a;}
.cr-top {display: flex; gap: 8px; align-items: baseline;}
.cr-rank {font-weight: 700; min-width: 2.2em;}
.cr-id {font-family: monospace; color: #555; overflow-wrap: anywhere;}
.cr-move {margin-left: auto; font-weight: 600; white-space: nowrap;}
.cr-up {color: #2e9d4a;} .cr-down {color: #d62728;} .cr-new {color: #1f77b4;} .cr-dropped {color: #8c564b;} .cr-same {color: #777;}
.cr-pos {background: #2e9d4a; color: #fff; border-radius: 4px; padding: 0 5px; font-size: 0.75rem;}
.cr-text {font-family: monospace; white-space: pre-wrap; margin: 3px 0 0 0; color: #222; max-height: 7.5em; overflow: hidden;}
.cr-query {font-family: monospace; white-space: pre-wrap; border: 1px solid #ddd; border-radius: 6px; padding: 8px;
           background: #fafafa; max-height: 14em; overflow: auto; font-size: 0.86rem;}
mark.cr-shared {background: #ffd580; padding: 0;}
"""


def spans_html(spans: Sequence[Span]) -> str:
    """Escaped text with the shared spans in ``<mark>``."""
    return "".join(f'<mark class="cr-shared">{html.escape(s.text)}</mark>' if s.shared else html.escape(s.text) for s in spans)


def preview(text: str) -> str:
    """The first few lines of a document, cut."""
    lines = text.splitlines()[:PREVIEW_LINES]
    cut = "\n".join(lines)[:PREVIEW_CHARS]
    return cut + ("…" if len(cut) < len(text.rstrip()) else "")


def _marker_class(marker: str) -> str:
    return {"↑": "cr-up", "↓": "cr-down", "n": "cr-new", "d": "cr-dropped"}.get(marker[:1], "cr-same")


def query_html(query_text: str, document_text: str | None) -> str:
    """The query, with the identifiers it shares with ``document_text`` marked (none marked when None)."""
    shared = shared_identifiers(query_text, document_text) if document_text is not None else ()
    return f'<div class="cr-query">{spans_html(highlight_spans(query_text, shared))}</div>'


def lists_html(query_text: str, left: Sequence[ListedDocument], right: Sequence[ListedDocument],
               texts: Mapping[str, str], titles: tuple[str, str], selected: str | None = None) -> str:
    """Both lists as one HTML block; each document shows rank, id, movement, positive mark and a highlighted preview."""
    union = list(dict.fromkeys([d.doc_id for d in left] + [d.doc_id for d in right]))
    number = {doc_id: i for i, doc_id in enumerate(union)}
    hover = "\n".join(f'.cr-lists:has([data-doc="{i}"]:hover) [data-doc="{i}"] {{outline: 3px solid #f0b400; background: #fff7d6;}}'
                      for i in range(len(union)))

    def column(title: str, documents: Sequence[ListedDocument]) -> str:
        items = []
        for doc in documents:
            text = texts.get(doc.doc_id, "")
            classes = "cr-doc" + (" cr-relevant" if doc.relevant else "") + (" cr-selected" if doc.doc_id == selected else "")
            badge = f'<span class="cr-pos">positive · grade {doc.grade}</span>' if doc.relevant else ""
            body = spans_html(highlight_spans(preview(text), shared_identifiers(query_text, text)))
            items.append(f'<div class="{classes}" data-doc="{number[doc.doc_id]}" title="{html.escape(doc.doc_id)}">'
                         f'<div class="cr-top"><span class="cr-rank">{doc.rank}</span>'
                         f'<span class="cr-id">{html.escape(doc.doc_id)}</span>{badge}'
                         f'<span class="cr-move {_marker_class(doc.marker)}">{html.escape(doc.marker)}</span></div>'
                         f'<div class="cr-text">{body}</div></div>')
        if not items:
            items.append('<div class="cr-doc">no documents retrieved</div>')
        return f'<div><div class="cr-head">{html.escape(title)}</div>{"".join(items)}</div>'

    return (f"<style>{_STYLE}\n{hover}</style>"
            f'<div class="cr-lists">{column(titles[0], left)}{column(titles[1], right)}</div>')
