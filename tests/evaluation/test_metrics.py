"""core.evaluation.metrics: hand-computed cases, agreement with pytrec_eval (trec_eval) and ranx, and properties."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data.datasets import Dataset, Document, Qrels, Query, load_dataset
from core.errors import MetricError, WorkbenchError
from core.evaluation.metrics import (
    DEFAULT_METRICS,
    MetricSpec,
    evaluate,
    evaluate_many,
    language_groups,
    leaderboard,
    parse_metric,
    query_length_buckets,
    query_tokens,
    slice_means,
)
from core.retrieval.runs import Ranking, Run

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
CUTOFFS = (1, 3, 5, 10, 20, 100, 200)
ALL_METRICS = tuple(f"{name}@{k}" for name in ("ndcg", "hit", "recall", "mrr", "map", "precision") for k in CUTOFFS) + ("ndcg", "mrr", "map")


def run_of(name: str, **rankings: list[tuple[str, float]]) -> Run:
    return Run(name, {q: Ranking(tuple(d for d, _ in pairs), tuple(s for _, s in pairs)) for q, pairs in rankings.items()})


def one_query(metrics, grades: dict[str, int], ranking: list[tuple[str, float]]) -> dict[str, float]:
    """Per-query row of a single-query evaluation, as a plain dict."""
    evaluation = evaluate(Qrels({"q": grades}), run_of("r", q=ranking), metrics)
    return evaluation.per_query.loc["q"].to_dict()


# ---------------------------------------------------------------- hand-computed cases

def test_graded_ranking_matches_hand_computed_trec_eval_values():
    grades = {"a": 3, "b": 2, "c": 1, "z": 0}
    ranking = [("z", 0.9), ("c", 0.8), ("a", 0.7), ("x", 0.6), ("b", 0.5)]  # x is unjudged
    row = one_query(["ndcg@3", "ndcg@5", "ndcg", "map@3", "map", "mrr@1", "mrr@2", "mrr", "precision@2",
                     "precision@5", "recall@3", "recall@5", "hit@1", "hit@2"], grades, ranking)
    ideal_3 = 3 + 2 / math.log2(3) + 1 / 2
    assert row["ndcg@3"] == pytest.approx((1 / math.log2(3) + 3 / 2) / ideal_3, abs=1e-12)
    assert row["ndcg@5"] == pytest.approx((1 / math.log2(3) + 3 / 2 + 2 / math.log2(6)) / ideal_3, abs=1e-12)
    assert row["ndcg"] == pytest.approx(row["ndcg@5"], abs=1e-12)
    assert row["map@3"] == pytest.approx((1 / 2 + 2 / 3) / 3, abs=1e-12)
    assert row["map"] == pytest.approx((1 / 2 + 2 / 3 + 3 / 5) / 3, abs=1e-12)
    assert (row["mrr@1"], row["mrr@2"], row["mrr"]) == (0.0, 0.5, 0.5)
    assert (row["precision@2"], row["precision@5"]) == (0.5, 0.6)
    assert (row["recall@3"], row["recall@5"]) == pytest.approx((2 / 3, 1.0))
    assert (row["hit@1"], row["hit@2"]) == (0.0, 1.0)
    assert row["positive_rank"] == 3  # "a" carries the top grade


def test_ties_in_score_are_broken_by_doc_id_descending_as_trec_eval_does():
    # Same score: trec_eval ranks "b" before "a", whatever order the run lists them in.
    assert one_query(["mrr", "ndcg@1"], {"a": 1}, [("a", 0.5), ("b", 0.5)]) == {"mrr": 0.5, "ndcg@1": 0.0, "positive_rank": 2.0}
    assert one_query(["mrr", "ndcg@1"], {"b": 1}, [("a", 0.5), ("b", 0.5)]) == {"mrr": 1.0, "ndcg@1": 1.0, "positive_rank": 1.0}
    # String order, not numeric: "d9" > "d10", so d9 comes first.
    assert one_query(["mrr"], {"d10": 1}, [("d10", 1.0), ("d9", 1.0)])["mrr"] == 0.5


def test_given_order_is_ignored_and_rankings_are_resorted_by_score():
    row = one_query(["mrr", "precision@1"], {"best": 1}, [("worst", 0.1), ("middle", 0.2), ("best", 0.3)])
    assert row == {"mrr": 1.0, "precision@1": 1.0, "positive_rank": 1.0}


def test_query_without_a_retrieved_positive_scores_zero_and_has_no_positive_rank():
    row = one_query(ALL_METRICS, {"gold": 1}, [("x", 0.9), ("y", 0.8)])
    assert all(row[m] == 0.0 for m in ALL_METRICS)
    assert math.isnan(row["positive_rank"])


def test_query_absent_from_the_run_scores_zero_and_counts_in_the_mean():
    qrels = Qrels({"found": {"a": 1}, "absent": {"b": 1}})
    evaluation = evaluate(qrels, run_of("r", found=[("a", 1.0)]), ALL_METRICS)
    assert evaluation.query_ids == ["found", "absent"]
    assert all(evaluation.per_query.loc["absent", m] == 0.0 for m in ALL_METRICS)
    assert math.isnan(evaluation.per_query.loc["absent", "positive_rank"])
    assert evaluation.mean()["ndcg@10"] == 0.5
    assert evaluation.mean()["precision@1"] == 0.5


def test_only_queries_with_a_relevant_judgment_are_evaluated():
    qrels = Qrels({"judged": {"a": 1}, "all_negative": {"b": 0}, "empty": {}})
    run = run_of("r", judged=[("a", 1.0)], all_negative=[("b", 1.0)], not_in_qrels=[("a", 1.0)])
    evaluation = evaluate(qrels, run, ["ndcg@10"])
    assert evaluation.query_ids == ["judged"]
    assert evaluation.mean() == {"ndcg@10": 1.0}


def test_duplicate_doc_ids_keep_their_first_occurrence():
    # "a" first appears with 0.5; its later 0.95 copy is dropped, so "x" (0.9) stays ahead of it.
    row = one_query(["mrr", "precision@3", "recall@3"], {"a": 1}, [("a", 0.5), ("x", 0.9), ("a", 0.95)])
    assert row == {"mrr": 0.5, "precision@3": pytest.approx(1 / 3), "recall@3": 1.0, "positive_rank": 2.0}


def test_cutoff_larger_than_the_ranking_divides_precision_by_k_and_recall_by_all_relevant():
    row = one_query(["precision@10", "recall@10", "ndcg@10", "map@10", "hit@10"], {"a": 1, "b": 1, "c": 2},
                    [("a", 0.9), ("x", 0.8)])
    assert row["precision@10"] == pytest.approx(0.1)
    assert row["recall@10"] == pytest.approx(1 / 3)
    assert row["ndcg@10"] == pytest.approx(1 / (2 + 1 / math.log2(3) + 1 / 2))  # ideal uses all judged positives
    assert row["map@10"] == pytest.approx(1 / 3)
    assert row["hit@10"] == 1.0


def test_negative_grades_are_non_relevant_with_zero_gain():
    row = one_query(["ndcg@2", "mrr"], {"bad": -1, "good": 1}, [("bad", 0.9), ("good", 0.8)])
    assert row["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert row["mrr"] == 0.5


def test_positive_rank_points_at_the_best_graded_document_not_the_first_relevant():
    assert one_query(["mrr"], {"ok": 1, "best": 2}, [("ok", 0.9), ("best", 0.1)])["positive_rank"] == 2.0
    assert math.isnan(one_query(["mrr"], {"ok": 1, "best": 2}, [("ok", 0.9)])["positive_rank"])


def test_empty_ranking_and_nan_scores_do_not_break_evaluation():
    assert one_query(["ndcg@10"], {"a": 1}, [])["ndcg@10"] == 0.0
    assert one_query(["mrr"], {"a": 1}, [("a", float("nan")), ("x", 0.1)])["mrr"] == 0.5  # NaN ranks last


def test_ranking_with_fewer_scores_than_documents_is_refused():
    run = Run("broken", {"q": Ranking(("a", "b"), (1.0,))})
    with pytest.raises(MetricError, match="2 documents but 1 scores"):
        evaluate(Qrels({"q": {"a": 1}}), run, ["mrr"])


def test_qrels_without_any_relevant_document_is_refused():
    with pytest.raises(MetricError, match="nothing to evaluate"):
        evaluate(Qrels({"q": {"a": 0}}), run_of("r", q=[("a", 1.0)]), ["mrr"])


# ---------------------------------------------------------------- metric names

@pytest.mark.parametrize("text, spec, key, label", [
    ("ndcg@10", MetricSpec("ndcg", 10), "ndcg@10", "nDCG@10"),
    ("nDCG@10", MetricSpec("ndcg", 10), "ndcg@10", "nDCG@10"),
    (" P@5 ", MetricSpec("precision", 5), "precision@5", "P@5"),
    ("success@1", MetricSpec("hit", 1), "hit@1", "Hit@1"),
    ("hit_rate@10", MetricSpec("hit", 10), "hit@10", "Hit@10"),
    ("recall_100", MetricSpec("recall", 100), "recall@100", "Recall@100"),
    ("map_cut@1000", MetricSpec("map", 1000), "map@1000", "MAP@1000"),
    ("MRR", MetricSpec("mrr", None), "mrr", "MRR"),
    ("recip_rank", MetricSpec("mrr", None), "mrr", "MRR"),
    ("ndcg", MetricSpec("ndcg", None), "ndcg", "nDCG"),
])
def test_metric_names_parse_to_canonical_specs(text, spec, key, label):
    parsed = parse_metric(text)
    assert parsed == spec
    assert (parsed.key, parsed.label()) == (key, label)


@pytest.mark.parametrize("text, message", [
    ("bleu@10", "Unknown metric"), ("", "Unknown metric"), ("ndcg@0", "whole number >= 1"),
    ("ndcg@ten", "whole number >= 1"), ("ndcg@-1", "whole number >= 1"), ("ndcg@1.5", "whole number >= 1"),
    ("precision", "needs a cutoff"), ("hit", "needs a cutoff"), ("recall", "needs a cutoff"),
])
def test_bad_metric_names_raise_a_workbench_error_saying_what_to_use(text, message):
    with pytest.raises(MetricError, match=message) as caught:
        parse_metric(text)
    assert isinstance(caught.value, WorkbenchError) and isinstance(caught.value, ValueError)


def test_evaluate_refuses_an_empty_metric_list_and_drops_repeated_metrics():
    qrels, run = Qrels({"q": {"a": 1}}), run_of("r", q=[("a", 1.0)])
    with pytest.raises(MetricError, match="No metric"):
        evaluate(qrels, run, [])
    evaluation = evaluate(qrels, run, ["ndcg@10", "nDCG@10", "mrr@10"])
    assert evaluation.metrics == ("ndcg@10", "mrr@10")
    assert list(evaluation.per_query.columns) == ["ndcg@10", "mrr@10", "positive_rank"]


# ---------------------------------------------------------------- agreement with pytrec_eval (trec_eval)

def trec_order(scores: dict[str, float]) -> list[str]:
    """trec_eval's order, written independently: score descending, then doc id descending."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def real_run(name: str, seed: int, drop: float = 0.05) -> tuple[Qrels, Run]:
    """A tie-heavy run over a real dataset's ids: 100 random docs per query, scores rounded to 0.1,
    the positive put at a random rank (or left out), and a few queries left out of the run."""
    dataset = load_dataset(DATASETS / name)
    rng = np.random.default_rng(seed)
    doc_ids = np.array([d.id for d in dataset.documents], dtype=object)
    rankings = {}
    for query in dataset.judged_queries:
        if rng.random() < drop:
            continue
        docs = list(rng.choice(doc_ids, 100, replace=False))
        positives = dataset.qrels.positives(query.id)
        docs = [d for d in docs if d not in positives][:99]
        if rng.random() < 0.8:
            docs.insert(int(rng.integers(0, len(docs) + 1)), positives[0])
        scores = np.sort(np.round(rng.random(len(docs)), 1))[::-1]  # listed best first, ties in arbitrary order
        rankings[query.id] = Ranking(tuple(docs), tuple(float(s) for s in scores))
    return dataset.qrels, Run(f"{name}-{seed}", rankings)


