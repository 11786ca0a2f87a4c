"""One-click reports: a self-contained HTML page and a Markdown file with PNG charts, to email or commit.

A report holds the leaderboard with significance markers (see ``core.evaluation.significance``), means per
language, charts, the worst failures of the best profile, and what produced the numbers: machine,
date, dataset hashes, profile parameters. Corpus and query text is untrusted: every piece of it is
HTML-escaped in the HTML, and kept inside code fences (longer than any backtick run it holds) in the
Markdown, whose renderers would otherwise pass raw HTML through.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import platform
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from core.data.datasets import Dataset
from core.errors import MetricError
from core.evaluation.bootstrap import confidence_intervals, interval_frame
from core.evaluation.complementarity import complementarity, oracle_comparison
from core.evaluation.leaderboard import COST_COLUMNS, cost_columns, leaderboard_table, quality_latency_points, with_columns
from core.evaluation.manifest import manifest_json, run_manifest
from core.evaluation.run_diff import query_diffs, rank_queries
from core.evaluation.metrics import POSITIVE_RANK, Evaluation, language_groups, parse_metric, slice_means
from core.evaluation.slices import query_features, slices_for
from core.retrieval.runs import Run
from core.evaluation.significance import ComparisonTable, compare_all, run_letters, significance_markers
from core.workspace import Workspace, slug

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
IMAGES_DIR = "images"
QUERY_PREVIEW_CHARS = 800
DOCUMENT_PREVIEW_CHARS = 500
TOP_DOCUMENTS_SHOWN = 3


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written: the HTML (images embedded), the Markdown and the images it links."""

    html: Path
    markdown: Path
    images: tuple[Path, ...]


@dataclass(frozen=True)
class RankedDocument:
    """A document as a failure case shows it: where it ranked, its score, whether it is relevant."""

    doc_id: str
    text: str
    rank: int | None
    score: float | None
    relevant: bool


@dataclass(frozen=True)
class FailureCase:
    """A query the best profile gets wrong: the query, its positives, what ranked on top, each profile's positive rank."""

    query_id: str
    query: str
    language: str
    metric_value: float
    positives: tuple[RankedDocument, ...]
    top: tuple[RankedDocument, ...]
    positive_ranks: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class _Context:
    """Everything a report shows, computed once and written twice (HTML and Markdown)."""

    dataset: Dataset
    metrics: tuple[str, ...]
    runs: tuple[Run, ...]
    evaluations: tuple[Evaluation, ...]
    tables: tuple[ComparisonTable, ...]
    letters: Mapping[str, str]
    languages: pd.DataFrame
    failures: tuple[FailureCase, ...]
    best: str
    created: str
    machine: tuple[tuple[str, str], ...]
    intervals: pd.DataFrame | None = None
    solved_metric: str = ""
    groups: pd.DataFrame | None = None
    intersections: pd.DataFrame | None = None
    oracle: pd.DataFrame | None = None
    slices: pd.DataFrame | None = None
    map_points: pd.DataFrame | None = None


@dataclass(frozen=True)
class _Section:
    """A report section written twice: its HTML (escaped already) and its Markdown."""

    title: str
    html: str
    markdown: str


