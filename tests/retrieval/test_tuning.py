"""Fusion weights tuned on held-out folds: every reported query is ranked with weights chosen without it."""
from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import numpy as np
import pytest

from core.data.datasets import Qrels, Query
from core.errors import ProfileError
from core.evaluation.metrics import evaluate
from core.retrieval.engine import Engine
from core.retrieval.profiles import HybridProfile, default_profiles
from core.retrieval.runs import save_run, load_run
from core.retrieval.tuning import WEIGHT_GRID, ndcg_at, query_fold

TUNED = "hybrid-weighted"


def test_a_query_fold_is_a_hash_of_its_id_alone():
    assert query_fold("q1") == int(hashlib.sha256(b"q1").hexdigest()[:16], 16) % 2
    folds = [query_fold(f"query-{i}") for i in range(2000)]
    assert 900 < sum(folds) < 1100, "the two folds are about equal"


def test_the_tuning_objective_is_the_metrics_module_ndcg_at_10(csn_engine):
    run = csn_engine.run("bm25-code")
    per_query = evaluate(csn_engine.dataset.qrels, run, ["ndcg@10"]).per_query["ndcg@10"]
    rows = csn_engine.dataset.doc_index
    for query_id, expected in per_query.items():
        ranking = np.array([rows[d] for d in run.ranking(query_id).doc_ids])
        gains = {rows[d]: g for d, g in csn_engine.dataset.qrels.grades(query_id).items()}
        assert ndcg_at(ranking, gains) == pytest.approx(expected, abs=1e-12)
    graded = {0: 2, 5: 1, 9: 0}  # hand-computed: gains 1 at rank 1 and 2 at rank 2 against the ideal 2, 1
    assert ndcg_at(np.array([5, 0, 3]), graded) == pytest.approx((1 + 2 / np.log2(3)) / (2 + 1 / np.log2(3)))


def fixed(weight: float) -> HybridProfile:
    base = default_profiles()[TUNED]
    return replace(base, name=f"fixed-{weight}", weights=(weight, round(1 - weight, 10)), tune="none")


def fold_reference(engine: Engine, fold: int) -> tuple[float, ...]:
    """The weights an independent search picks on the *other* fold: real runs, scored by core.evaluation.metrics."""
    dev = [q for q in engine.dataset.judged_queries if query_fold(q.id) != fold]
    scores = []
    for weight in WEIGHT_GRID:
        run = engine.run(f"fixed-{weight}", queries=dev)
        scores.append(evaluate(engine.dataset.qrels, run, ["ndcg@10"]).per_query["ndcg@10"].loc[[q.id for q in dev]].mean())
    best = max(scores)
    ties = [w for w, s in zip(WEIGHT_GRID, scores) if s >= best - 1e-12]
    weight = min(ties, key=lambda w: abs(w - 0.3))  # ties go to the weights nearest the profile's own (0.3, 0.7)
    return (weight, round(1 - weight, 10))


@pytest.fixture(scope="module")
def tuned_engine(session_workspace, csn_mini):
    profiles = {**default_profiles(), **{f"fixed-{w}": fixed(w) for w in WEIGHT_GRID}}
    engine = Engine(session_workspace, csn_mini, profiles)
    engine.warm(["bm25-code", "dense-minilm"])
    return engine


def test_each_fold_is_ranked_with_the_weights_the_other_fold_chose(tuned_engine):
    run = tuned_engine.run(TUNED)
    record = run.meta["tuning"][TUNED]
    judged = [q.id for q in tuned_engine.dataset.judged_queries]
    assert record["fold_of_query"] == {qid: query_fold(qid) for qid in judged}, "the run records each query's fold"
    assert {0, 1} == set(record["fold_of_query"].values())
    for fold in (0, 1):
        entry = record["folds"][fold]
        assert tuple(entry["weights"]) == fold_reference(tuned_engine, fold)
        assert entry["tuned_on_queries"] == sum(query_fold(q) != fold for q in judged)
        members = [q for q in tuned_engine.dataset.judged_queries if query_fold(q.id) == fold]
        reference = tuned_engine.run(f"fixed-{entry['weights'][0]}", queries=members)
        for query in members:
            assert run.ranking(query.id) == reference.ranking(query.id)


def test_a_folds_weights_ignore_its_own_judgments(session_workspace, tuned_engine, csn_mini):
    """Scramble the judgments of fold 0's queries: fold 0's weights (chosen on fold 1) cannot move, fold 1's may."""
    rng = random.Random(5)
    doc_ids = [d.id for d in csn_mini.documents]
    scrambled = {qid: ({rng.choice(doc_ids): 1} if query_fold(qid) == 0 else dict(grades))
                 for qid, grades in csn_mini.qrels.judgments.items()}
    other = Engine(session_workspace, replace(csn_mini, qrels=Qrels(scrambled)), default_profiles())
    before = tuned_engine.run(TUNED).meta["tuning"][TUNED]["folds"]
    after = other.run(TUNED).meta["tuning"][TUNED]["folds"]
    assert after[0]["weights"] == before[0]["weights"]
    assert after[0]["dev_score"] == before[0]["dev_score"]


def test_a_pasted_query_uses_weights_tuned_on_all_judged_queries(tuned_engine):
    run = tuned_engine.run(TUNED)
    everywhere = tuple(run.meta["tuning"][TUNED]["other_queries"]["weights"])
    query = tuned_engine.dataset.judged_queries[0]
    pasted = tuned_engine.search(TUNED, query.text).ranking
    assert pasted == tuned_engine.run(f"fixed-{everywhere[0]}", queries=[Query("__adhoc__", query.text)]).ranking("__adhoc__")


def test_the_fold_record_survives_saving_the_run(tuned_engine, tmp_path):
    run = save_run(tuned_engine.run(TUNED), tmp_path)
    assert load_run(tmp_path, run.run_id).meta["tuning"] == run.meta["tuning"]


def test_without_judged_queries_the_profile_weights_stand(session_workspace, csn_mini):
    unjudged = replace(csn_mini, qrels=Qrels({}))
    engine = Engine(session_workspace, unjudged, default_profiles())
    query = csn_mini.queries[0]
    tuned = engine.run(TUNED, queries=[query])
    fixed_run = Engine(session_workspace, unjudged, {**default_profiles(), "fixed-0.3": fixed(0.3)}).run("fixed-0.3", queries=[query])
    assert tuned.ranking(query.id) == fixed_run.ranking(query.id)
    assert tuned.meta["tuning"][TUNED]["other_queries"] == {"weights": [0.3, 0.7], "tuned_on_queries": 0,
                                                           "tuned_on": "all judged queries"}


def test_tuning_needs_exactly_two_members():
    with pytest.raises(ProfileError, match="exactly two members"):
        HybridProfile("three", members=("a", "b", "c"), method="weighted", tune="folds").validate()
    with pytest.raises(ProfileError, match="tune must be one of"):
        HybridProfile("odd", tune="always").validate()