def graded_run(seed: int, ties: bool = True) -> tuple[Qrels, Run]:
    """Synthetic graded benchmark: 0-3 grades, unpadded ids ("d9" > "d10"), rankings of 0-150 documents."""
    rng = np.random.default_rng(seed)
    doc_ids = [f"d{i}" for i in range(400)] + ["é-doc", "Z-doc", "z-doc"]
    judgments, rankings = {}, {}
    for q in range(80):
        judged = rng.choice(doc_ids, int(rng.integers(1, 10)), replace=False)
        judgments[f"q{q}"] = {str(d): int(rng.integers(0, 4)) for d in judged}
        if q % 17 == 0:
            continue  # absent from the run
        depth = int(rng.integers(0, 151))
        pool = list(dict.fromkeys(list(judged) + list(rng.choice(doc_ids, depth, replace=False))))
        docs = [str(d) for d in rng.permutation(np.array(pool, dtype=object))[:depth]]
        raw = rng.random(len(docs))
        scores = np.round(raw * 5) / 5 if ties else raw + np.arange(len(docs)) * 1e-9
        rankings[f"q{q}"] = Ranking(tuple(docs), tuple(float(s) for s in scores))
    return Qrels(judgments), Run(f"graded-{seed}", rankings)


TREC_MEASURES = {"ndcg_cut": "ndcg", "recall": "recall", "P": "precision", "map_cut": "map", "success": "hit"}


