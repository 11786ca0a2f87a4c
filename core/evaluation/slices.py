"""Slice finder: per-query features, slices of one or two of them, and the slices where a profile does worse.

Features of an evaluated query: its language, its length in tokens, the identifiers it names, how many
of them its positive shares, the positive's length, and, parsed with tree-sitter (Python), whether the
code side has a docstring or comment, loops, classes, decorators, async. The code side is the query
for code-to-docstring sets and the positive for text-to-code sets: whichever parses as Python more often.

A slice is one feature's bucket (numbers: quantile buckets) or two features' buckets together. A slice
is listed when it holds at least ``min_size`` queries (and not the same queries as a simpler slice); its mean is tested against the other queries'
(one-sided Welch t-test) and the p-values are Holm-corrected for the number of slices tested.
``effect`` is the overall mean minus the slice's (positive: the slice is worse), ``score`` is effect x
support (the slice's share of the queries), so large, clearly worse slices come first.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from core.data.datasets import Dataset
from core.errors import MetricError
from core.evaluation.metrics import Evaluation, parse_metric, query_tokens
from core.retrieval.highlight import KEYWORDS, shared_identifiers

DEFAULT_MIN_SIZE = 20
DEFAULT_BUCKETS = 3
DEFAULT_ALPHA = 0.05
NUMERIC_FEATURES = ("query tokens", "query identifiers", "shared identifiers", "positive tokens")
CONSTRUCTS = {"loop": ("for_statement", "while_statement"), "class": ("class_definition",), "decorator": ("decorator",),
              "async": ("async",)}
CODE_FEATURES = ("docstring or comment", *(f"has {name}" for name in CONSTRUCTS))
SLICE_COLUMNS = ("slice", "features", "queries", "slice mean", "rest mean", "effect", "score", "p", "p (Holm)",
                 "significant", "query_ids")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@lru_cache(maxsize=1)
def _python_parser():
    import tree_sitter
    import tree_sitter_python

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))


@dataclass(frozen=True)
class CodeFacts:
    """What tree-sitter finds in one piece of Python code."""

    parses: bool
    documented: bool
    constructs: frozenset[str]


def code_facts(code: str) -> CodeFacts:
    """Parse ``code`` as Python: whether it parses cleanly, has a docstring or comment, and which constructs it uses."""
    tree = _python_parser().parse(code.encode("utf-8", "replace"))
    found: set[str] = set()
    documented = False
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "comment":
            documented = True
        elif node.type == "expression_statement" and node.named_child_count == 1 and node.named_children[0].type == "string":
            documented = True  # a bare string statement: a docstring
        for name, types in CONSTRUCTS.items():
            if node.type in types:
                found.add(name)
        stack.extend(node.children)
    return CodeFacts(not tree.root_node.has_error, documented, frozenset(found))


def identifiers(text: str) -> list[str]:
    """Distinct identifiers named in ``text`` (keywords left out), in order of appearance."""
    return list(dict.fromkeys(w for w in _IDENTIFIER.findall(text) if w.lower() not in KEYWORDS))


def query_features(dataset: Dataset) -> pd.DataFrame:
    """One row per evaluated query (judged, with a positive in the corpus): the features slices are cut from.

    The code side (query or positive) is the one that parses as Python more often; a dataset whose
    language is not Python gets no code features (NaN).
    """
    rows, pairs = [], []
    first_positive = {query.id: next((d for d in dataset.qrels.positives(query.id) if d in dataset.doc_index), None)
                      for query in dataset.judged_queries}
    documents = dataset.documents_for(d for d in first_positive.values() if d)  # one read for a stored corpus
    for query in dataset.judged_queries:
        positive = first_positive[query.id]
        text = documents[positive].full_text if positive else ""
        pairs.append((query, text))
    sample = pairs[:200]
    query_parses = sum(code_facts(q.text).parses for q, _ in sample)
    positive_parses = sum(code_facts(t).parses for _, t in sample if t)
    code_is_query = query_parses >= positive_parses
    for query, text in pairs:
        language = dataset.query_language(query.id)
        code = query.text if code_is_query else text
        row = {"query_id": query.id, "language": language, "query tokens": query_tokens(query.text),
               "query identifiers": len(identifiers(query.text)),
               "shared identifiers": len(shared_identifiers(query.text, text)), "positive tokens": query_tokens(text)}
        if language in ("python", "unknown", "") and code:
            facts = code_facts(code)
            row["docstring or comment"] = facts.documented
            row.update({f"has {name}": name in facts.constructs for name in CONSTRUCTS})
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("query_id")
    for column in CODE_FEATURES:
        if column not in frame.columns:
            frame[column] = np.nan
    frame.index = frame.index.astype(object)
    frame.attrs["code side"] = "query" if code_is_query else "positive"
    return frame


def bucket_labels(features: pd.DataFrame, buckets: int = DEFAULT_BUCKETS) -> pd.DataFrame:
    """Each feature as text labels: numbers in quantile buckets ("query tokens 5-9"), flags "yes"/"no", text as is."""
    labels = {}
    for column in features.columns:
        values = features[column]
        if column in NUMERIC_FEATURES:
            labels[column] = _quantile_labels(column, values.astype(float), buckets)
        elif column in CODE_FEATURES:
            labels[column] = values.map(lambda v: None if pd.isna(v) else f"{column}: {'yes' if v else 'no'}")
        else:
            labels[column] = values.map(lambda v: f"{column}: {v}")
    return pd.DataFrame(labels, index=features.index)


def _quantile_labels(name: str, values: pd.Series, buckets: int) -> pd.Series:
    edges = np.unique(np.quantile(values, np.linspace(0, 1, buckets + 1)))
    if len(edges) < 2:
        return pd.Series(f"{name} {int(values.iloc[0])}", index=values.index)
    position = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    names = []
    for i in range(len(edges) - 1):  # whole-number ranges: [edge_i, edge_i+1) except the last, which is closed
        low, high = int(np.ceil(edges[i])), int(np.floor(edges[i + 1])) - (0 if i == len(edges) - 2 else 1)
        high = max(high, low)
        names.append(f"{name} {low}" if low == high else f"{name} {low}-{high}")
    return pd.Series([names[p] for p in position], index=values.index)


def find_slices(values: pd.Series, labels: pd.DataFrame, worse: str = "lower", min_size: int = DEFAULT_MIN_SIZE,
                pairs: bool = True, alpha: float = DEFAULT_ALPHA) -> pd.DataFrame:
    """Slices of ``labels`` (one feature, and two together with ``pairs``) tested on ``values`` per query.

    ``worse`` is "lower" (find where a metric drops) or "higher" (find where a difference B - A rises).
    Rows: the slices with at least ``min_size`` queries, significant ones first, then by score.
    """
    if worse not in ("lower", "higher"):
        raise MetricError(f"worse must be 'lower' or 'higher', not {worse!r}.")
    if min_size < 2:
        raise MetricError(f"A slice needs at least 2 queries to be tested; the minimum size {min_size} is too small.")
    values = values.astype(float)
    labels = labels.reindex(values.index)
    sign = 1.0 if worse == "lower" else -1.0
    columns = list(labels.columns)
    candidates: list[tuple[str, tuple[str, ...], np.ndarray]] = []
    for column in columns:
        for label in labels[column].dropna().unique():
            candidates.append((str(label), (column,), (labels[column] == label).to_numpy()))
    if pairs:
        for first, second in combinations(columns, 2):
            joined = labels[[first, second]].dropna()
            for (a, b), group in joined.groupby([first, second], sort=True):
                mask = values.index.isin(group.index)
                candidates.append((f"{a} & {b}", (first, second), mask))
    array = values.to_numpy()
    overall = float(array.mean()) if len(array) else float("nan")
    rows, seen = [], set()
    for label, features, mask in candidates:
        size = int(mask.sum())
        key = np.packbits(mask).tobytes()
        if size < min_size or size == len(array) or key in seen:
            continue  # too small, everything, or the same queries as a simpler slice already listed
        seen.add(key)
        inside, outside = array[mask], array[~mask]
        with warnings.catch_warnings():  # slices of identical values (all 0 or all 1): scipy warns, the p-value is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            test = stats.ttest_ind(inside, outside, equal_var=False, alternative="less" if worse == "lower" else "greater")
        p = float(test.pvalue) if np.isfinite(test.pvalue) else 1.0
        effect = sign * (overall - float(inside.mean()))
        rows.append([label, " & ".join(features), size, float(inside.mean()), float(outside.mean()), effect,
                     effect * size / len(array), p, tuple(str(q) for q in values.index[mask])])
    frame = pd.DataFrame(rows, columns=["slice", "features", "queries", "slice mean", "rest mean", "effect", "score", "p", "query_ids"])
    frame["p (Holm)"] = holm(frame["p"].to_numpy())
    frame["significant"] = frame["p (Holm)"] <= alpha
    frame = frame.sort_values(["significant", "score"], ascending=[False, False], kind="stable").reset_index(drop=True)
    return frame[list(SLICE_COLUMNS)]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p_values = np.asarray(p_values, dtype=float)
    m = len(p_values)
    if m == 0:
        return p_values
    order = np.argsort(p_values, kind="stable")
    adjusted = np.minimum(np.maximum.accumulate(p_values[order] * (m - np.arange(m))), 1.0)
    result = np.empty(m)
    result[order] = adjusted
    return result


def metric_values(evaluation: Evaluation, metric: str) -> pd.Series:
    """One run's per-query values of ``metric``."""
    key = parse_metric(metric).key
    if key not in evaluation.per_query.columns:
        raise MetricError(f"Run {evaluation.run_name!r} was not evaluated on {key}.")
    return evaluation.per_query[key]


def difference_values(a: Evaluation, b: Evaluation, metric: str) -> pd.Series:
    """Per query, B's value minus A's (where does B beat A)."""
    values_a, values_b = metric_values(a, metric), metric_values(b, metric)
    if not values_a.index.equals(values_b.index):
        raise MetricError(f"Runs {a.run_name!r} and {b.run_name!r} were evaluated on different queries: use the same dataset.")
    return (values_b - values_a).rename(f"{b.run_name} − {a.run_name}")


def slices_for(values: pd.Series, features: pd.DataFrame, worse: str = "lower", min_size: int = DEFAULT_MIN_SIZE,
               buckets: int = DEFAULT_BUCKETS, pairs: bool = True, alpha: float = DEFAULT_ALPHA) -> pd.DataFrame:
    """Bucket ``features`` and find the slices of ``values``; refuses a minimum size no slice can reach."""
    if min_size > len(values):
        raise MetricError(f"The minimum slice size {min_size} is larger than the {len(values)} evaluated queries: lower it.")
    return find_slices(values, bucket_labels(features, buckets), worse, min_size, pairs, alpha)

