"""Reports: valid self-contained HTML with every corpus text escaped, Markdown that corpus text cannot break, true numbers."""
from __future__ import annotations

import base64
import io
import re
import zipfile
from html.parser import HTMLParser

import pytest

from core.data.datasets import Dataset, Document, Qrels, Query
from core.evaluation.metrics import evaluate
from core.evaluation.report import build_report, failure_cases, language_table, md_cell, md_fence, report_zip
from core.retrieval.runs import Ranking, Run
from core.evaluation.significance import compare_all, run_letters, significance_markers

METRICS = ("ndcg@10", "mrr@10")
HOSTILE = "<script>alert('pwned')</script>\n```\n# not a heading\n````"


class Page(HTMLParser):
    """Collects the tags, the leaderboard's numeric cells and the images of a report page."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.values: dict[str, list[float]] = {}
        self._table: str | None = None
        self._row: list[float] | None = None
        self._cell_text: list[str] = []
        self._rows: list[list[str]] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self._table = attrs.get("id")
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "tr" and self._table == "leaderboard":
            self._rows.append([])
        if tag == "td" and self._table == "leaderboard":
            self._in_cell = True
            self._cell_text = []
            if "data-value" in attrs:
                self._rows[-1].append(("value", float(attrs["data-value"])))

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        if tag == "td" and self._in_cell:
            self._rows[-1].append(("text", "".join(self._cell_text)))
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self._cell_text.append(data)

    def leaderboard(self) -> dict[str, tuple[list[float], list[str]]]:
        """Profile name -> (exact metric values, shown cell texts)."""
        out = {}
        for row in self._rows:
            if not row:
                continue
            texts = [v for kind, v in row if kind == "text"]
            out[texts[1]] = ([v for kind, v in row if kind == "value"], texts)
        return out


def hostile_dataset() -> Dataset:
    documents = tuple(Document(f"d{i}", f"def f{i}(): return {i}", language="python") for i in range(6)) + (
        Document("evil", HOSTILE, language="python"),)
    queries = (Query("q1", "first <b>query</b>", "python"), Query("q2", HOSTILE, "python"), Query("q3", "third", "python"))
    qrels = Qrels({"q1": {"d1": 1}, "q2": {"evil": 1}, "q3": {"d3": 1}})
    return Dataset("hostile", documents, queries, qrels)


def hostile_runs() -> list[Run]:
    good = Run("good", {"q1": Ranking(("d1", "d2"), (2.0, 1.0)), "q2": Ranking(("d2", "evil"), (2.0, 1.0)),
                        "q3": Ranking(("d3",), (1.0,))}, "hostile", {"kind": "bm25", "k1": 1.2}, {"ms_per_query": 1.5})
    bad = Run("bad <i>", {"q1": Ranking(("d2", "d1"), (2.0, 1.0)), "q2": Ranking(("evil", "d1"), (3.0, 1.0)),
                          "q3": Ranking(("d4",), (1.0,))}, "hostile", {"kind": "dense"}, {"ms_per_query": 7.25})
    return [good, bad]


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    dataset = hostile_dataset()
    runs = hostile_runs()
    evaluations = [evaluate(dataset.qrels, run, METRICS) for run in runs]
    files = build_report(dataset, evaluations, runs, METRICS, baseline=None, out_dir=tmp_path_factory.mktemp("report"))
    return dataset, runs, evaluations, files


def test_html_parses_and_escapes_a_script_in_the_corpus(hostile_report):
    _, _, _, files = hostile_report
    text = files.html.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    page.close()
    assert "script" not in page.tags and "b" not in page.tags and "i" not in page.tags
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in text
    assert "<script" not in text.lower()


def test_leaderboard_numbers_equal_the_evaluations(hostile_report):
    _, runs, evaluations, files = hostile_report
    page = Page()
    page.feed(files.html.read_text(encoding="utf-8"))
    board = page.leaderboard()
    for evaluation in evaluations:
        values, texts = board[evaluation.run_name]
        assert values == [evaluation.mean()[m] for m in METRICS]
    assert board["bad <i>"][1][-1] == "7.25"


def test_images_are_embedded_in_the_html_and_linked_beside_the_markdown(hostile_report):
    _, _, _, files = hostile_report
    page = Page()
    page.feed(files.html.read_text(encoding="utf-8"))
    embedded = [base64.b64decode(src.split(",", 1)[1]) for src in page.images]
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert embedded == [path.read_bytes() for path in files.images]
    assert all(data.startswith(b"\x89PNG") for data in embedded)
    markdown = files.markdown.read_text(encoding="utf-8")
    for path in files.images:
        assert f"](images/{path.name})" in markdown
        assert path.parent == files.markdown.parent / "images"


def outside_fences(markdown: str) -> str:
    """The Markdown text that is not inside a fenced code block (CommonMark backtick fences)."""
    kept, fence = [], None
    for line in markdown.splitlines():
        opening = re.match(r"^(`{3,})", line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and re.fullmatch(r"`{%d,}\s*" % len(fence), line):
            fence = None
        elif fence is None:
            kept.append(line)
    return "\n".join(kept)


def test_markdown_keeps_corpus_text_inside_fences_it_cannot_close(hostile_report):
    _, _, _, files = hostile_report
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "<script>alert('pwned')</script>" in markdown  # shown verbatim, as code
    prose = outside_fences(markdown)
    assert "<script" not in prose and "not a heading" not in prose
    assert "<i>" not in prose and "bad &lt;i&gt;" in prose


def test_md_fence_is_longer_than_any_backtick_run():
    assert md_fence("a ```` b", "py") == "`````py\na ```` b\n`````"
    assert md_fence("plain", 'py"><x') == "```pyx\nplain\n```"


def test_md_cell_escapes_markdown_and_html():
    assert md_cell("a|b [x](javascript:y) <b>\nz") == r"a\|b \[x\]\(javascript:y\) &lt;b&gt; z"


def test_report_records_dataset_hashes_profiles_and_machine(hostile_report):
    dataset, _, _, files = hostile_report
    for text in (files.html.read_text(encoding="utf-8"), files.markdown.read_text(encoding="utf-8")):
        assert dataset.corpus_hash in text and dataset.queries_hash in text
        assert "cpu cores" in text and "k1" in text


def test_failure_cases_are_the_best_profiles_misses_worst_first():
    dataset = hostile_dataset()
    good, bad = hostile_runs()
    evaluation = evaluate(dataset.qrels, good, METRICS)
    other = evaluate(dataset.qrels, bad, METRICS)
    cases = failure_cases(dataset, evaluation, good, "ndcg@10", top_n=5, others=[other])
    assert [case.query_id for case in cases] == ["q2"]  # q1 and q3 have the positive at rank 1
    case = cases[0]
    assert case.positives[0].doc_id == "evil" and case.positives[0].rank == 2
    assert [d.doc_id for d in case.top] == ["d2", "evil"] and [d.relevant for d in case.top] == [False, True]
    assert case.positive_ranks == (("good", 2.0), ("bad <i>", 1.0))


def test_report_zip_holds_markdown_html_and_images(hostile_report):
    _, _, _, files = hostile_report
    names = zipfile.ZipFile(io.BytesIO(report_zip(files))).namelist()
    assert sorted(names) == sorted(["report.md", "report.html"] + [f"images/{p.name}" for p in files.images])


def test_report_on_real_runs_marks_what_the_significance_tests_found(csn_engine, tmp_path):
    names = ["bm25-code", "dense-minilm", "hybrid-rrf"]
    runs = [csn_engine.run(name) for name in names]
    evaluations = [evaluate(csn_engine.dataset.qrels, run, METRICS) for run in runs]
    files = build_report(csn_engine.dataset, evaluations, runs, METRICS, baseline=None, out_dir=tmp_path / "r", failures_top_n=3)
    page = Page()
    page.feed(files.html.read_text(encoding="utf-8"))
    board = page.leaderboard()
    letters = run_letters(names)
    from core.evaluation.bootstrap import confidence_intervals

    intervals = confidence_intervals(evaluations, METRICS).set_index(["run", "metric"])  # the report's defaults
    for i, metric in enumerate(METRICS):
        markers = significance_markers(compare_all(evaluations, metric))
        for evaluation in evaluations:
            values, texts = board[evaluation.run_name]
            assert values[i] == evaluation.mean()[metric]
            expected = "".join(letters[other] for other in markers[evaluation.run_name])
            spread = (intervals.at[(evaluation.run_name, metric), "high"] - intervals.at[(evaluation.run_name, metric), "low"]) / 2
            assert texts[2 + i] == f"{evaluation.mean()[metric]:.4f} ± {spread:.3f}{expected}"
    languages = language_table(csn_engine.dataset, evaluations, "ndcg@10")
    assert languages.loc["python", "dense-minilm"] == pytest.approx(evaluations[1].mean()["ndcg@10"])
    assert files.html.read_text(encoding="utf-8").count('class="case"') <= 3


def test_report_carries_intervals_complementarity_oracle_slices_and_the_map(csn_engine, tmp_path):
    from core.evaluation.complementarity import complementarity, oracle_comparison
    from core.evaluation.embedding_map import embedding_map, map_points

    names = ["bm25-code", "dense-minilm", "hybrid-rrf"]
    runs = [csn_engine.run(name) for name in names]
    evaluations = [evaluate(csn_engine.dataset.qrels, run, METRICS) for run in runs]
    points = map_points(embedding_map(csn_engine, "minilm"), csn_engine.dataset, evaluations[1])
    files = build_report(csn_engine.dataset, evaluations, runs, METRICS, baseline=None, out_dir=tmp_path / "r",
                         failures_top_n=1, map_points=points, slice_min_size=5)
    assert [p.name for p in files.images][-3:] == ["complementarity.png", "slices.png", "embedding_map.png"]
    text = files.html.read_text(encoding="utf-8")
    for table_id in ("intervals", "complementarity", "oracle", "slices"):
        assert f'<table id="{table_id}">' in text
    oracle = oracle_comparison(evaluations[:2], evaluations[2:], METRICS[0]).oracle
    assert f'data-value="{oracle!r}"' in text  # the oracle row of the oracle table
    solved = complementarity(evaluations, METRICS[0])  # no hit@k among the metrics: solved means nDCG@10 > 0
    markdown = files.markdown.read_text(encoding="utf-8")
    assert f"| all 3 | {solved.by_all().queries} |" in markdown
    assert "## Confidence intervals" in markdown and "![embedding_map](images/embedding_map.png)" in markdown
