"""What a dataset holds: counts, text lengths, languages, load problems, and browsable rows."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from core.data.datasets import Dataset, DatasetInfo, is_beir_folder
from core.errors import DatasetProblem
from core.evaluation.metrics import query_tokens

UNKNOWN_LANGUAGE = "(none)"


@dataclass(frozen=True)
class DatasetStats:
    """Headline counts of a loaded dataset."""

    documents: int
    queries: int
    judged_queries: int
    qrels: int
    graded: bool
    problems: int


def dataset_stats(dataset: Dataset) -> DatasetStats:
    """Documents, queries, queries with a relevant document, judgment lines, graded or binary, skipped rows."""
    judgments = sum(len(grades) for grades in dataset.qrels.judgments.values())
    return DatasetStats(len(dataset.documents), len(dataset.queries), len(dataset.judged_queries), judgments,
                        dataset.qrels.is_graded(), len(dataset.problems))


def catalog_table(infos: Sequence[DatasetInfo]) -> pd.DataFrame:
    """Datasets found on disk: name, origin, whether it is built, counts from its meta.json (blank if absent), path.

    Counts come from meta.json so listing never loads a corpus; open a dataset for exact counts.
    """
    rows = []
    for info in infos:
        meta = _read_meta(info.path / "meta.json")
        counts = {key: meta[key] if isinstance(meta.get(key), int) else None for key in ("documents", "queries", "qrels")}
        rows.append({"name": info.name, "origin": info.origin, "built": is_beir_folder(info.path), **counts,
                     "path": str(info.path)})
    table = pd.DataFrame(rows, columns=["name", "origin", "built", "documents", "queries", "qrels", "path"])
    return table.astype({"documents": "Int64", "queries": "Int64", "qrels": "Int64"})


def _read_meta(path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: "[" * 100,000
        return {}
    return meta if isinstance(meta, dict) else {}


def length_table(dataset: Dataset) -> pd.DataFrame:
    """One row per document and query: kind, id, length in tokens (words/identifiers) and in characters."""
    rows = [("document", d.id, query_tokens(d.full_text), len(d.full_text)) for d in dataset.documents]
    rows += [("query", q.id, query_tokens(q.text), len(q.text)) for q in dataset.queries]
    return pd.DataFrame(rows, columns=["kind", "id", "tokens", "characters"])


def length_summary(lengths: pd.DataFrame) -> pd.DataFrame:
    """Median, 90th percentile and maximum length: one row per measure, one column per kind (document, query)."""
    grouped = lengths.groupby("kind")[["tokens", "characters"]]
    stats = {"median": grouped.median(), "p90": grouped.quantile(0.9), "max": grouped.max()}
    rows = {f"{unit} {name}": stats[name][unit] for unit in ("tokens", "characters") for name in ("median", "p90", "max")}
    table = pd.DataFrame(rows).T.astype(float)
    table.index.name = "length"
    table.columns.name = None
    return table


def language_counts(dataset: Dataset) -> pd.DataFrame:
    """Documents and queries per language (rows by total, largest first; no language given -> '(none)')."""
    documents = pd.Series([d.language or UNKNOWN_LANGUAGE for d in dataset.documents], dtype=object).value_counts()
    queries = pd.Series([q.language or UNKNOWN_LANGUAGE for q in dataset.queries], dtype=object).value_counts()
    table = pd.DataFrame({"documents": documents, "queries": queries}).fillna(0).astype(int)
    table = table.loc[(table["documents"] + table["queries"]).sort_values(ascending=False, kind="stable").index]
    table.index.name = "language"
    return table


def problems_table(problems: Sequence[DatasetProblem]) -> pd.DataFrame:
    """Load problems as rows of file, line (0 = the whole file) and message."""
    return pd.DataFrame([(p.file, p.line, p.message) for p in problems], columns=["file", "line", "message"])


def query_rows(dataset: Dataset) -> pd.DataFrame:
    """Every query with its language, number of positives, and its best positive's id and text."""
    rows = []
    for query in dataset.queries:
        positives = dataset.qrels.positives(query.id)
        first = next((d for d in positives if d in dataset.doc_index), None)
        rows.append({"query id": query.id, "language": query.language, "query": query.text, "positives": len(positives),
                     "positive id": first or "", "positive": dataset.document(first).full_text if first else ""})
    return pd.DataFrame(rows, columns=["query id", "language", "query", "positives", "positive id", "positive"])


def document_rows(dataset: Dataset) -> pd.DataFrame:
    """Every document with its id, language, title and text."""
    rows = [{"doc id": d.id, "language": d.language, "title": d.title, "text": d.text} for d in dataset.documents]
    return pd.DataFrame(rows, columns=["doc id", "language", "title", "text"])


def filter_rows(table: pd.DataFrame, text: str) -> pd.DataFrame:
    """Rows where any text column contains ``text`` (case-insensitive, literal; blank keeps all)."""
    needle = text.strip().casefold()
    if not needle:
        return table
    text_columns = [c for c in table.columns if table[c].dtype == object or pd.api.types.is_string_dtype(table[c])]
    keep = pd.Series(False, index=table.index)
    for column in text_columns:
        keep |= table[column].astype(str).str.casefold().str.contains(needle, regex=False)
    return table[keep]


def page_count(rows: int, page_size: int) -> int:
    """Pages needed to show ``rows`` rows (at least one, so an empty table still has a page)."""
    return max(1, math.ceil(rows / max(page_size, 1)))


def page_of(table: pd.DataFrame, page: int, page_size: int) -> pd.DataFrame:
    """Rows of 1-based ``page``; pages past either end are clamped to the first or last."""
    page = min(max(page, 1), page_count(len(table), page_size))
    start = (page - 1) * page_size
    return table.iloc[start:start + page_size]
