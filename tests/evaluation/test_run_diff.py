"""Two runs side by side: tau against scipy, RBO against a published example and the paper's formula, movements by hand."""
from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest
from scipy.stats import kendalltau

from core.data.datasets import Dataset, Document, Qrels, Query
from core.evaluation.metrics import evaluate
from core.evaluation.run_diff import (
    RunMismatchError,
    kendall_tau,
    movement_marker,
    query_diffs,
    rank_queries,
    rbo,
    side_by_side,
)
from core.retrieval.runs import Ranking, Run


def run_of(name: str, lists: dict[str, list[str]], dataset: str = "toy") -> Run:
    return Run(name, {q: Ranking(tuple(ids), tuple(float(len(ids) - i) for i in range(len(ids)))) for q, ids in lists.items()},
               dataset)


def toy_dataset() -> Dataset:
    documents = tuple(Document(f"d{i}", f"def f{i}(): pass") for i in range(1, 9))
    queries = (Query("q1", "read_json path"), Query("q2", "parse_args argv"), Query("q3", "open file"))
    qrels = Qrels({"q1": {"d1": 1}, "q2": {"d5": 1}, "q3": {"d8": 1}})
    return Dataset("toy", documents, queries, qrels, "test")


def rbo_reference(short: list[str], long: list[str], p: float) -> float:
    """Eq. 32 of Webber, Moffat & Zobel (2010), written out term by term as in the paper."""
    s, l = len(short), len(long)

    def x(d):  # overlap of the prefixes at depth d (the short list stops at s)
        return len(set(short[:min(d, s)]) & set(long[:d]))

    sum1 = sum(x(d) / d * p ** d for d in range(1, l + 1))
    sum2 = sum(x(s) * (d - s) / (s * d) * p ** d for d in range(s + 1, l + 1))
    return (1 - p) / p * (sum1 + sum2) + ((x(l) - x(s)) / l + x(s) / s) * p ** l


def test_rbo_matches_the_published_example():
    # rankmeasures (an RBO implementation adapted from ragrawal/measures) documents 0.828 for this pair at p = 0.9;
    # by hand: (0.1/0.9)(0.5·0.9² + 2/3·0.9³ + 0.9⁴ + 0.9⁵) + 0.9⁵ = 0.82800
    assert rbo(list("abcde"), list("bcdae"), 0.9) == pytest.approx(0.828, abs=5e-4)
    assert rbo(list("abcde"), list("bcdae"), 0.9) == pytest.approx(0.8280009, abs=1e-6)


def test_rbo_of_identical_lists_is_one_and_of_disjoint_lists_zero():
    assert rbo(list("abcdefghij"), list("abcdefghij")) == pytest.approx(1.0, abs=1e-12)
    assert rbo(list("abcde"), list("vwxyz")) == 0.0
    assert rbo(list("abcde"), list("edcba")) < rbo(list("abcde"), list("abced"))


def test_rbo_equals_the_papers_formula_for_uneven_random_lists():
    rng = random.Random(3)
    for _ in range(200):
        pool = [f"d{i}" for i in range(30)]
        a = rng.sample(pool, rng.randint(1, 15))
        b = rng.sample(pool, rng.randint(1, 15))
        short, long = (a, b) if len(a) <= len(b) else (b, a)
        assert rbo(a, b, 0.9) == pytest.approx(rbo_reference(short, long, 0.9), abs=1e-12)
        assert rbo(a, b, 0.9) == pytest.approx(rbo(b, a, 0.9), abs=1e-12)


def test_kendall_tau_equals_scipy_over_the_shared_documents():
    rng = random.Random(5)
    for _ in range(200):
        pool = [f"d{i}" for i in range(15)]
        a = rng.sample(pool, 10)
        b = rng.sample(pool, 10)
        shared = [d for d in a if d in b]
        if len(shared) < 2:
            assert math.isnan(kendall_tau(a, b))
            continue
        expected = kendalltau([a.index(d) for d in shared], [b.index(d) for d in shared]).statistic
        assert kendall_tau(a, b) == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_of_reversed_lists_is_minus_one():
    assert kendall_tau(list("abcd"), list("dcba")) == pytest.approx(-1.0)
    assert kendall_tau(list("abcd"), list("abcd")) == pytest.approx(1.0)
    assert math.isnan(kendall_tau(list("ab"), list("cb")))