def default_report_dir(workspace: Workspace, dataset_name: str) -> Path:
    """A fresh folder for one report, under the workspace's ``reports/``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return workspace.root / "reports" / f"{slug(dataset_name)}-{stamp}"


def machine_info() -> tuple[tuple[str, str], ...]:
    """What the timings were measured on."""
    return (("host", platform.node()), ("platform", platform.platform()), ("processor", platform.machine()),
            ("cpu cores", str(os.cpu_count())), ("python", platform.python_version()))


def _preview(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\n…"


def failure_cases(dataset: Dataset, evaluation: Evaluation, run: Run, metric: str, top_n: int = 10,
                  others: Sequence[Evaluation] = ()) -> list[FailureCase]:
    """The ``top_n`` queries the run does worst on: the positive not ranked first, lowest metric value first.

    Ties are broken by the positive's rank (not retrieved first, then deepest), then by query id.
    ``others`` add each other run's positive rank to every case.
    """
    metric = parse_metric(metric).key
    frame = evaluation.per_query
    missed = frame[~(frame[POSITIVE_RANK] == 1)]
    order = sorted(missed.index, key=lambda q: (missed.at[q, metric],
                                                 -(math.inf if math.isnan(missed.at[q, POSITIVE_RANK]) else missed.at[q, POSITIVE_RANK]),
                                                 q))
    cases = []
    dataset.documents_for(doc_id for query_id in order[:top_n]  # read together (a stored corpus caches them), then one by one
                          for doc_id in (*dataset.qrels.positives(query_id), *run.ranking(query_id).doc_ids[:TOP_DOCUMENTS_SHOWN]))
    for query_id in order[:top_n]:
        ranking = run.ranking(query_id)
        grades = dataset.qrels.grades(query_id)
        positives = tuple(
            RankedDocument(doc_id, _preview(dataset.document(doc_id).text, DOCUMENT_PREVIEW_CHARS), ranking.rank_of(doc_id),
                           None, True)
            for doc_id in dataset.qrels.positives(query_id) if doc_id in dataset.doc_index)
        top = tuple(
            RankedDocument(doc_id, _preview(dataset.document(doc_id).text, DOCUMENT_PREVIEW_CHARS), rank, score,
                           grades.get(doc_id, 0) > 0)
            for rank, (doc_id, score) in enumerate(zip(ranking.doc_ids[:TOP_DOCUMENTS_SHOWN], ranking.scores), start=1))
        ranks = tuple((other.run_name, float(other.per_query.at[query_id, POSITIVE_RANK]))
                      for other in (evaluation, *others) if query_id in other.per_query.index)
        cases.append(FailureCase(query_id, _preview(dataset.query(query_id).text, QUERY_PREVIEW_CHARS),
                                 dataset.query_language(query_id), float(frame.at[query_id, metric]), positives, top, ranks))
    return cases


def language_table(dataset: Dataset, evaluations: Sequence[Evaluation], metric: str) -> pd.DataFrame:
    """Mean of ``metric`` per query language (rows) and run (columns), with the query count."""
    groups = language_groups(dataset)
    columns = {evaluation.run_name: slice_means(evaluation, groups)[metric] for evaluation in evaluations}
    table = pd.DataFrame(columns)
    table["queries"] = slice_means(evaluations[0], groups)["queries"]
    table.index.name = "language"
    return table


# ---- charts -------------------------------------------------------------------------------------------
def _plain(label: str) -> str:
    """A label matplotlib draws as typed: '$' would start mathtext, which can fail on odd names."""
    return str(label).replace("$", r"\$")


def _bar_chart(path: Path, groups: Sequence[str], series: Mapping[str, Sequence[float]], title: str, ylabel: str,
               errors: Mapping[str, np.ndarray] | None = None) -> Path:
    """Grouped bars; ``errors`` (series name -> 2 x groups array of below/above distances) adds error bars."""
    figure = Figure(figsize=(8, 3.6), dpi=110)
    axes = figure.subplots()
    width = 0.8 / max(len(series), 1)
    positions = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        axes.bar(positions + i * width - 0.4 + width / 2, values, width, label=_plain(name),
                 yerr=errors.get(name) if errors else None, capsize=3 if errors else 0)
    axes.set_xticks(positions, [_plain(g) for g in groups])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel(_plain(ylabel))
    axes.set_title(_plain(title))
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.savefig(path, format="png", bbox_inches="tight")
    return path


def _rank_chart(path: Path, evaluations: Sequence[Evaluation], depth: int) -> Path:
    figure = Figure(figsize=(8, 3.6), dpi=110)
    axes = figure.subplots()
    cutoffs = np.arange(1, max(depth, 1) + 1)
    for evaluation in evaluations:
        ranks = evaluation.per_query[POSITIVE_RANK].to_numpy(dtype=float)
        found = np.nan_to_num(ranks, nan=np.inf)
        share = (found[None, :] <= cutoffs[:, None]).mean(axis=1)
        axes.plot(cutoffs, share, drawstyle="steps-post", label=_plain(evaluation.run_name))
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.set_xlim(1, max(2, int(cutoffs[-1])))
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("rank k")
    axes.set_ylabel("queries with positive in top k")
    axes.set_title("Where the positive lands")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.savefig(path, format="png", bbox_inches="tight")
    return path


def _charts(context: _Context, folder: Path) -> tuple[Path, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [e.run_name for e in context.evaluations]
    metric = context.metrics[0]
    means = {e.run_name: [e.mean()[m] for m in context.metrics] for e in context.evaluations}
    by_language = {name: context.languages[name].tolist() for name in names}
    depth = max((run.depth for run in context.runs), default=1)
    errors = None
    if context.intervals is not None:
        indexed = context.intervals.set_index(["run", "metric"])
        errors = {name: np.array([[means[name][i] - indexed.at[(name, m), "low"] for i, m in enumerate(context.metrics)],
                                  [indexed.at[(name, m), "high"] - means[name][i] for i, m in enumerate(context.metrics)]])
                  for name in names}
    charts = [
        _bar_chart(folder / "metrics.png", [parse_metric(m).label() for m in context.metrics], means,
                   "Mean per metric" + (" (95% bootstrap intervals)" if errors else ""), "mean", errors),
        _bar_chart(folder / "languages.png", [str(g) for g in context.languages.index], by_language,
                   f"{parse_metric(metric).label()} per language", parse_metric(metric).label()),
        _rank_chart(folder / "positive_rank.png", context.evaluations, depth),
    ]
    if context.intersections is not None:
        charts.append(_upset_chart(folder / "complementarity.png", context.intersections, names, context.solved_metric))
    if context.slices is not None and not context.slices.empty:
        charts.append(_slice_chart(folder / "slices.png", context.slices.head(10), context.best))
    if context.map_points is not None:
        charts.append(_map_chart(folder / "embedding_map.png", context.map_points))
    return tuple(charts)


def _upset_chart(path: Path, intersections: pd.DataFrame, names: Sequence[str], metric: str) -> Path:
    """Bars of each combination of solving runs, the combination as dots underneath (an UpSet chart)."""
    figure = Figure(figsize=(8, 2.4 + 0.3 * len(names)), dpi=110)
    bars, dots = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, max(1, len(names) * 0.5)]})
    positions = np.arange(len(intersections))
    bars.bar(positions, intersections["queries"], color="#1f3b73")
    for x, count in zip(positions, intersections["queries"]):
        bars.text(x, count, str(count), ha="center", va="bottom", fontsize=8)
    bars.set_ylabel("queries")
    bars.set_title(_plain(f"Which runs solve which queries ({parse_metric(metric).label()} > 0)"))
    for row, name in enumerate(names):
        solved = intersections[name].to_numpy(dtype=bool)
        dots.scatter(positions, [row] * len(positions), c=np.where(solved, "#1f3b73", "#d9d9d9"), s=60)
    dots.set_yticks(range(len(names)), [_plain(n) for n in names])
    dots.set_xticks([])
    dots.invert_yaxis()
    figure.savefig(path, format="png", bbox_inches="tight")
    return path


def _slice_chart(path: Path, slices: pd.DataFrame, best: str) -> Path:
    figure = Figure(figsize=(8, 1 + 0.35 * len(slices)), dpi=110)
    axes = figure.subplots()
    ordered = slices.iloc[::-1]
    axes.barh([_plain(s) for s in ordered["slice"]], ordered["effect"],
              color=np.where(ordered["significant"], "#d62728", "#f4a6a6"))
    axes.set_xlabel("effect: overall mean minus the slice's (dark: significant after Holm)")
    axes.set_title(_plain(f"Slices where {best} does worst"))
    figure.savefig(path, format="png", bbox_inches="tight")
    return path


def _map_chart(path: Path, points: pd.DataFrame) -> Path:
    figure = Figure(figsize=(7, 6), dpi=110)
    axes = figure.subplots()
    documents, queries = points[points["kind"] == "document"], points[points["kind"] == "query"]
    axes.scatter(documents["x"], documents["y"], s=3, c="#bdbdbd", label="documents")
    hit = queries["hit"].astype(bool)
    axes.scatter(queries.loc[hit, "x"], queries.loc[hit, "y"], s=8, c="#2ca02c", label="query: hit@k")
    axes.scatter(queries.loc[~hit, "x"], queries.loc[~hit, "y"], s=8, c="#d62728", label="query: miss@k")
    axes.set_title("Embedding map (PCA)")
    axes.legend(fontsize=8)
    figure.savefig(path, format="png", bbox_inches="tight")
    return path


# ---- shared content -----------------------------------------------------------------------------------
def _markers(context: _Context, metric_index: int, name: str) -> str:
    if not context.tables:
        return ""
    beaten = significance_markers(context.tables[metric_index])[name]
    return "".join(context.letters[other] for other in beaten)


def _ms(run: Run) -> str:
    value = run.meta.get("ms_per_query")
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def _rank_text(rank: float | int | None) -> str:
    return "not retrieved" if rank is None or (isinstance(rank, float) and math.isnan(rank)) else str(int(rank))


def _params(run: Run) -> str:
    return json.dumps({k: v for k, v in dict(run.profile).items() if k != "name"}, sort_keys=True, default=str)


def _significance_note(context: _Context) -> str:
    if not context.tables:
        return "Only one profile: no significance test."
    table = context.tables[0]
    family = f"each profile against {table.baseline}" if table.baseline else "every pair of profiles"
    return (f"Superscript letters name the profiles a profile beats significantly: two-sided {table.test} test over "
            f"{family}, {table.correction} correction per metric, alpha = {table.alpha}.")


# ---- HTML -----------------------------------------------------------------------------------------------
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:0.6em 0 1.4em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td:first-child,th:first-child{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}sup{color:#0a6;font-weight:600}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;max-height:24em;white-space:pre-wrap}img{max-width:100%}
.case{border-top:2px solid #ddd;margin-top:1.2em}.meta{color:#555;font-size:0.9em}.hit{color:#0a6}.miss{color:#b00}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num_cell(value: float, markers: str = "", spread: float | None = None) -> str:
    sup = f"<sup>{_e(markers)}</sup>" if markers else ""
    plus_minus = f" ± {spread:.3f}" if spread is not None else ""
    return f'<td class="num" data-value="{value!r}">{value:.4f}{plus_minus}{sup}</td>'


def _spread(context: _Context, name: str, metric: str) -> float | None:
    """Half the width of the run's bootstrap interval on ``metric`` (None without intervals)."""
    if context.intervals is None:
        return None
    row = context.intervals[(context.intervals["run"] == name) & (context.intervals["metric"] == metric)]
    return None if row.empty else float((row["high"].iloc[0] - row["low"].iloc[0]) / 2)


