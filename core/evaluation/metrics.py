"""IR metrics that agree with trec_eval to the last digit, per query and averaged, with slices.

Conventions (those of trec_eval, so numbers match papers and leaderboards):

- A ranking is re-sorted here: score descending, ties broken by document id descending (plain string
  order, as trec_eval's ``strcmp``). The order a run arrives in is not trusted. NaN scores rank last.
- A document id repeated within one ranking keeps its first occurrence; later copies are dropped
  (trec_eval refuses such files, pytrec_eval cannot represent them).
- Relevant means grade >= 1. Unjudged documents count as non-relevant. nDCG gains are the grades
  themselves (linear; negative grades gain 0), discounted by log2(rank + 1); the ideal DCG is built
  from every judged document of the query (trec_eval ``ndcg_cut``).
- Evaluated queries are the queries of the qrels with at least one relevant document. One the run has
  no ranking for scores 0 on every metric (trec_eval ``-c``); queries the qrels do not judge are ignored.

Metrics, each with a cutoff ``@k``: ``ndcg``, ``hit`` (trec_eval ``success``), ``recall``, ``mrr``,
``map`` (trec_eval ``map_cut``), ``precision`` (``P``, divided by k even when fewer were retrieved);
``ndcg``, ``mrr`` and ``map`` also without a cutoff (the whole ranking).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain

import numpy as np
import pandas as pd

from core.data.datasets import Dataset, Qrels
from core.errors import MetricError
from core.retrieval.runs import Run

DEFAULT_METRICS = ("ndcg@10", "hit@10", "recall@100", "mrr@10")
POSITIVE_RANK = "positive_rank"

_LABELS = {"ndcg": "nDCG", "hit": "Hit", "recall": "Recall", "mrr": "MRR", "map": "MAP", "precision": "P"}
_ALIASES = {"ndcg": "ndcg", "ndcg_cut": "ndcg", "hit": "hit", "hits": "hit", "hit_rate": "hit", "success": "hit",
            "recall": "recall", "r": "recall", "mrr": "mrr", "recip_rank": "mrr", "rr": "mrr", "map": "map",
            "map_cut": "map", "ap": "map", "precision": "precision", "p": "precision"}
_WITHOUT_CUTOFF = ("ndcg", "mrr", "map")
_TREC_CUTOFF = re.compile(r"^(.+?)_(\d+)$")
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class MetricSpec:
    """One metric and its cutoff (None: the whole ranking)."""

    name: str
    k: int | None = None

    def __post_init__(self) -> None:
        if self.name not in _LABELS:
            raise MetricError(f"Unknown metric {self.name!r}. Use one of: {', '.join(_LABELS)}.")
        if self.k is None and self.name not in _WITHOUT_CUTOFF:
            raise MetricError(f"Metric {self.name!r} needs a cutoff, for example {self.name}@10.")
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1):
            raise MetricError(f"Cutoff {self.k!r} of {self.name!r} must be a whole number >= 1, as in {self.name}@10.")

    @property
    def key(self) -> str:
        """Canonical name, used as column name: ``ndcg@10``, ``mrr``."""
        return self.name if self.k is None else f"{self.name}@{self.k}"

    def label(self) -> str:
        """Name for people: ``nDCG@10``, ``P@5``, ``MRR``."""
        return _LABELS[self.name] if self.k is None else f"{_LABELS[self.name]}@{self.k}"


def parse_metric(name: str | MetricSpec) -> MetricSpec:
    """Read ``ndcg@10``, ``P@5``, ``success@10``, ``map`` ... (case-insensitive) into a MetricSpec."""
    if isinstance(name, MetricSpec):
        return name
    text = str(name).strip().lower()
    base, cutoff = text.split("@", 1) if "@" in text else (text, None)
    trec_style = _TREC_CUTOFF.match(base) if cutoff is None else None  # "ndcg_cut_10", "P_5"
    if trec_style:
        base, cutoff = trec_style.groups()
    metric = _ALIASES.get(base.strip())
    if metric is None:
        known = ", ".join(f"{m}@k" for m in _LABELS) + ", " + ", ".join(_WITHOUT_CUTOFF)
        raise MetricError(f"Unknown metric {name!r}. Use one of: {known}.")
    if cutoff is None:
        return MetricSpec(metric, None)
    cutoff = cutoff.strip()
    if not (cutoff.isascii() and cutoff.isdigit()) or int(cutoff) < 1:
        raise MetricError(f"Metric {name!r} has cutoff {cutoff!r}; the cutoff must be a whole number >= 1, as in {metric}@10.")
    return MetricSpec(metric, int(cutoff))


@dataclass(frozen=True, eq=False)  # a DataFrame field cannot be compared or hashed: evaluations compare by identity
class Evaluation:
    """A run's score on every evaluated query; ``per_query`` has one float column per metric + positive_rank."""

    run_name: str
    metrics: tuple[str, ...]
    per_query: pd.DataFrame

    def mean(self) -> dict[str, float]:
        """Metric -> mean over the evaluated queries (absent queries count as 0)."""
        return {metric: float(self.per_query[metric].mean()) for metric in self.metrics}

    @property
    def query_ids(self) -> list[str]:
        return list(self.per_query.index)


