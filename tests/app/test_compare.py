"""The significance page shows exactly what core.evaluation.significance computes, and its report holds the same numbers."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from scipy import stats
from streamlit.testing.v1 import AppTest

from core.evaluation.metrics import DEFAULT_METRICS, evaluate
from core.retrieval.profiles import default_profiles
from core.retrieval.engine import Engine
from core.evaluation.significance import compare_all, marked_leaderboard

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PROFILES = ("bm25-code", "bm25-plain", "dense-minilm")


@pytest.fixture(scope="module")
def cosqa_evaluations(session_workspace, cosqa_mini):
    """cosqa-mini, where the dense model beats BM25 significantly on 40 queries."""
    engine = Engine(session_workspace, cosqa_mini, default_profiles())
    return {name: evaluate(cosqa_mini.qrels, engine.run(name), DEFAULT_METRICS) for name in PROFILES}


def open_compare(profiles=PROFILES, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update({"dataset": "cosqa-mini", "profiles": ",".join(profiles), **params})
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def table_with(at: AppTest, column: str):
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def test_comparisons_equal_compare_all_on_the_same_runs(app_env, cosqa_evaluations):
    at = open_compare()
    shown = table_with(at, "corrected_p")
    expected = compare_all([cosqa_evaluations[n] for n in PROFILES], "ndcg@10").to_frame()
    assert list(zip(shown["a"], shown["b"])) == list(zip(expected["a"], expected["b"]))
    for column in ("mean_a", "mean_b", "delta", "p_value", "corrected_p"):
        assert list(shown[column]) == pytest.approx(list(expected[column]), abs=1e-12), column
    assert list(shown["significant"]) == list(expected["significant"])
    assert any(expected["significant"])  # the page is checked on a case with markers to show
    assert list(shown[["wins", "ties", "losses"]].itertuples(index=False)) == list(expected[["wins", "ties", "losses"]].itertuples(index=False))


def test_leaderboard_markers_equal_marked_leaderboard(app_env, cosqa_evaluations):
    at = open_compare()
    board = table_with(at, "shown")
    expected = marked_leaderboard(compare_all([cosqa_evaluations[n] for n in PROFILES], "ndcg@10"))
    assert list(board.index) == list(PROFILES)
    assert list(board["shown"]) == list(expected["shown"])
    assert board.loc["dense-minilm", "shown"].endswith("ᵃᵇ")  # dense beats both BM25 variants


def test_baseline_and_t_test_choices_change_the_family(app_env, cosqa_evaluations):
    at = open_compare(cmp_baseline="bm25-code")
    at.selectbox(key="cmp_test").select("t-test").run()
    assert not at.exception
    shown = table_with(at, "corrected_p")
    assert list(zip(shown["a"], shown["b"])) == [("bm25-code", "bm25-plain"), ("bm25-code", "dense-minilm")]
    a = cosqa_evaluations["bm25-code"].per_query["ndcg@10"]
    b = cosqa_evaluations["dense-minilm"].per_query["ndcg@10"].reindex(a.index)
    assert shown["p_value"].iloc[1] == pytest.approx(stats.ttest_rel(b, a).pvalue, abs=1e-9)
    assert at.query_params["cmp_test"] == "t-test"


class LeaderboardValues(HTMLParser):
    """The exact values (data-value) of the report's leaderboard cells, row by row."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[float]] = []
        self._inside = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._inside = attrs.get("id") == "leaderboard"
        elif self._inside and tag == "tr":
            self.rows.append([])
        elif self._inside and tag == "td" and "data-value" in attrs:
            self.rows[-1].append(float(attrs["data-value"]))

    def handle_endtag(self, tag):
        if tag == "table":
            self._inside = False


def test_build_report_offers_html_and_zip_with_the_pages_numbers(app_env, cosqa_evaluations):
    at = open_compare()
    at.button(key="cmp_build_report").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    labels = [button.label for button in at.get("download_button")]
    assert "Download HTML" in labels and "Download Markdown + images (zip)" in labels
    reports = sorted((app_env.root / "reports").glob("cosqa-mini-*/report.html"))
    parser = LeaderboardValues()
    parser.feed(reports[-1].read_text(encoding="utf-8"))
    metrics = ["ndcg@10", *[m for m in DEFAULT_METRICS if m != "ndcg@10"]]
    body = [row for row in parser.rows if row]
    assert body == [[cosqa_evaluations[n].mean()[m] for m in metrics] for n in PROFILES]


def test_one_profile_asks_for_a_second(app_env):
    at = open_compare(profiles=("bm25-code",))
    assert "at least two profiles" in at.info[0].value
