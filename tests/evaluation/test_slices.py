"""Slice finder: features from tree-sitter and the texts, quantile buckets, and slices tested with Holm's correction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.errors import MetricError
from core.evaluation.metrics import evaluate, query_tokens
from core.evaluation.slices import (bucket_labels, code_facts, difference_values, find_slices, holm, identifiers,
                                    query_features, slices_for)


def test_code_facts_find_docstrings_comments_and_constructs():
    facts = code_facts('@cache\nasync def f(x):\n    """Doc."""\n    for i in x:\n        pass\n')
    assert facts.parses and facts.documented and facts.constructs == {"decorator", "async", "loop"}
    bare = code_facts("class A:\n    x = 1\n")
    assert bare.parses and not bare.documented and bare.constructs == {"class"}
    assert code_facts("x = 1  # note\nwhile x: x -= 1\n").documented
    assert not code_facts("sort a list by a token in string python").parses


def test_identifiers_leave_keywords_out():
    assert identifiers("def read_json(self, path): return json.load(path)") == ["read_json", "path", "json", "load"]


def test_holm_matches_a_hand_computed_case():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm(np.array([0.5, 0.9])), [1.0, 1.0])


def test_a_clearly_worse_slice_is_found_significant_and_first():
    ids = [f"q{i}" for i in range(120)]
    rng = np.random.default_rng(0)
    kind = pd.Series(["long"] * 40 + ["short"] * 80, index=ids)
    values = pd.Series(np.where(kind == "long", 0.2, 0.8) + rng.normal(0, 0.05, 120), index=ids)
    labels = pd.DataFrame({"kind": "kind: " + kind, "noise": [f"noise: {i % 2}" for i in range(120)]}, index=ids)
    found = find_slices(values, labels, "lower", min_size=10)
    top = found.iloc[0]
    assert top["slice"] == "kind: long" and top["significant"] and top["queries"] == 40
    expected = stats.ttest_ind(values[kind == "long"], values[kind == "short"], equal_var=False, alternative="less").pvalue
    assert top["p"] == pytest.approx(expected)
    assert top["p (Holm)"] == pytest.approx(min(1.0, expected * len(found)))  # the smallest p times the slices tested
    assert top["effect"] == pytest.approx(values.mean() - values[kind == "long"].mean())
    assert top["score"] == pytest.approx(top["effect"] * 40 / 120)
    assert set(top["query_ids"]) == set(ids[:40])
    assert not found.set_index("slice").loc["noise: 0", "significant"]
    # a pair that holds the same queries as "kind: long" is not listed twice
    assert found["query_ids"].map(frozenset).is_unique


def test_min_size_drops_small_slices_and_refuses_impossible_sizes():
    ids = [f"q{i}" for i in range(30)]
    labels = pd.DataFrame({"kind": ["kind: rare"] * 3 + ["kind: common"] * 27}, index=ids)
    values = pd.Series(np.linspace(0, 1, 30), index=ids)
    assert "kind: rare" not in set(find_slices(values, labels, min_size=5)["slice"])
    with pytest.raises(MetricError, match="larger than the 30"):
        slices_for(values, pd.DataFrame({"language": ["python"] * 30}, index=ids), min_size=31)


def test_features_of_a_code_to_docstring_set_read_the_query_as_code(csn_mini):
    features = query_features(csn_mini)
    assert features.attrs["code side"] == "query"
    assert len(features) == len(csn_mini.judged_queries)
    query = csn_mini.judged_queries[0]
    row = features.loc[query.id]
    assert row["query tokens"] == query_tokens(query.text)
    assert row["has loop"] == ("loop" in code_facts(query.text).constructs)
    assert features["has loop"].any() and not features["has loop"].all()  # csn-mini's functions differ in this
    assert row["docstring or comment"] == code_facts(query.text).documented
    labels = bucket_labels(features)
    assert labels["query tokens"].nunique() <= 3


def test_features_of_a_text_to_code_set_read_the_positive_as_code(cosqa_mini):
    features = query_features(cosqa_mini)
    assert features.attrs["code side"] == "positive"


def test_where_b_beats_a_uses_the_per_query_difference(csn_engine, csn_mini):
    a = evaluate(csn_mini.qrels, csn_engine.run("bm25-code"), ["ndcg@10"])
    b = evaluate(csn_mini.qrels, csn_engine.run("dense-minilm"), ["ndcg@10"])
    difference = difference_values(a, b, "ndcg@10")
    np.testing.assert_allclose(difference, b.per_query["ndcg@10"] - a.per_query["ndcg@10"])
    found = slices_for(difference, query_features(csn_mini), "higher", min_size=5)
    assert len(found) and (found["queries"] >= 5).all()
    for _, row in found.head(3).iterrows():
        inside = difference.loc[list(row["query_ids"])]
        assert row["slice mean"] == pytest.approx(inside.mean())
        assert row["effect"] == pytest.approx(inside.mean() - difference.mean())