@dataclass(frozen=True)
class _Graded:
    """Evaluated queries as matrices: grade at each rank in trec_eval order, and the ideal grades.

    ``grades`` is (queries, depth) with 0 for unjudged documents and past a ranking's end; ``ideal``
    is (queries, most relevant) with each query's positive grades sorted descending, 0-padded.
    """

    grades: np.ndarray
    ideal: np.ndarray

    @property
    def depth(self) -> int:
        return self.grades.shape[1]

    @cached_property
    def relevant_count(self) -> np.ndarray:
        return (self.ideal >= 1).sum(axis=1)

    @cached_property
    def is_relevant(self) -> np.ndarray:
        return self.grades >= 1

    @cached_property
    def relevant_so_far(self) -> np.ndarray:
        return np.cumsum(self.is_relevant, axis=1)

    @cached_property
    def first_relevant_rank(self) -> np.ndarray:
        """1-based rank of the first relevant document; inf when none was retrieved."""
        found = self.is_relevant.any(axis=1)
        return np.where(found, self.is_relevant.argmax(axis=1) + 1, np.inf)

    @cached_property
    def precision_sum(self) -> np.ndarray:
        """Running sum of precision at each relevant rank (the numerator of AP)."""
        ranks = np.arange(1, self.depth + 1)
        return np.cumsum(np.where(self.is_relevant, self.relevant_so_far / ranks, 0.0), axis=1)

    @cached_property
    def dcg(self) -> np.ndarray:
        return np.cumsum(np.maximum(self.grades, 0) / _discounts(self.depth), axis=1)

    @cached_property
    def ideal_dcg(self) -> np.ndarray:
        return np.cumsum(self.ideal / _discounts(self.ideal.shape[1]), axis=1)

    def at(self, table: np.ndarray, k: int) -> np.ndarray:
        """Column of a cumulative table at cutoff k (its last column when the table is shorter)."""
        return table[:, min(k, table.shape[1]) - 1]

    def score(self, spec: MetricSpec) -> np.ndarray:
        k = spec.k if spec.k is not None else max(self.depth, self.ideal.shape[1])
        hits = self.at(self.relevant_so_far, k)
        if spec.name == "hit":
            return (hits > 0).astype(float)
        if spec.name == "precision":
            return hits / k
        if spec.name == "recall":
            return hits / self.relevant_count
        if spec.name == "mrr":
            first = self.first_relevant_rank
            return np.where(first <= k, 1.0 / first, 0.0)
        if spec.name == "map":
            return self.at(self.precision_sum, k) / self.relevant_count
        if spec.name == "ndcg":
            return self.at(self.dcg, k) / self.at(self.ideal_dcg, k)
        raise AssertionError(spec)  # MetricSpec refuses other names

    def positive_rank(self) -> np.ndarray:
        """Rank of the best-ranked document carrying the query's top grade; NaN when none was retrieved."""
        best = self.grades == self.ideal[:, :1]
        return np.where(best.any(axis=1), best.argmax(axis=1) + 1.0, np.nan)


def _discounts(depth: int) -> np.ndarray:
    return np.log2(np.arange(2, depth + 2, dtype=float))


