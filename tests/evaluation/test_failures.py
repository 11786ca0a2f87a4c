"""core.evaluation.failures: which queries fail at k, and what outranked their positive, on csn-mini and by hand."""
from __future__ import annotations

import math
from collections import Counter

import pytest

from core.index.analyzers import code_tokens
from core.data.datasets import Dataset, Document, Qrels, Query
from core.errors import MetricError, QueryError
from core.evaluation.failures import explain_failure, find_failures, is_near_duplicate, shared_terms, token_jaccard
from core.evaluation.metrics import evaluate
from core.retrieval.runs import Ranking, Run

QUERY = "def load_user_config(path):\n    config = read_yaml(path)\n    return config"


def run_of(name: str, **rankings: list[str]) -> Run:
    return Run(name, {q: Ranking(tuple(ids), tuple(float(-i) for i in range(len(ids)))) for q, ids in rankings.items()})


@pytest.fixture
def hand() -> Dataset:
    documents = (
        Document("pos", "Load the user settings."),
        Document("yaml", "Read a YAML config file from path."),
        Document("twin", "Load the user settings!"),
        Document("other", "Compute a checksum."),
    )
    return Dataset("hand", documents, (Query("q", QUERY), Query("unjudged", "x")), Qrels({"q": {"pos": 1}}))


@pytest.fixture(scope="module")
def bm25_run(csn_engine) -> Run:
    return csn_engine.run("bm25-code")


def test_failures_at_1_are_exactly_the_queries_whose_positive_rank_is_not_1(csn_mini, bm25_run):
    per_query = evaluate(csn_mini.qrels, bm25_run, ["hit@1"]).per_query
    expected = set(per_query.index[per_query["positive_rank"].isna() | (per_query["positive_rank"] > 1)])
    failures = find_failures(csn_mini, bm25_run, k=1)
    assert {f.query_id for f in failures} == expected
    assert expected, "csn-mini should give bm25 some misses at rank 1"
    for failure in failures:
        rank = per_query.loc[failure.query_id, "positive_rank"]
        assert failure.positive_rank == (None if math.isnan(rank) else int(rank))


def test_failures_at_10_are_the_queries_with_hit_at_10_of_zero_listed_worst_first(csn_mini, bm25_run):
    per_query = evaluate(csn_mini.qrels, bm25_run, ["hit@10"]).per_query
    failures = find_failures(csn_mini, bm25_run, k=10)
    assert {f.query_id for f in failures} == set(per_query.index[per_query["hit@10"] == 0])
    depth = [math.inf if f.positive_rank is None else f.positive_rank for f in failures]
    assert depth == sorted(depth, reverse=True)
    assert all(f.positive_ids == tuple(csn_mini.qrels.positives(f.query_id)) for f in failures)


def test_find_failures_refuses_a_k_below_one(csn_mini, bm25_run):
    with pytest.raises(MetricError):
        find_failures(csn_mini, bm25_run, k=0)


def test_shared_terms_are_unique_and_ordered_by_frequency_in_the_query():
    terms = Counter(code_tokens(QUERY))  # config x3, path x2, then read, yaml once each
    assert shared_terms(terms, "Read a YAML config file from path.") == ("config", "path", "read", "yaml")
    assert shared_terms(terms, "Load the user settings.") == ("load", "user")
    assert shared_terms(terms, "Compute a checksum.") == ()


def test_explanation_lists_the_documents_above_the_positive_with_the_terms_the_positive_lacks(hand):
    run = run_of("bm25", q=["yaml", "twin", "pos", "other"])
    explanation = explain_failure(hand, run, "q", k=10, other_runs=[run_of("dense", q=["pos"]), run_of("empty")])
    assert explanation.failed is False and explanation.positive_rank == 3
    (positive,) = explanation.positives
    assert (positive.document.id, positive.rank, positive.shared_terms) == ("pos", 3, ("load", "user"))
    assert [(d.rank, d.document.id) for d in explanation.outranking] == [(1, "yaml"), (2, "twin")]
    yaml, twin = explanation.outranking
    assert yaml.shared_terms == ("config", "path", "read", "yaml") == yaml.terms_positive_lacks
    assert twin.shared_terms == ("load", "user") and twin.terms_positive_lacks == ()
    assert explanation.terms_positive_lacks == ("config", "path", "read", "yaml")
    assert [(o.run_name, o.rank) for o in explanation.other_ranks] == [("dense", 1), ("empty", None)]


def test_explanation_stops_at_k_documents_above_the_positive(hand):
    explanation = explain_failure(hand, run_of("bm25", q=["yaml", "twin", "pos"]), "q", k=1)
    assert explanation.failed and [d.document.id for d in explanation.outranking] == ["yaml"]