def pytrec_eval_scores(qrels: Qrels, run: Run) -> pd.DataFrame:
    """Every metric of ALL_METRICS from pytrec_eval, per query of the run (MRR@k on runs cut to k)."""
    judgments = {q: dict(g) for q, g in qrels.judgments.items() if any(v >= 1 for v in g.values())}
    scored = {q: dict(zip(r.doc_ids, r.scores)) for q, r in run.rankings.items() if q in judgments and len(r)}
    cutoffs = ",".join(map(str, CUTOFFS))
    evaluator = pytrec_eval.RelevanceEvaluator(judgments, {f"{m}.{cutoffs}" for m in TREC_MEASURES} | {"recip_rank", "ndcg", "map"})
    rows = {}
    for query_id, measures in evaluator.evaluate(scored).items():
        row = {f"{ours}@{k}": measures[f"{theirs}_{k}"] for theirs, ours in TREC_MEASURES.items() for k in CUTOFFS}
        row.update(mrr=measures["recip_rank"], ndcg=measures["ndcg"], map=measures["map"])
        rows[query_id] = row
    rank_only = pytrec_eval.RelevanceEvaluator(judgments, {"recip_rank"})
    for k in CUTOFFS:
        cut = {q: {d: scores[d] for d in trec_order(scores)[:k]} for q, scores in scored.items()}
        for query_id, measures in rank_only.evaluate(cut).items():
            rows[query_id][f"mrr@{k}"] = measures["recip_rank"]
    return pd.DataFrame.from_dict(rows, orient="index")[list(ALL_METRICS)]