def _evaluated_query_ids(qrels: Qrels) -> list[str]:
    return [query_id for query_id, grades in qrels.judgments.items() if any(g >= 1 for g in grades.values())]


def _graded(qrels: Qrels, run: Run, query_ids: Sequence[str]) -> _Graded:
    """Sort every ranking the trec_eval way and look up the grades, for all queries at once."""
    rankings = [run.ranking(query_id) for query_id in query_ids]
    for query_id, ranking in zip(query_ids, rankings):
        if len(ranking.doc_ids) != len(ranking.scores):
            raise MetricError(f"Run {run.name!r}: query {query_id!r} has {len(ranking.doc_ids)} documents but "
                              f"{len(ranking.scores)} scores. Re-create the run.")
    lengths = np.array([len(r) for r in rankings], dtype=np.int64)
    row = np.repeat(np.arange(len(rankings)), lengths)
    score = np.fromiter(chain.from_iterable(r.scores for r in rankings), dtype=float, count=int(lengths.sum()))
    judged = [(r, doc_id, grade) for r, query_id in enumerate(query_ids) for doc_id, grade in qrels.grades(query_id).items()]
    judged_row = np.array([r for r, _, _ in judged], dtype=np.int64)
    judged_grade = np.array([g for _, _, g in judged], dtype=float)

    all_ids = list(chain.from_iterable(r.doc_ids for r in rankings)) + [doc_id for _, doc_id, _ in judged]
    codes, vocabulary = _ordered_codes(all_ids)
    code, judged_code = codes[: len(score)], codes[len(score):]
    pair = row * len(vocabulary) + code  # (query, document) as one integer
    judged_pair = judged_row * len(vocabulary) + judged_code

    if any(len(set(r.doc_ids)) < len(r) for r in rankings):
        _, first = np.unique(pair, return_index=True)  # a repeated document keeps its first occurrence
        row, code, score, pair = row[first], code[first], score[first], pair[first]
    order = np.lexsort((-code, -score, row))  # by query, then score descending, then doc id descending
    row, pair = row[order], pair[order]
    grades = np.zeros((len(rankings), max(int(np.bincount(row).max(initial=0)), 1)))
    grades[row, _rank_within(row)] = _lookup(judged_pair, judged_grade, pair)

    positive = judged_grade >= 1
    order = np.lexsort((-judged_grade[positive], judged_row[positive]))  # by query, then grade descending
    positive_row, positive_grade = judged_row[positive][order], judged_grade[positive][order]
    ideal = np.zeros((len(rankings), max(int(np.bincount(positive_row).max(initial=0)), 1)))
    ideal[positive_row, _rank_within(positive_row)] = positive_grade
    return _Graded(grades, ideal)


def _rank_within(rows: np.ndarray) -> np.ndarray:
    """0-based position of each entry inside its run of equal values in a sorted ``rows`` array."""
    counts = np.bincount(rows)
    return np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values[keys == w] for each w of ``wanted``, 0 where the key is absent (keys are unique, non-empty)."""
    by_key = np.argsort(keys)
    keys, values = keys[by_key], values[by_key]
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[at] == wanted, values[at], 0.0)


def _ordered_codes(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One integer per distinct id, numbered in string order (so codes compare as the ids do), and the ids."""
    codes, distinct = pd.factorize(np.array(ids, dtype=object))
    by_text = np.array(sorted(range(len(distinct)), key=distinct.__getitem__), dtype=np.int64)
    position = np.empty(len(distinct), dtype=np.int64)
    position[by_text] = np.arange(len(distinct))
    return position[codes], distinct[by_text]


def _specs(metrics: Sequence[str | MetricSpec]) -> tuple[MetricSpec, ...]:
    if isinstance(metrics, (str, MetricSpec)):
        metrics = [metrics]
    specs = tuple(dict.fromkeys(parse_metric(m) for m in metrics))  # drop repeats, keep order
    if not specs:
        raise MetricError(f"No metric asked for. Pick some, for example {', '.join(DEFAULT_METRICS)}.")
    return specs