def test_movement_markers_read_from_each_side():
    assert movement_marker(2, 5, "b") == "↑3"      # B has it at 2, A had it at 5
    assert movement_marker(14, 2, "b") == "↓12"
    assert movement_marker(3, None, "b") == "new in B"
    assert movement_marker(3, None, "a") == "dropped"
    assert movement_marker(2, 5, "a") == "↓3"      # A has it at 2, B puts it at 5
    assert movement_marker(4, 4, "a") == "="


def test_side_by_side_marks_movement_positives_and_new_documents():
    dataset = toy_dataset()
    a = run_of("A", {"q1": ["d2", "d1", "d3", "d4"]})
    b = run_of("B", {"q1": ["d1", "d5", "d2"]})
    left, right = side_by_side(a, b, dataset.qrels, "q1", k=3)
    assert [(d.doc_id, d.marker, d.relevant) for d in left] == [("d2", "↓2", False), ("d1", "↑1", True), ("d3", "dropped", False)]
    assert [(d.doc_id, d.marker, d.other_rank) for d in right] == [("d1", "↑1", 2), ("d5", "new in B", None), ("d2", "↓2", 1)]


def test_query_diffs_hold_core_ndcg_and_rank_queries_by_each_measure():
    dataset = toy_dataset()
    a = run_of("A", {"q1": ["d1", "d2", "d3"], "q2": ["d1", "d2", "d5"], "q3": ["d8", "d7", "d6"]})
    b = run_of("B", {"q1": ["d2", "d3", "d4"], "q2": ["d5", "d2", "d1"], "q3": ["d8", "d7", "d6"]})
    diffs = query_diffs(dataset, a, b, k=3)
    np.testing.assert_allclose(diffs["ndcg_a"], evaluate(dataset.qrels, a, ["ndcg@10"]).per_query.loc[diffs.index, "ndcg@10"])
    assert diffs.loc["q1", "ndcg_a"] == 1.0 and diffs.loc["q1", "ndcg_b"] == 0.0
    assert diffs.loc["q2", "ndcg_a"] == pytest.approx(0.5)       # 1/log2(4)
    assert diffs.loc["q1", "positive_move"] == 1 - 4              # A: rank 1, B: not retrieved (depth 3 + 1)
    assert diffs.loc["q2", "positive_move"] == 3 - 1
    assert diffs.loc["q3", "rbo"] == pytest.approx(1.0) and diffs.loc["q3", "tau"] == pytest.approx(1.0)
    assert diffs.loc["q2", "tau"] == pytest.approx(-1.0)
    assert list(rank_queries(diffs, "ndcg_gap").index) == ["q1", "q2", "q3"]
    assert list(rank_queries(diffs, "positive_move").index) == ["q1", "q2", "q3"]
    assert list(rank_queries(diffs, "tau").index) == ["q2", "q1", "q3"]  # q1 shares d2, d3 in the same order: tau 1
    assert rank_queries(diffs, "rbo").index[-1] == "q3"


def test_runs_of_another_dataset_or_without_any_known_query_are_refused():
    dataset = toy_dataset()
    a = run_of("A", {"q1": ["d1"]})
    with pytest.raises(RunMismatchError, match="dataset 'cosqa'"):
        query_diffs(dataset, a, run_of("B", {"q1": ["d1"]}, dataset="cosqa"), k=3)
    with pytest.raises(RunMismatchError, match="no ranking for any judged query"):
        query_diffs(dataset, a, run_of("B", {"x1": ["d1"]}), k=3)
    other_corpus = dataclasses.replace(run_of("B", {"q1": ["d1"]}), meta={"corpus_hash": "0" * 64})
    with pytest.raises(RunMismatchError, match="another version"):
        query_diffs(dataset, a, other_corpus, k=3)


def test_a_run_missing_queries_is_compared_with_a_warning(csn_engine, csn_mini):
    from core.evaluation.run_diff import check_comparable

    full = csn_engine.run("bm25-code")
    dense = csn_engine.run("dense-minilm")
    kept = dict(list(full.rankings.items())[:30])
    partial = dataclasses.replace(full, rankings=kept)
    warnings = check_comparable(partial, dense, csn_mini)
    assert len(warnings) == 1 and "no ranking for 10 of 40" in warnings[0]
    diffs = query_diffs(csn_mini, partial, dense)
    missing = [q for q in diffs.index if q not in kept]
    assert len(missing) == 10 and (diffs.loc[missing, "ndcg_a"] == 0).all()
    assert diffs["rbo"].between(0, 1).all()