def _diagnosis_frames(context: _Context) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, table id, frame) of the diagnosis sections: intervals, complementarity, oracle, slices."""
    sections = []
    if context.intervals is not None:
        sections.append(("Confidence intervals (95% percentile bootstrap over queries, paired resamples)", "intervals",
                         interval_frame(context.intervals, digits=4, bracket=True)))
    if context.groups is not None:
        sections.append((f"Complementarity: queries solved ({parse_metric(context.solved_metric).label()} > 0)",
                         "complementarity", context.groups))
    if context.oracle is not None:
        sections.append((f"The oracle (per query, the best member) on {parse_metric(context.metrics[0]).label()}", "oracle",
                         context.oracle))
    if context.slices is not None and not context.slices.empty:
        frame = context.slices.head(10).drop(columns=["query_ids", "features"]).set_index("slice")
        sections.append((f"Slices where {context.best} does worst ({parse_metric(context.metrics[0]).label()}, "
                         "one-sided Welch t-test, Holm-corrected)", "slices", frame))
    return sections


def _html_table(frame: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in [frame.index.name or "", *frame.columns])
    body = []
    for label, *row in frame.itertuples(name=None):  # itertuples keeps each column's type (ints stay ints)
        cells = "".join(_num_cell(float(v)) if isinstance(v, (float, np.floating)) else f"<td>{_e(v)}</td>" for v in row)
        body.append(f"<tr><td>{_e(label)}</td>{cells}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _html_document(document: RankedDocument) -> str:
    status = '<span class="hit">relevant</span>' if document.relevant else '<span class="miss">not relevant</span>'
    score = f", score {document.score:.4f}" if document.score is not None else ""
    return (f"<p>rank {_e(_rank_text(document.rank))}{_e(score)}: <code>{_e(document.doc_id)}</code> {status}</p>"
            f"<pre><code>{_e(document.text)}</code></pre>")


def _html(context: _Context, images: Sequence[Path], sections: Sequence[_Section] = ()) -> str:
    dataset = context.dataset
    names = [e.run_name for e in context.evaluations]
    runs = {run.name: run for run in context.runs}
    head = "".join(f"<th>{_e(h)}</th>" for h in ["", "profile", *[parse_metric(m).label() for m in context.metrics], "ms/query"])
    rows = []
    for evaluation in context.evaluations:
        means = evaluation.mean()
        cells = "".join(_num_cell(means[m], _markers(context, i, evaluation.run_name), _spread(context, evaluation.run_name, m))
                        for i, m in enumerate(context.metrics))
        rows.append(f"<tr><td>{_e(context.letters[evaluation.run_name])}</td><td>{_e(evaluation.run_name)}</td>{cells}"
                    f'<td class="num">{_e(_ms(runs[evaluation.run_name]))}</td></tr>')
    leaderboard = f'<table id="leaderboard"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'

    comparisons = []
    for table in context.tables:
        frame = table.to_frame().set_index("a")
        comparisons.append(f"<h3>{_e(parse_metric(table.metric).label())}</h3>" + _html_table(frame, f"comparisons-{_e(table.metric)}"))

    figures = []
    for path in images:
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        figures.append(f'<p><img alt="{_e(path.stem)}" src="data:image/png;base64,{encoded}"></p>')

    cases = []
    for case in context.failures:
        ranks = ", ".join(f"{_e(name)}: {_e(_rank_text(rank))}" for name, rank in case.positive_ranks)
        cases.append(
            f'<div class="case"><h3>{_e(case.query_id)} <span class="meta">({_e(case.language)}, '
            f"{_e(context.metrics[0])} = {case.metric_value:.4f})</span></h3>"
            f"<p class=\"meta\">positive rank per profile: {ranks}</p><h4>Query</h4><pre><code>{_e(case.query)}</code></pre>"
            f"<h4>Relevant</h4>{''.join(_html_document(d) for d in case.positives)}"
            f"<h4>Ranked on top by {_e(context.best)}</h4>{''.join(_html_document(d) for d in case.top)}</div>")

    profiles = "".join(f"<tr><td>{_e(run.name)}</td><td><code>{_e(_params(run))}</code></td><td>{_e(run.run_id or '-')}</td>"
                       f'<td class="num">{_e(_ms(run))}</td></tr>' for run in context.runs)
    machine = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in context.machine)
    facts = (("dataset", dataset.name), ("split", dataset.split), ("documents", len(dataset.documents)),
             ("judged queries", len(dataset.judged_queries)), ("corpus sha256", dataset.corpus_hash),
             ("queries sha256", dataset.queries_hash), ("created", context.created))
    facts_html = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>" for k, v in facts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>codeir report: {_e(dataset.name)}</title><style>{_STYLE}</style></head>
<body>
<h1>Retrieval report: {_e(dataset.name)}</h1>
<table id="facts">{facts_html}</table>
<h2>Leaderboard</h2>
<p class="meta">{_e(_significance_note(context))}</p>
{leaderboard}
<h2>{_e(parse_metric(context.metrics[0]).label())} per language</h2>
{_html_table(context.languages, "languages")}
<h2>Charts</h2>
{''.join(figures)}
<h2>Significance tests</h2>
{''.join(comparisons) or '<p>Only one profile: nothing to compare.</p>'}
{''.join(f"<h2>{_e(title)}</h2>" + _html_table(frame, table_id) for title, table_id, frame in _diagnosis_frames(context))}
<h2>Failure cases of {_e(context.best)}</h2>
{''.join(cases) or '<p>The best profile ranks every positive first.</p>'}
{''.join(f"<h2>{_e(section.title)}</h2>{section.html}" for section in sections)}
<h2>Profiles</h2>
<table id="profiles"><thead><tr><th>profile</th><th>parameters</th><th>run id</th><th>ms/query</th></tr></thead><tbody>{profiles}</tbody></table>
<h2>Machine</h2>
<table id="machine">{machine}</table>
<p class="meta">{_e(len(names))} profiles; written by codeir workbench.</p>
</body></html>
"""