RUNS = {
    "cosqa-1": lambda: real_run("cosqa", 1),
    "cosqa-2": lambda: real_run("cosqa", 2),
    "csn-python-code2doc-3": lambda: real_run("csn-python-code2doc", 3),
    "graded-4": lambda: graded_run(4),
    "graded-5": lambda: graded_run(5),
}


@pytest.mark.parametrize("source", RUNS)
def test_every_metric_matches_pytrec_eval_per_query_and_in_the_mean(source):
    qrels, run = RUNS[source]()
    ours = evaluate(qrels, run, ALL_METRICS).per_query
    theirs = pytrec_eval_scores(qrels, run)
    assert len(theirs) > 0.8 * len(ours)
    compared = ours.loc[theirs.index, list(ALL_METRICS)]
    delta = (compared - theirs).abs()
    worst = delta.stack().idxmax()
    assert delta.to_numpy().max() < 1e-9, f"{worst}: ours {compared.loc[worst]} vs trec_eval {theirs.loc[worst]}"
    assert (compared.mean() - theirs.mean()).abs().max() < 1e-9
    assert compared["hit@10"].sum() > 0, "the run must have hits for the comparison to mean something"


@pytest.mark.parametrize("source", RUNS)
def test_runs_compared_with_pytrec_eval_have_ties_that_change_the_result(source):
    """Guards the comparison above: keeping the run's own order among ties would give other numbers."""
    qrels, run = RUNS[source]()
    differing = 0
    for query_id, ranking in run.rankings.items():
        scores = dict(zip(ranking.doc_ids, ranking.scores))
        given_order = sorted(scores, key=lambda d: -scores[d])  # stable: ties keep the listed order
        relevant = {d for d, g in qrels.grades(query_id).items() if g >= 1}
        first = lambda order: next((i for i, d in enumerate(order) if d in relevant), None)  # noqa: E731
        differing += first(given_order) != first(trec_order(scores))
    assert differing >= 5


