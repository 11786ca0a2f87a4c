"""Embedding map: PCA equals scikit-learn's, maps are cached per (dataset, model), queries carry the run's ranks."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from core.errors import ProfileError
from core.evaluation.embedding_map import dense_model, embedding_map, first_line, has_vectors, map_path, map_points, pca_2d
from core.evaluation.metrics import evaluate
from core.retrieval.profiles import default_profiles


def test_pca_matches_scikit_learn_up_to_sign():
    vectors = np.random.default_rng(0).normal(size=(300, 24)) * np.linspace(3, 0.1, 24)
    ours, reference = pca_2d(vectors), PCA(n_components=2).fit_transform(vectors)
    for component in range(2):
        sign = np.sign(ours[:, component] @ reference[:, component])
        np.testing.assert_allclose(ours[:, component], sign * reference[:, component], atol=1e-5)


def test_profiles_without_vectors_are_refused_with_a_message():
    profiles = default_profiles()
    assert dense_model(profiles, "hybrid-rrf") == ("minilm", "torch")
    assert dense_model(profiles, "rerank-fusion") == ("minilm", "torch")
    assert not has_vectors(profiles, "bm25-code")
    with pytest.raises(ProfileError, match="has no vectors to map"):
        dense_model(profiles, "bm25-code")


def test_the_map_is_computed_once_cached_and_holds_every_document_and_query(csn_engine, csn_mini):
    path = map_path(csn_engine, "minilm", "torch", "pca")
    path.unlink(missing_ok=True)
    first = embedding_map(csn_engine, "minilm")
    assert path.is_file()
    assert first.doc_xy.shape == (len(csn_mini.documents), 2) and first.query_xy.shape == (len(csn_mini.judged_queries), 2)
    documents = csn_engine.vectors("minilm").vectors
    queries = csn_engine.query_vectors("minilm", "torch", csn_mini.judged_queries)
    np.testing.assert_allclose(np.vstack([first.doc_xy, first.query_xy]), pca_2d(np.vstack([documents, queries])), atol=1e-5)
    again = embedding_map(csn_engine, "minilm")
    np.testing.assert_array_equal(again.doc_xy, first.doc_xy)
    path.write_bytes(b"damaged")  # a damaged cache is recomputed, not shown
    np.testing.assert_allclose(embedding_map(csn_engine, "minilm").query_xy, first.query_xy, atol=1e-6)


def test_points_colour_queries_by_the_runs_positive_rank(csn_engine, csn_mini):
    projection = embedding_map(csn_engine, "minilm")
    evaluation = evaluate(csn_mini.qrels, csn_engine.run("bm25-code"), ["hit@10"])
    points = map_points(projection, csn_mini, evaluation, k=10)
    queries = points[points["kind"] == "query"].set_index("id")
    assert len(points) == len(csn_mini.documents) + len(csn_mini.judged_queries)
    ranks = evaluation.per_query["positive_rank"]
    np.testing.assert_array_equal(queries.loc[ranks.index, "positive_rank"].to_numpy(), ranks.to_numpy())
    np.testing.assert_array_equal(queries.loc[ranks.index, "hit"].to_numpy(), (evaluation.per_query["hit@10"] > 0).to_numpy())
    some = csn_mini.judged_queries[0]
    assert queries.at[some.id, "positive_id"] in csn_mini.qrels.positives(some.id)
    assert queries.at[some.id, "hover"] == first_line(some.text)


def test_umap_projects_a_small_map(csn_engine):
    pytest.importorskip("umap")
    projection = embedding_map(csn_engine, "minilm", method="umap")
    assert np.isfinite(projection.doc_xy).all() and projection.doc_xy.shape[1] == 2


def test_first_line_skips_blank_lines_and_cuts_long_ones():
    assert first_line("\n\n  def f(x):\n    return x") == "def f(x):"
    assert len(first_line("x" * 500)) == 100


def test_above_its_limit_the_map_draws_every_positive_and_an_even_sample_and_says_so(csn_engine, csn_mini):
    from core.evaluation.embedding_map import mapped_rows

    rows = mapped_rows(csn_mini, limit=100)
    positives = {csn_mini.doc_index[d] for q in csn_mini.judged_queries for d in csn_mini.qrels.positives(q.id)}
    assert len(rows) <= 100 and positives <= set(rows.tolist()) and list(rows) == sorted(set(rows.tolist()))
    sampled = embedding_map(csn_engine, "minilm", limit=100)
    assert sampled.sampled and sampled.corpus_documents == 400 and len(sampled.doc_ids) == len(rows)
    whole = embedding_map(csn_engine, "minilm")
    assert not whole.sampled and len(whole.doc_ids) == 400
    points = map_points(sampled, csn_mini)
    documents = points[points["kind"] == "document"]
    assert list(documents["id"]) == [csn_mini.doc_ids[row] for row in rows]
    assert list(documents["hover"]) == [first_line(csn_mini.document(d).full_text) for d in documents["id"]]