# ---- Markdown --------------------------------------------------------------------------------------------
_LANGUAGE_TAG = re.compile(r"[^A-Za-z0-9_+-]")


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]()#!|~])")


def md_cell(value: object) -> str:
    """Inline text safe in Markdown (a table cell, a heading): syntax characters backslash-escaped, HTML escaped, one line."""
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", str(value))
    return html.escape(text, quote=True).replace("\r", " ").replace("\n", " ")


def md_fence(text: str, language: str = "") -> str:
    """A fenced code block that ``text`` cannot close early: the fence is longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{_LANGUAGE_TAG.sub('', language)}\n{text}\n{fence}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _md_frame(frame: pd.DataFrame) -> str:
    rows = [[md_cell(label)] + [f"{v:.4f}" if isinstance(v, (float, np.floating)) else md_cell(v) for v in row]
            for label, *row in frame.itertuples(name=None)]
    return _md_table([md_cell(frame.index.name or "")] + [md_cell(c) for c in frame.columns], rows)


def _md_document(document: RankedDocument, language: str) -> str:
    status = "relevant" if document.relevant else "not relevant"
    score = f", score {document.score:.4f}" if document.score is not None else ""
    return f"rank {_rank_text(document.rank)}{score}: document {md_cell(document.doc_id)} ({status})\n\n{md_fence(document.text, language)}"


def _markdown(context: _Context, images: Sequence[Path], sections: Sequence[_Section] = ()) -> str:
    dataset = context.dataset
    runs = {run.name: run for run in context.runs}
    header = ["", "profile", *[parse_metric(m).label() for m in context.metrics], "ms/query"]
    rows = []
    for evaluation in context.evaluations:
        means = evaluation.mean()
        cells = []
        for i, metric in enumerate(context.metrics):
            markers = _markers(context, i, evaluation.run_name)
            spread = _spread(context, evaluation.run_name, metric)
            cells.append(f"{means[metric]:.4f}" + (f" ± {spread:.3f}" if spread is not None else "")
                         + (f"<sup>{markers}</sup>" if markers else ""))
        rows.append([context.letters[evaluation.run_name], md_cell(evaluation.run_name), *cells, _ms(runs[evaluation.run_name])])
    parts = [
        f"# Retrieval report: {md_cell(dataset.name)}", "",
        _md_table(["", ""], [["dataset", md_cell(dataset.name)], ["split", md_cell(dataset.split)],
                             ["documents", str(len(dataset.documents))], ["judged queries", str(len(dataset.judged_queries))],
                             ["corpus sha256", f"`{dataset.corpus_hash}`"], ["queries sha256", f"`{dataset.queries_hash}`"],
                             ["created", context.created]]), "",
        "## Leaderboard", "", _significance_note(context), "", _md_table(header, rows), "",
        f"## {parse_metric(context.metrics[0]).label()} per language", "", _md_frame(context.languages), "",
        "## Charts", "",
    ]
    parts += [f"![{path.stem}]({IMAGES_DIR}/{path.name})\n" for path in images]
    parts += ["## Significance tests", ""]
    for table in context.tables:
        parts += [f"### {parse_metric(table.metric).label()}", "", _md_frame(table.to_frame().set_index("a")), ""]
    for title, _, frame in _diagnosis_frames(context):
        parts += [f"## {md_cell(title)}", "", _md_frame(frame), ""]
    parts += [f"## Failure cases of {md_cell(context.best)}", ""]
    for case in context.failures:
        ranks = ", ".join(f"{md_cell(name)}: {_rank_text(rank)}" for name, rank in case.positive_ranks)
        language = case.language if case.language != "unknown" else ""
        parts += [f"### {md_cell(case.query_id)} ({md_cell(case.language)}, {context.metrics[0]} = {case.metric_value:.4f})", "",
                  f"Positive rank per profile: {ranks}", "", "Query:", "", md_fence(case.query, language), "", "Relevant:", ""]
        parts += [_md_document(d, language) + "\n" for d in case.positives]
        parts += [f"Ranked on top by {md_cell(context.best)}:", ""]
        parts += [_md_document(d, language) + "\n" for d in case.top]
    if not context.failures:
        parts += ["The best profile ranks every positive first.", ""]
    for section in sections:
        parts += [f"## {md_cell(section.title)}", "", section.markdown, ""]
    parts += ["## Profiles", "",
              _md_table(["profile", "parameters", "run id", "ms/query"],
                        [[md_cell(run.name), md_cell(_params(run)), md_cell(run.run_id or "-"), _ms(run)] for run in context.runs]),
              "", "## Machine", "", _md_table(["", ""], [[md_cell(k), md_cell(v)] for k, v in context.machine]), ""]
    return "\n".join(parts)


# ---- entry points ------------------------------------------------------------------------------------------
def build_report(dataset: Dataset, evaluations: Sequence[Evaluation], runs: Sequence[Run], metrics: Sequence[str],
                 baseline: str | None, out_dir: Path, failures_top_n: int = 10, test: str = "randomization",
                 correction: str = "holm", alpha: float = 0.05, resamples: int = 10_000, seed: int = 0,
                 map_points: pd.DataFrame | None = None, slice_min_size: int | None = None) -> ReportFiles:
    """Write ``report.html`` (self-contained), ``report.md`` and ``images/*.png`` into ``out_dir``.

    ``evaluations`` and ``runs`` pair up by run name; ``metrics[0]`` picks the best profile, the
    per-language table, the oracle, the slices and the failure cases. Every mean carries its bootstrap
    interval (``resamples``, ``seed``); with two or more runs the report shows who solves which queries
    (on the first hit@k metric, else ``metrics[0]`` > 0) and, with two or more non-fusion runs, the oracle.
    ``map_points`` (``core.evaluation.embedding_map.map_points``) adds the embedding map.
    """
    metrics = tuple(parse_metric(m).key for m in metrics)
    if not metrics:
        raise MetricError("Pick at least one metric for the report.")
    if not evaluations:
        raise MetricError("Pick at least one profile for the report.")
    by_name = {run.name: run for run in runs}
    missing = [e.run_name for e in evaluations if e.run_name not in by_name]
    if missing:
        raise MetricError(f"No run for evaluation(s) {', '.join(missing)}: pass the runs the evaluations were computed from.")
    for evaluation in evaluations:
        absent = [m for m in metrics if m not in evaluation.metrics]
        if absent:
            raise MetricError(f"Run {evaluation.run_name!r} was not evaluated on {', '.join(absent)}: evaluate it on every report metric.")
    names = [e.run_name for e in evaluations]
    tables = tuple(compare_all(evaluations, m, baseline, test, correction, alpha) for m in metrics) if len(evaluations) > 1 else ()
    best = max(evaluations, key=lambda e: e.mean()[metrics[0]])
    others = [e for e in evaluations if e is not best]
    context = _Context(
        dataset, metrics, tuple(by_name[n] for n in names), tuple(evaluations), tables, run_letters(names),
        language_table(dataset, evaluations, metrics[0]),
        tuple(failure_cases(dataset, best, by_name[best.run_name], metrics[0], failures_top_n, others)),
        best.run_name, datetime.now(timezone.utc).isoformat(timespec="seconds"), machine_info(),
        confidence_intervals(evaluations, metrics, resamples=resamples, seed=seed),
        **_diagnosis(dataset, evaluations, [by_name[n] for n in names], metrics, best, slice_min_size), map_points=map_points)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = _charts(context, out_dir / IMAGES_DIR)
    sections, extra_images = _diagnosis_sections(context, out_dir / IMAGES_DIR)
    images = (*images, *extra_images)
    html_path = out_dir / HTML_FILE
    html_path.write_text(_html(context, images, sections), encoding="utf-8")
    markdown_path = out_dir / MARKDOWN_FILE
    markdown_path.write_text(_markdown(context, images, sections), encoding="utf-8")
    return ReportFiles(html_path, markdown_path, images)


def _diagnosis(dataset: Dataset, evaluations: Sequence[Evaluation], runs: Sequence[Run], metrics: Sequence[str],
               best: Evaluation, slice_min_size: int | None) -> dict:
    """Complementarity, oracle and slice tables for the report (absent where there is too little to show)."""
    found: dict = {}
    solved_metric = next((m for m in metrics if parse_metric(m).name == "hit"), metrics[0])
    if len(evaluations) > 1:
        solved = complementarity(evaluations, solved_metric)
        groups = pd.DataFrame([(g.label, g.queries) for g in solved.summary()], columns=["queries solved by", "queries"])
        found.update(solved_metric=solved_metric, groups=groups.set_index("queries solved by"),
                     intersections=solved.intersections())
        fusion_kinds = {"hybrid", "rerank"}
        members = [e for e, r in zip(evaluations, runs) if dict(r.profile).get("kind") not in fusion_kinds]
        fusions = [e for e, r in zip(evaluations, runs) if dict(r.profile).get("kind") in fusion_kinds]
        if len(members) > 1:
            found["oracle"] = oracle_comparison(members, fusions, metrics[0]).frame()
    queries = len(best.per_query)
    min_size = slice_min_size if slice_min_size is not None else max(5, queries // 20)
    if queries >= 2 * min_size:
        found["slices"] = slices_for(best.per_query[metrics[0]], query_features(dataset), "lower", min_size)
    return found


# ---- compare and diagnose: two runs, cost, manifests -------------------------------------------------------
DISAGREEMENTS_SHOWN = 10


def _latency_chart(path: Path, points: pd.DataFrame, metric: str) -> Path:
    figure = Figure(figsize=(8, 3.6), dpi=110)
    axes = figure.subplots()
    axes.scatter(points["latency ms"], points[metric], s=40)
    for _, row in points.iterrows():
        axes.annotate(_plain(row["run"]), (row["latency ms"], row[metric]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    axes.set_xscale("log")
    axes.set_xlabel("latency per query (ms, log): p50 of single queries, else batch ms/query")
    axes.set_ylabel(_plain(parse_metric(metric).label()))
    axes.set_title("Quality vs latency")
    axes.grid(alpha=0.3)
    figure.savefig(path, format="png", bbox_inches="tight")
    return path


def _diagnosis_sections(context: _Context, folder: Path) -> tuple[list[_Section], list[Path]]:
    """Where the two best runs disagree (two-run view), cost with the quality-vs-latency chart, and every run's manifest."""
    sections, images = [], []
    names = [e.run_name for e in context.evaluations]
    metric = context.metrics[0]
    if len(context.evaluations) > 1:
        ordered = sorted(context.evaluations, key=lambda e: -e.mean()[metric])
        run_a, run_b = (next(r for r in context.runs if r.name == e.run_name) for e in ordered[:2])
        try:
            diffs = rank_queries(query_diffs(context.dataset, run_a, run_b), "ndcg_gap").head(DISAGREEMENTS_SHOWN)
        except MetricError as exc:
            sections.append(_Section("Where the two best disagree", f"<p>{_e(exc)}</p>", md_cell(exc)))
        else:
            frame = diffs[["query", "ndcg_a", "ndcg_b", "delta", "rank_a", "rank_b", "tau", "rbo"]]
            note = (f"A = {run_a.name}, B = {run_b.name}: the {len(frame)} queries with the largest |Δ nDCG@10|; "
                    "positive ranks (NaN: not retrieved), Kendall's τ and RBO (p = 0.9) of the two top-10 lists.")
            sections.append(_Section("Where the two best disagree", f'<p class="meta">{_e(note)}</p>' + _html_table(frame, "disagreements"),
                                     md_cell(note) + "\n\n" + _md_frame(frame)))
    table = with_columns(leaderboard_table(context.runs, context.evaluations, names), cost_columns(context.runs, names))
    costs = table[list(COST_COLUMNS)]
    if costs.notna().any().any():
        images.append(_latency_chart(folder / "quality_latency.png", quality_latency_points(table, metric), metric))
        encoded = base64.b64encode(images[-1].read_bytes()).decode("ascii")
        note = ("Measured when each run was made: index build time (s) and size on disk (MB) of the indexes it reads, "
                "single-query latency p50/p95 (ms, embedding included) and peak memory growth (MB). Blank: not measured.")
        sections.append(_Section("Cost", f'<p class="meta">{_e(note)}</p>' + _html_table(costs, "cost")
                                 + f'<p><img alt="quality_latency" src="data:image/png;base64,{encoded}"></p>',
                                 md_cell(note) + "\n\n" + _md_frame(costs) + f"\n\n![quality_latency]({IMAGES_DIR}/quality_latency.png)"))
    manifests = [(run.name, run_manifest(run)) for run in context.runs]
    manifests = [(name, manifest) for name, manifest in manifests if manifest is not None]
    if manifests:
        note = "Re-run any of these with `python -m core reproduce manifest.json` (it says whether every metric matches)."
        sections.append(_Section(
            "Manifests", f'<p class="meta">{_e(note)}</p>' + "".join(
                f"<details><summary>{_e(name)}</summary><pre><code>{_e(manifest_json(m))}</code></pre></details>" for name, m in manifests),
            note + "\n\n" + "\n\n".join(f"### {md_cell(name)}\n\n{md_fence(manifest_json(m), 'json')}" for name, m in manifests)))
    return sections, images


def report_zip(files: ReportFiles) -> bytes:
    """The Markdown report with its images (and the HTML), zipped for download."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(files.markdown, MARKDOWN_FILE)
        archive.write(files.html, HTML_FILE)
        for image in files.images:
            archive.write(image, f"{IMAGES_DIR}/{image.name}")
    return buffer.getvalue()
