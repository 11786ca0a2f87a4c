"""Complementarity and the oracle: hand-computed cases, then real runs of the mini slice."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import MetricError
from core.evaluation.complementarity import complementarity, fusions_of, oracle_comparison, oracle_per_query, weighted_fusions_of
from core.evaluation.metrics import Evaluation, evaluate
from core.retrieval.profiles import default_profiles

IDS = ["q1", "q2", "q3", "q4", "q5"]


def run(name: str, hit: list[float], ndcg: list[float]) -> Evaluation:
    frame = pd.DataFrame({"hit@10": hit, "ndcg@10": ndcg}, index=pd.Index(IDS, name="query_id", dtype=object))
    frame["positive_rank"] = np.nan
    return Evaluation(name, ("hit@10", "ndcg@10"), frame)


A = run("a", [1, 0, 1, 0, 1], [1.0, 0.0, 0.5, 0.0, 0.2])
B = run("b", [0, 1, 1, 0, 1], [0.0, 0.6309, 0.3, 0.0, 0.4])
C = run("c", [0, 0, 1, 0, 0], [0.0, 0.0, 0.1, 0.0, 0.0])


def test_groups_by_hand_one_only_all_and_none():
    solved = complementarity([A, B, C], "hit@10")
    groups = {g.label: g.query_ids for g in solved.summary()}
    assert groups == {"a only": ("q1",), "b only": ("q2",), "c only": (), "all 3": ("q3",), "none": ("q4",)}


def test_intersections_list_every_occurring_combination_largest_first():
    table = complementarity([A, B, C], "hit@10").intersections()
    rows = {tuple(r[["a", "b", "c"]]): (r["queries"], r["query_ids"]) for _, r in table.iterrows()}
    assert rows == {(True, False, False): (1, ("q1",)), (False, True, False): (1, ("q2",)),
                    (True, True, True): (1, ("q3",)), (False, False, False): (1, ("q4",)),
                    (True, True, False): (1, ("q5",))}
    assert table["queries"].sum() == len(IDS)


def test_the_oracle_takes_each_querys_best_member_by_hand():
    # per query max of a and b: 1.0, 0.6309, 0.5, 0.0, 0.4 -> mean 2.5309 / 5
    assert list(oracle_per_query([A, B], "ndcg@10")) == [1.0, 0.6309, 0.5, 0.0, 0.4]
    fusion = run("fused", [1, 1, 1, 0, 1], [0.5, 0.5, 0.5, 0.0, 0.3])  # mean 1.8 / 5 = 0.36
    comparison = oracle_comparison([A, B], [fusion], "ndcg@10")
    assert comparison.oracle == pytest.approx(2.5309 / 5)
    assert comparison.best_member == ("a", pytest.approx(0.34))
    assert comparison.left_on_the_table == pytest.approx(2.5309 / 5 - 0.36)
    frame = comparison.frame()
    assert frame.loc["oracle", "kind"] == "upper bound" and frame.loc["fused", "oracle − run"] == pytest.approx(0.50618 - 0.36)


def test_the_oracle_bounds_the_real_fusions_of_bm25_and_dense(csn_engine, csn_mini):
    members = [evaluate(csn_mini.qrels, csn_engine.run(n), ["ndcg@10", "hit@10"]) for n in ("bm25-code", "dense-minilm")]
    fusions = [evaluate(csn_mini.qrels, csn_engine.run(n), ["ndcg@10", "hit@10"]) for n in ("hybrid-rrf", "hybrid-weighted")]
    comparison = oracle_comparison(members, fusions, "ndcg@10")
    expected = np.maximum(members[0].per_query["ndcg@10"], members[1].per_query["ndcg@10"]).mean()
    assert comparison.oracle == pytest.approx(expected, abs=1e-12)
    assert comparison.left_on_the_table >= 0 and comparison.oracle >= comparison.best_member[1]
    solved = complementarity(members, "hit@10")
    both = members[0].per_query["hit@10"].gt(0) & members[1].per_query["hit@10"].gt(0)
    assert set(solved.by_all().query_ids) == set(both[both].index)
    # with two profiles the four groups (each alone, both, none) partition the queries
    assert sum(g.queries for g in solved.summary()) == len(csn_mini.judged_queries)
    assert solved.intersections()["queries"].sum() == len(csn_mini.judged_queries)


def test_fusions_of_the_default_members_are_the_two_hybrids():
    profiles = default_profiles()
    assert fusions_of(profiles, ["bm25-code", "dense-minilm"]) == ["hybrid-rrf", "hybrid-weighted"]
    assert weighted_fusions_of(profiles, ["bm25-code", "dense-minilm"]) == ["hybrid-weighted"]
    assert fusions_of(profiles, ["bm25-plain", "dense-minilm"]) == []


def test_one_profile_or_other_queries_are_refused_with_a_message():
    with pytest.raises(MetricError, match="two or more"):
        complementarity([A], "hit@10")
    other = Evaluation("d", ("hit@10",), A.per_query.rename(index={"q1": "q9"}))
    with pytest.raises(MetricError, match="other queries"):
        complementarity([A, other], "hit@10")
    with pytest.raises(MetricError, match="not evaluated on hit@5"):
        complementarity([A, B], "hit@5")