@pytest.mark.parametrize("source", ["cosqa-1", "graded-4"])
def test_queries_missing_from_the_run_score_zero_where_pytrec_eval_skips_them(source):
    qrels, run = RUNS[source]()
    evaluation = evaluate(qrels, run, ALL_METRICS)
    theirs = pytrec_eval_scores(qrels, run)
    missing = [q for q in evaluation.query_ids if q not in theirs.index]
    assert missing and all(not len(run.ranking(q)) for q in missing)
    assert (evaluation.per_query.loc[missing, list(ALL_METRICS)] == 0).all().all()
    expected_mean = theirs.sum() / len(evaluation.query_ids)  # trec_eval -c: absent queries add 0
    assert (pd.Series(evaluation.mean()) - expected_mean).abs().max() < 1e-9


# ---------------------------------------------------------------- agreement with ranx

# ranx 0.3.21 sorts each query's documents with an unstable argsort of the scores, so tied documents
# come in an arbitrary order, not trec_eval's doc-id-descending one; there it differs from trec_eval
# and from us. Its formulas otherwise match trec_eval's (ndcg = linear gains, map@k divided by all
# relevant, precision@k divided by k), so it is compared on runs without ties.
RANX_NAMES = {"ndcg": "ndcg", "recall": "recall", "precision": "precision", "mrr": "mrr", "hit": "hit_rate", "map": "map"}
RANX_CUTOFFS = (1, 5, 10, 100)


@pytest.fixture(scope="module")
def ranx():
    """ranx compiles its metrics with numba: ~10 s warm, over a minute on a fresh machine (hence `slow`)."""
    return pytest.importorskip("ranx")


@pytest.mark.slow
@pytest.mark.parametrize("source", ["cosqa", "graded"])
def test_metrics_match_ranx_on_runs_without_ties(ranx, source):
    if source == "cosqa":
        qrels, run = real_run("cosqa", 7)
        rng = np.random.default_rng(7)  # replace the tied scores by distinct ones, keeping the listed order
        run = Run(run.name, {q: Ranking(r.doc_ids, tuple(np.sort(rng.random(len(r)))[::-1].tolist())) for q, r in run.rankings.items()})
    else:
        qrels, run = graded_run(8, ties=False)
    assert all(len(set(r.scores)) == len(r) for r in run.rankings.values())
    judgments = {q: dict(g) for q, g in qrels.judgments.items() if any(v >= 1 for v in g.values())}
    ranx_run = ranx.Run({q: dict(zip(r.doc_ids, r.scores)) for q, r in run.rankings.items() if q in judgments and len(r)})
    metrics = [f"{name}@{k}" for name in RANX_NAMES for k in RANX_CUTOFFS]
    ranx.evaluate(ranx.Qrels(judgments), ranx_run, [f"{RANX_NAMES[m.split('@')[0]]}@{m.split('@')[1]}" for m in metrics],
                  make_comparable=True)  # make_comparable: queries absent from the run get an empty ranking (score 0)
    ours = evaluate(qrels, run, metrics)
    for metric in metrics:
        name, k = metric.split("@")
        theirs = pd.Series(dict(ranx_run.scores[f"{RANX_NAMES[name]}@{k}"]))
        assert set(theirs.index) == set(ours.query_ids)
        delta = (ours.per_query[metric] - theirs.reindex(ours.per_query.index)).abs().max()
        assert delta < 1e-9, metric


# ---------------------------------------------------------------- properties

DOCS = list("abcdefgh")


