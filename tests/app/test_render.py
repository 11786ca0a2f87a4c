"""ui.render: untrusted text becomes literal markdown; tables get their formats, best cells and markers."""
import re
import string

import pandas as pd
from hypothesis import given, strategies as st

from core.retrieval.highlight import Span
from ui.render import code_language, escape_markdown, highlighted_markdown, styled_leaderboard


def _unescape(markdown: str) -> str:
    """What a CommonMark renderer shows for our escaped output (backslash escapes, hard breaks, NBSP)."""
    out, index = [], 0
    while index < len(markdown):
        char = markdown[index]
        if char == "\\" and index + 1 < len(markdown) and markdown[index + 1] in string.punctuation:
            out.append(markdown[index + 1])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out).replace("  \n", "\n").replace("\u00a0", " ")


def test_html_links_latex_and_directives_are_escaped():
    escaped = escape_markdown("<script>alert(1)</script> [x](javascript:y) $a$ :red[b] **c** &lt;")
    assert escaped == ("\\<script\\>alert\\(1\\)\\<\\/script\\> \\[x\\]\\(javascript\\:y\\) \\$a\\$ \\:red\\[b\\] "
                       "\\*\\*c\\*\\* \\&lt\\;")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\u00a0\t")))
def test_every_punctuation_character_is_escaped_and_the_text_reads_back(text):
    escaped = escape_markdown(text)
    without_escapes = re.sub(r"\\[!-/:-@\[-`{-~]", "", escaped)
    assert not set(without_escapes) & set(string.punctuation)
    assert _unescape(escaped) == text


def test_line_breaks_and_indentation_survive():
    assert escape_markdown("def f():\n    return 1") == "def f\\(\\)\\:  \n\u00a0\u00a0\u00a0\u00a0return 1"


def test_highlighted_markdown_wraps_only_shared_spans_and_escapes_them():
    markdown = highlighted_markdown([Span("Load ", False), Span("user_name", True), Span(" [x]\nnext", False)])
    assert markdown == "Load :orange-background[user\\_name] \\[x\\]  \nnext"
    indented = highlighted_markdown([Span("  indented", False), Span("   gap", False)])
    assert indented == "\u00a0\u00a0indented\u00a0\u00a0\u00a0gap"


def test_code_language_maps_dataset_names_and_defaults_to_python():
    assert code_language("JavaScript") == "javascript"
    assert code_language("") == "python"
    assert code_language("cobol") == "python"


def test_styled_leaderboard_formats_numbers_bolds_best_cells_and_appends_markers():
    table = pd.DataFrame({"ndcg@10": [0.5, 0.75], "ms/query": [1.234, 9.0], "run id": ["a", "b"]}, index=["x", "y"])
    markers = pd.DataFrame({"ndcg@10": ["", "▲"]}, index=["x", "y"])
    html = styled_leaderboard(table, {"ndcg@10": ["y"], "ms/query": ["x"]}, ["ndcg@10"], "ms/query", markers).to_html()
    assert "0.5000<" in html and "0.7500 ▲" in html and "1.23<" in html
    assert html.count("font-weight: bold") == 1  # one CSS rule naming both best cells
    bold_rule = html.split("font-weight: bold")[0]  # the selectors of the one bold rule
    assert "row1_col0" in bold_rule and "row0_col1" in bold_rule and "row0_col0" not in bold_rule


def test_styled_leaderboard_adds_the_intervals_half_width_and_the_chart_its_error_bars():
    import pytest

    from ui.render import metrics_bar_chart

    table = pd.DataFrame({"ndcg@10": [0.5, 0.75], "ms/query": [1.0, 2.0]}, index=["x", "y"])
    intervals = pd.DataFrame({"run": ["x", "y"], "metric": ["ndcg@10", "ndcg@10"], "mean": [0.5, 0.75],
                              "low": [0.45, 0.70], "high": [0.56, 0.78]})
    markers = pd.DataFrame({"ndcg@10": ["", "ᵃ"]}, index=["x", "y"])
    html = styled_leaderboard(table, {"ndcg@10": ["y"]}, ["ndcg@10"], "ms/query", markers, intervals).to_html()
    assert "0.5000 ± 0.055<" in html and "0.7500 ± 0.040 ᵃ" in html
    bars = metrics_bar_chart(table, ["ndcg@10"], intervals).data
    by_run = {trace.name: trace for trace in bars}
    assert list(by_run["x"].error_y.array) == pytest.approx([0.06]) and list(by_run["x"].error_y.arrayminus) == pytest.approx([0.05])


def test_metrics_bar_chart_shows_run_names_as_text_not_plotly_html():
    from ui.render import metrics_bar_chart

    hostile = '<a href="http://evil.example/login">log in again</a>'
    table = pd.DataFrame({"ndcg@10": [0.5, 0.7]}, index=[hostile, "bm25-code"])
    figure = metrics_bar_chart(table, ["ndcg@10"])
    names = [trace.name for trace in figure.data]
    assert names == ['&lt;a href="http://evil.example/login"&gt;log in again&lt;/a&gt;', "bm25-code"]
