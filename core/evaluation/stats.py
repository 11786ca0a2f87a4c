"""What a dataset holds: counts, text lengths, languages, load problems, and browsable rows."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.datasets import Dataset, DatasetInfo, Document, is_beir_folder
from core.errors import DatasetProblem
from core.evaluation.metrics import query_tokens

UNKNOWN_LANGUAGE = "(none)"
# A stored corpus (millions of documents, read by row) shows pages this many of its documents: a sample for lengths,
# the first rows for browsing. Every count (documents, languages) stays exact.
MAX_SHOWN_DOCUMENTS = 20_000


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


def shown_documents(dataset: Dataset, limit: int = MAX_SHOWN_DOCUMENTS, spread: bool = True) -> list[Document]:
    """Every document of a corpus held in memory; of a stored corpus larger than ``limit``, ``limit`` of them.

    ``spread`` takes rows evenly spaced over the corpus (a sample for lengths), else the first ``limit`` rows
    (for browsing). ``is_sampled`` tells a page whether to say so.
    """
    if not is_sampled(dataset, limit):
        return list(dataset.documents)
    if not spread:
        return list(dataset.documents[:limit])
    rows = np.unique(np.linspace(0, len(dataset.documents) - 1, limit).round().astype(np.int64))
    return dataset.documents_at(rows.tolist())


def is_sampled(dataset: Dataset, limit: int = MAX_SHOWN_DOCUMENTS) -> bool:
    """True when pages show ``limit`` of this dataset's documents instead of all (a stored corpus larger than that)."""
    return dataset.is_stored and len(dataset.documents) > limit


def length_table(dataset: Dataset) -> pd.DataFrame:
    """One row per document and query: kind, id, length in tokens (words/identifiers) and in characters.

    A stored corpus above MAX_SHOWN_DOCUMENTS contributes an evenly spaced sample of that many documents.
    """
    rows = [("document", d.id, query_tokens(d.full_text), len(d.full_text)) for d in shown_documents(dataset)]
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
    counts: dict[str, int] = {}
    for language, count in dataset.document_languages().items():
        counts[language or UNKNOWN_LANGUAGE] = counts.get(language or UNKNOWN_LANGUAGE, 0) + count
    documents = pd.Series(counts, dtype="int64")
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
    first_positive = {query.id: next((d for d in dataset.qrels.positives(query.id) if d in dataset.doc_index), None)
                      for query in dataset.queries}
    documents = dataset.documents_for(d for d in first_positive.values() if d)  # one read for a stored corpus
    for query in dataset.queries:
        first = first_positive[query.id]
        rows.append({"query id": query.id, "language": query.language, "query": query.text,
                     "positives": len(dataset.qrels.positives(query.id)),
                     "positive id": first or "", "positive": documents[first].full_text if first else ""})
    return pd.DataFrame(rows, columns=["query id", "language", "query", "positives", "positive id", "positive"])


def document_rows(dataset: Dataset) -> pd.DataFrame:
    """Every document with its id, language, title and text (of a stored corpus above MAX_SHOWN_DOCUMENTS, the first rows)."""
    rows = [{"doc id": d.id, "language": d.language, "title": d.title, "text": d.text}
            for d in shown_documents(dataset, spread=False)]
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