@st.composite
def judged_rankings(draw):
    grades = draw(st.dictionaries(st.sampled_from(DOCS), st.integers(0, 3), min_size=1, max_size=6))
    if not any(g >= 1 for g in grades.values()):
        grades[draw(st.sampled_from(sorted(grades)))] = draw(st.integers(1, 3))
    pairs = draw(st.lists(st.tuples(st.sampled_from(DOCS + ["x", "y"]), st.sampled_from([0.0, 0.5, 1.0, 2.0])), max_size=12))
    return grades, pairs


@settings(max_examples=150, deadline=None)
@given(judged_rankings(), st.integers(1, 12))
def test_metrics_stay_in_bounds_and_hit_is_at_least_mrr_and_recall_grows_with_k(case, k):
    grades, pairs = case
    names = [f"{m}@{c}" for m in ("ndcg", "hit", "recall", "mrr", "map", "precision") for c in (k, k + 1)] + ["ndcg", "mrr", "map"]
    row = one_query(names, grades, pairs)
    assert all(0.0 <= row[m] <= 1.0 for m in names)
    assert row[f"hit@{k}"] >= row[f"mrr@{k}"]
    assert row[f"recall@{k}"] <= row[f"recall@{k + 1}"]
    assert row[f"ndcg@{k}"] <= 1.0 and row["mrr"] >= row[f"mrr@{k}"] and row["map"] >= row[f"map@{k}"]
    assert math.isnan(row["positive_rank"]) or row["positive_rank"] >= 1


@settings(max_examples=100, deadline=None)
@given(judged_rankings())
def test_ideal_ranking_scores_one_on_ndcg_map_and_mrr_at_every_cutoff(case):
    grades, _ = case
    ideal = sorted((d for d, g in grades.items() if g >= 1), key=lambda d: -grades[d])
    relevant = len(ideal)
    row = one_query(["ndcg", "map", "mrr"] + [f"{m}@{k}" for m in ("ndcg", "recall") for k in range(1, 8)],
                    grades, [(d, float(len(ideal) - i)) for i, d in enumerate(ideal)])
    assert all(row[f"ndcg@{k}"] == pytest.approx(1.0) for k in range(1, 8))
    assert all(row[f"recall@{k}"] == pytest.approx(min(k, relevant) / relevant) for k in range(1, 8))
    assert (row["ndcg"], row["map"], row["mrr"]) == (pytest.approx(1.0), pytest.approx(1.0), 1.0)


@settings(max_examples=100, deadline=None)
@given(judged_rankings(), st.randoms(use_true_random=False))
def test_listed_order_of_a_ranking_does_not_change_its_scores(case, random):
    grades, pairs = case
    pairs = list(dict(pairs).items())  # distinct documents: duplicates would make the listed order matter
    shuffled = random.sample(pairs, len(pairs))
    listed, reordered = (pd.Series(one_query(ALL_METRICS, grades, order)) for order in (pairs, shuffled))
    pd.testing.assert_series_equal(listed, reordered)  # NaN positive_rank compares equal here


# ---------------------------------------------------------------- slices and leaderboard

def tiny_dataset() -> Dataset:
    documents = (Document("py1", "def f(): pass", language="python"), Document("go1", "func f() {}", language="go"),
                 Document("js1", "function f() {}", language="javascript"))
    queries = (Query("q1", "one", "python"), Query("q2", "two words here now", ""), Query("q3", "three words here", "javascript"),
               Query("q4", "a much longer query with many words in it", "python"), Query("q5", "unjudged", "python"))
    qrels = Qrels({"q1": {"py1": 1}, "q2": {"go1": 1}, "q3": {"js1": 1}, "q4": {"py1": 1}, "q5": {"py1": 0}})
    return Dataset("tiny", documents, queries, qrels)


def tiny_run(name: str, hits: set[str]) -> Run:
    dataset = tiny_dataset()
    return run_of(name, **{q: [(next(iter(dataset.qrels.grades(q))) if q in hits else "none", 1.0)] for q in ("q1", "q2", "q3", "q4")})


def test_language_groups_use_the_query_language_then_the_positive_language_in_name_order():
    groups = language_groups(tiny_dataset())
    assert groups == {"q2": "go", "q3": "javascript", "q1": "python", "q4": "python"}
    assert list(groups) == ["q2", "q3", "q1", "q4"]