def test_a_positive_that_was_not_retrieved_is_explained_by_the_top_k(hand):
    explanation = explain_failure(hand, run_of("bm25", q=["other", "yaml", "twin"]), "q", k=2)
    assert explanation.positive_rank is None and explanation.failed
    assert [d.document.id for d in explanation.outranking] == ["other", "yaml"]
    assert explanation.positives[0].rank is None


def test_suggestions_name_the_near_duplicate_the_overlapping_document_and_the_generic_positive(hand):
    explanation = explain_failure(hand, run_of("bm25", q=["yaml", "twin", "pos"]), "q", k=10)
    reasons = {s.reason: s.detail for s in explanation.suggestions}
    assert list(reasons) == ["near-duplicate", "identifier overlap", "generic summary"]
    assert "rank 2 (twin)" in reasons["near-duplicate"]
    assert "rank 1 (yaml) shares 4 query terms" in reasons["identifier overlap"]
    assert "only 4 words" in reasons["generic summary"]


def test_no_suggestion_is_made_without_evidence():
    documents = (Document("pos", "Load the user settings from a yaml config file on disk."),
                 Document("other", "Compute a checksum of the bytes."))
    dataset = Dataset("hand", documents, (Query("q", QUERY),), Qrels({"q": {"pos": 1}}))
    explanation = explain_failure(dataset, run_of("bm25", q=["other", "pos"]), "q", k=10)
    assert explanation.suggestions == ()


def test_near_duplicates_are_found_by_characters_or_by_tokens():
    assert is_near_duplicate("Load the user settings.", "Load the user settings!")
    assert is_near_duplicate("user settings load", "load user settings")  # same tokens, other order
    assert not is_near_duplicate("Load the user settings.", "Read a YAML config file from path.")
    assert token_jaccard("a bb cc", "bb cc dd") == pytest.approx(2 / 3)  # 'a' is one letter: not a token


def test_explaining_an_unknown_or_unjudged_query_says_what_to_do(hand):
    run = run_of("bm25", q=["pos"])
    with pytest.raises(QueryError, match="not in dataset"):
        explain_failure(hand, run, "nope")
    with pytest.raises(QueryError, match="no relevant document"):
        explain_failure(hand, run, "unjudged")


def test_real_failure_explanation_agrees_with_the_run_and_the_tokenizer(csn_mini, bm25_run, csn_engine):
    failure = find_failures(csn_mini, bm25_run, k=1)[0]
    dense = csn_engine.run("dense-minilm")
    explanation = explain_failure(csn_mini, bm25_run, failure.query_id, k=5, other_runs=[dense])
    ranking = bm25_run.ranking(failure.query_id)
    expected_above = 5 if failure.positive_rank is None else min(5, failure.positive_rank - 1)
    assert [d.document.id for d in explanation.outranking] == list(ranking.doc_ids[:expected_above])
    query_terms = set(code_tokens(csn_mini.query(failure.query_id).text))
    for doc in explanation.outranking:
        assert set(doc.shared_terms) == query_terms & set(code_tokens(doc.document.full_text))
        assert len(set(doc.shared_terms)) == len(doc.shared_terms)
    dense_rank = dense.ranking(failure.query_id).rank_of(failure.positive_ids[0])
    assert explanation.other_ranks[0].rank == dense_rank


def test_a_dense_failure_gets_a_semantic_reading_whose_cosines_the_encoder_reproduces(csn_engine):
    import numpy as np

    from core.evaluation.failures import dense_model_of, semantic_reading

    dataset = csn_engine.dataset
    run = csn_engine.run("dense-minilm")
    failures = find_failures(dataset, run, 1)
    assert failures, "dense-minilm misses rank 1 somewhere on csn-mini"
    explanation = explain_failure(dataset, run, failures[0].query_id, 1)
    assert dense_model_of(csn_engine.profile("dense-minilm"), csn_engine.profiles) == ("minilm", "torch")
    assert dense_model_of(csn_engine.profile("hybrid-rrf"), csn_engine.profiles) == ("minilm", "torch")
    assert dense_model_of(csn_engine.profile("bm25-code"), csn_engine.profiles) is None
    reading = semantic_reading(csn_engine, explanation, "minilm")

    # an independent computation: encode the three texts afresh and take dot products of the normalised vectors
    encoder = csn_engine.encoder("minilm")
    query, positive, distractor = encoder.encode([explanation.query.text, dataset.document(reading.positive_id).full_text,
                                                  dataset.document(reading.distractor_id).full_text])
    assert reading.positive_cosine == pytest.approx(float(np.dot(query, positive)), abs=1e-4)
    assert reading.distractor_cosine == pytest.approx(float(np.dot(query, distractor)), abs=1e-4)
    assert reading.distractor_positive_cosine == pytest.approx(float(np.dot(positive, distractor)), abs=1e-4)
    # the positive failed at k=1, so the rank-1 document is above it and the model scored it higher
    assert reading.distractor_rank == 1 and reading.margin > 0
    assert reading.hints and "margin" in reading.hints[0].detail and reading.distractor_id in reading.hints[0].detail
