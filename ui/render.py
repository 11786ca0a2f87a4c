"""Turning core tables and untrusted text into things Streamlit draws safely: markdown, styled tables, charts.

Corpus and query text is untrusted. ``escape_markdown`` backslash-escapes every ASCII punctuation
character (CommonMark allows it for all of them), so no text can open a tag, link, image, emphasis,
LaTeX (``$``), Streamlit directive or icon (``:``); HTML is never allowed anywhere.

Escapes alone do not stop GitHub's autolinks: the renderer joins ``https\:\/\/x\.y`` back into the text
``https://x.y`` and then links bare URLs, ``www.`` names and e-mail addresses in it. So an invisible word joiner
(U+2060) goes before the first dot of each such domain: a domain without a dot is never linked, and the text
reads the same.
"""
from __future__ import annotations

import html
import re
import string
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from pandas.io.formats.style import Styler

from core.errors import MetricError
from core.retrieval.highlight import Span, looks_like_code
from core.evaluation.metrics import parse_metric

HIGHLIGHT = "orange-background"
_PUNCTUATION = frozenset(string.punctuation)
_SPACE_RUN = re.compile(r" {2,}")
WORD_JOINER = "\u2060"
# The domain label right after what GFM autolinks (http://, https://, www, an e-mail's @), up to its first dot.
_AUTOLINK_DOMAIN = re.compile(r"(?:(?:https?|ftp)://|www(?=\.)|(?<=[\w.+-])@)[^\s./@]*(?=\.)", re.IGNORECASE)
_ST_CODE_LANGUAGES = {"python": "python", "go": "go", "java": "java", "javascript": "javascript", "js": "javascript",
                      "typescript": "typescript", "ts": "typescript", "ruby": "ruby", "php": "php", "c": "c",
                      "cpp": "cpp", "c++": "cpp", "csharp": "csharp", "c#": "csharp", "rust": "rust", "sql": "sql",
                      "bash": "bash", "shell": "bash", "kotlin": "kotlin", "scala": "scala", "swift": "swift"}


def code_language(language: str | None, text: str | None = None) -> str | None:
    """The st.code language for a dataset language name (python when unknown); None (plain) for prose.

    Datasets tag a docstring or a natural-language query with its code's language; highlighting that
    prose as code colours random words, so text that does not look like code is shown plain.
    """
    if text is not None and not looks_like_code(text):
        return None
    return _ST_CODE_LANGUAGES.get((language or "").strip().lower(), "python")


def break_autolinks(text: str) -> str:
    """``text`` with a word joiner before the first dot of every domain GFM would autolink (it then links none)."""
    return _AUTOLINK_DOMAIN.sub(lambda m: m.group() + WORD_JOINER, text)


def _escape_line(line: str, line_start: bool = True) -> str:
    line = break_autolinks(line.replace("\t", "    "))
    escaped = "".join(f"\\{char}" if char in _PUNCTUATION else char for char in line)
    # Keep indentation and runs of spaces: markdown would collapse them, or read an indented line as a code block.
    escaped = _SPACE_RUN.sub(lambda m: "\u00a0" * len(m.group()), escaped)
    return "\u00a0" + escaped[1:] if line_start and escaped.startswith(" ") else escaped


def preview_text(text: str, limit: int) -> str:
    """``text`` on one line (runs of whitespace made one space), cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def escape_markdown(text: str) -> str:
    """``text`` as markdown that renders literally, line breaks and indentation kept."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "  \n".join(_escape_line(line) for line in lines)


def highlighted_markdown(spans: Sequence[Span]) -> str:
    """Escaped markdown of ``spans`` with the shared ones on an orange background (per line, so breaks survive)."""
    lines: list[list[str]] = [[]]
    for span in spans:
        parts = span.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for index, part in enumerate(parts):
            if index:
                lines.append([])
            if not part:
                continue
            escaped = _escape_line(part, line_start=not lines[-1])
            lines[-1].append(f":{HIGHLIGHT}[{escaped}]" if span.shared and part.strip() else escaped)
    return "  \n".join("".join(line) for line in lines)