def evaluate(qrels: Qrels, run: Run, metrics: Sequence[str | MetricSpec] = DEFAULT_METRICS) -> Evaluation:
    """Score ``run`` on every query of ``qrels`` with a relevant document (missing rankings score 0)."""
    specs = _specs(metrics)
    query_ids = _evaluated_query_ids(qrels)
    if not query_ids:
        raise MetricError("No query in the qrels has a relevant document (grade >= 1): there is nothing to evaluate.")
    graded = _graded(qrels, run, query_ids)
    columns = {spec.key: graded.score(spec) for spec in specs}
    columns[POSITIVE_RANK] = graded.positive_rank()
    per_query = pd.DataFrame(columns, index=pd.Index(query_ids, name="query_id", dtype=object), dtype=float)
    return Evaluation(run.name, tuple(columns)[:-1], per_query)


def evaluate_many(qrels: Qrels, runs: Sequence[Run], metrics: Sequence[str | MetricSpec] = DEFAULT_METRICS) -> list[Evaluation]:
    """Evaluate several runs on the same qrels and metrics, in the order given."""
    specs = _specs(metrics)
    return [evaluate(qrels, run, specs) for run in runs]


def slice_means(evaluation: Evaluation, groups: Mapping[str, str]) -> pd.DataFrame:
    """Mean of each metric per group of queries (e.g. language, length), with the group's query count.

    Rows follow the order in which labels first appear in ``groups``; evaluated queries that
    ``groups`` does not label fall into "unknown", labelled queries that were not evaluated are ignored.
    """
    labels = pd.Series([groups.get(query_id, "unknown") for query_id in evaluation.per_query.index],
                       index=evaluation.per_query.index, dtype=object)
    order = list(dict.fromkeys(list(groups.values()) + ["unknown"]))
    table = evaluation.per_query[list(evaluation.metrics)].groupby(labels, sort=False).mean()
    table["queries"] = labels.value_counts()
    table = table.reindex([label for label in order if label in table.index])
    table["queries"] = table["queries"].astype(int)
    table.index.name = "group"
    return table


def query_tokens(text: str) -> int:
    """Length of a query in word/identifier tokens (runs of letters, digits and underscores)."""
    return len(_TOKEN.findall(text))


def query_length_buckets(dataset: Dataset, edges: Sequence[int] | None = None) -> dict[str, str]:
    """Evaluated query id -> "short (<N tokens)", "medium (N-M tokens)" or "long (>=M+1 tokens)".

    ``edges`` are the token counts where medium and long start; by default the dataset's tertiles.
    The mapping lists short queries first, then medium, then long, so slice_means rows read in that order.
    """
    lengths = {query.id: query_tokens(query.text) for query in dataset.judged_queries}
    if edges is None:
        low, high = np.quantile(np.array(list(lengths.values()) or [0]), [1 / 3, 2 / 3], method="lower")
        edges = (int(low) + 1, max(int(high) + 1, int(low) + 2))
    if len(edges) != 2 or int(edges[0]) < 1 or int(edges[1]) <= int(edges[0]):
        raise MetricError(f"Length edges {tuple(edges)} are not usable: give two token counts, the smaller first, as in (5, 10).")
    medium, long = int(edges[0]), int(edges[1])
    middle = f"{medium}" if long - 1 == medium else f"{medium}-{long - 1}"
    labels = (f"short (<{medium} tokens)", f"medium ({middle} tokens)", f"long (>={long} tokens)")
    bucket = {query_id: 0 if n < medium else 1 if n < long else 2 for query_id, n in lengths.items()}
    return {query_id: labels[b] for b in range(3) for query_id, qb in bucket.items() if qb == b}


def language_groups(dataset: Dataset) -> dict[str, str]:
    """Evaluated query id -> language (the query's, else its positive's, else 'unknown'), languages in name order."""
    languages = {query.id: dataset.query_language(query.id) for query in dataset.judged_queries}
    return dict(sorted(languages.items(), key=lambda item: item[1]))


def leaderboard(evaluations: Sequence[Evaluation]) -> pd.DataFrame:
    """One row per run (named by run name), one column per metric mean; runs keep the order given."""
    columns = list(dict.fromkeys(metric for evaluation in evaluations for metric in evaluation.metrics))
    rows = [evaluation.mean() for evaluation in evaluations]
    index = pd.Index([evaluation.run_name for evaluation in evaluations], name="run", dtype=object)
    return pd.DataFrame(rows, index=index, columns=columns, dtype=float)