def test_slice_means_average_each_group_and_count_its_queries():
    evaluation = evaluate(tiny_dataset().qrels, tiny_run("r", {"q1", "q2"}), ["hit@1", "mrr"])
    table = slice_means(evaluation, language_groups(tiny_dataset()))
    assert list(table.index) == ["go", "javascript", "python"]
    assert table.loc["python", "hit@1"] == 0.5 and table.loc["go", "mrr"] == 1.0 and table.loc["javascript", "hit@1"] == 0.0
    assert table["queries"].tolist() == [1, 1, 2]
    assert list(table.columns) == ["hit@1", "mrr", "queries"]


def test_slice_means_put_unlabelled_queries_in_unknown_and_ignore_labels_of_other_queries():
    evaluation = evaluate(tiny_dataset().qrels, tiny_run("r", {"q1", "q2", "q3"}), ["hit@1"])
    table = slice_means(evaluation, {"q4": "b", "q1": "a", "elsewhere": "c"})
    assert list(table.index) == ["b", "a", "unknown"]
    assert table.loc["unknown", "hit@1"] == 1.0 and table.loc["unknown", "queries"] == 2 and table.loc["b", "hit@1"] == 0.0


def test_query_length_buckets_with_explicit_edges_label_by_token_count():
    buckets = query_length_buckets(tiny_dataset(), edges=(2, 4))
    assert buckets == {"q1": "short (<2 tokens)", "q3": "medium (2-3 tokens)", "q2": "long (>=4 tokens)", "q4": "long (>=4 tokens)"}
    assert query_tokens("def foo_bar(x): return x+1") == 6  # def, foo_bar, x, return, x, 1


@pytest.mark.parametrize("edges", [(3,), (4, 4), (5, 2), (0, 3), (1, 2, 3)])
def test_query_length_buckets_refuse_unusable_edges(edges):
    with pytest.raises(MetricError, match="two token counts"):
        query_length_buckets(tiny_dataset(), edges=edges)


@pytest.mark.parametrize("name", ["cosqa", "csn-python-code2doc"])
def test_default_length_buckets_split_a_real_dataset_into_three_ordered_tertiles(name):
    dataset = load_dataset(DATASETS / name)
    buckets = query_length_buckets(dataset)
    labels = list(dict.fromkeys(buckets.values()))
    assert len(buckets) == len(dataset.judged_queries) and len(labels) == 3
    assert [label.split()[0] for label in labels] == ["short", "medium", "long"]
    sizes = pd.Series(buckets).value_counts()
    assert sizes.min() >= 0.15 * len(buckets), sizes
    lengths = {q.id: query_tokens(q.text) for q in dataset.judged_queries}
    short = max(lengths[q] for q, b in buckets.items() if b == labels[0])
    assert short < min(lengths[q] for q, b in buckets.items() if b == labels[1])


def test_leaderboard_lists_runs_in_order_with_their_metric_means():
    dataset = tiny_dataset()
    evaluations = evaluate_many(dataset.qrels, [tiny_run("strong", {"q1", "q2", "q3", "q4"}), tiny_run("weak", {"q1"})], DEFAULT_METRICS)
    board = leaderboard(evaluations)
    assert list(board.index) == ["strong", "weak"] and list(board.columns) == list(DEFAULT_METRICS)
    assert board.loc["strong", "ndcg@10"] == 1.0 and board.loc["weak", "hit@10"] == 0.25
    assert board.loc["weak"].to_dict() == evaluations[1].mean()


# ---------------------------------------------------------------- speed

def test_evaluating_500_queries_of_100_documents_on_8_metrics_takes_under_100_ms():
    qrels, run = real_run("cosqa", 11, drop=0.0)
    metrics = ["ndcg@10", "hit@10", "recall@100", "mrr@10", "map@10", "precision@10", "ndcg", "mrr"]
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        evaluation = evaluate(qrels, run, metrics)
        timings.append(time.perf_counter() - start)
    assert len(evaluation.query_ids) == 500 and run.depth == 100
    assert min(timings) < 0.1, f"best of 5: {min(timings) * 1000:.0f} ms"