def styled_leaderboard(table: pd.DataFrame, best: Mapping[str, Sequence[str]], metric_columns: Sequence[str],
                       time_column: str, markers: pd.DataFrame | None = None,
                       intervals: pd.DataFrame | None = None) -> Styler:
    """Metric means to 4 decimals, time to 2, the best cell of each column in bold.

    ``markers`` (row label x column -> short text, e.g. significance marks) is appended to the cells it names;
    ``intervals`` (long: run, metric, mean, low, high, from core.evaluation.bootstrap) adds "± half width".
    """
    spread = {}
    if intervals is not None:
        spread = {(run, metric): (high - low) / 2 for run, metric, low, high
                  in intervals[["run", "metric", "low", "high"]].itertuples(index=False)}
    styler = table.style
    css = pd.DataFrame("", index=table.index, columns=table.columns)
    for column in [*metric_columns, time_column]:
        if column not in table.columns:
            continue
        digits = 2 if column == time_column else 4
        winners = set(best.get(column, ()))
        for label in table.index:
            marker = ""
            if markers is not None and label in markers.index and column in markers.columns:
                marker = markers.at[label, column] if isinstance(markers.at[label, column], str) else ""
            if (label, column) in spread:
                marker = f"± {spread[label, column]:.3f} {marker}".rstrip()
            styler = styler.format(_number(digits, marker), subset=pd.IndexSlice[[label], [column]])
            if label in winners:
                css.at[label, column] = "font-weight: bold"
    return styler.apply(lambda _: css, axis=None)


def _number(digits: int, marker: str):
    def fmt(value: object) -> str:
        text = "—" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"
        return f"{text} {marker}" if marker else text

    return fmt


def metrics_bar_chart(table: pd.DataFrame, metric_columns: Sequence[str], intervals: pd.DataFrame | None = None) -> go.Figure:
    """Grouped bars: one group per metric, one bar per run; error bars from ``intervals`` (run, metric, low, high)."""
    long = (table[list(metric_columns)].rename_axis("run").reset_index()
            .melt(id_vars="run", var_name="metric", value_name="value"))
    labelled = len(long) <= 16  # values on the bars while they stay legible; hover shows them otherwise
    errors = {}
    if intervals is not None:
        long = long.merge(intervals[["run", "metric", "low", "high"]], on=["run", "metric"], how="left")
        long["above"], long["below"] = long["high"] - long["value"], long["value"] - long["low"]
        errors = {"error_y": "above", "error_y_minus": "below"}
    long["metric"] = [_metric_label(key) for key in long["metric"]]
    long["run"] = long["run"].map(plotly_text)  # profile names are user text; Plotly reads legend and hover as HTML
    figure = px.bar(long, x="metric", y="value", color="run", barmode="group", text_auto=".3f" if labelled else False,
                    **errors)
    figure.update_layout(yaxis_title=None, xaxis_title=None, legend_title_text=None, margin=dict(l=10, r=10, t=30, b=10),
                         legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0))
    figure.update_yaxes(range=[0, 1.05])
    if errors and labelled:  # values at the top of a bar sit under the interval's whisker: draw them mid-bar
        figure.update_traces(textposition="inside", insidetextanchor="middle")
    return figure


def plotly_text(text: object) -> str:
    """``text`` as Plotly draws it literally: Plotly reads labels, legends and hover text as HTML (``<a href>``
    makes a link), and turns ``&lt;`` back into ``<`` for display."""
    return html.escape(str(text), quote=False)  # Plotly decodes &lt; &gt; &amp; but not &quot;: quotes stay as typed


def _metric_label(key: str) -> str:
    try:
        return parse_metric(key).label()
    except MetricError:
        return key


def length_histogram(lengths: pd.DataFrame, kind: str, unit: str) -> go.Figure:
    """Histogram of ``unit`` (tokens or characters) over the rows of ``kind`` (document or query)."""
    values = lengths[lengths["kind"] == kind]
    figure = px.histogram(values, x=unit, nbins=40, title=f"{kind.capitalize()} length ({unit})")
    figure.update_layout(yaxis_title="count", bargap=0.05, margin=dict(l=10, r=10, t=40, b=10))
    return figure


# The one stylesheet the app adds: multiselect chips (profile names, metrics) show their whole text instead of
# an ellipsis. A constant with no markup but the <style> block and no data in it (tests/test_security.py checks).
STYLESHEET = ("<style>.stMultiSelect [data-tag] {max-width: 100%; height: auto;}"
              ".stMultiSelect [data-tag] > span[title] {max-width: none; overflow: visible; text-overflow: clip;"
              " white-space: normal; overflow-wrap: anywhere;}</style>")


def apply_stylesheet() -> None:
    """Add STYLESHEET to the page (Streamlit has no other way to style a widget's chips)."""
    st.html(STYLESHEET)
