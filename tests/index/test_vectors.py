"""LanceDB corpus and query embeddings."""
import lancedb
import numpy as np

from core.index.encoders import load_encoder
from core.index.vectors import benchmark_query_vectors, corpus_table_name, open_vector_index, top_k


def test_top_k_is_exact_and_breaks_ties_by_row():
    scores = np.array([[0.1, 0.9, 0.9, 0.5], [1.0, 0.0, 0.2, 0.3]], dtype=np.float32)
    hits = top_k(scores, 3)
    assert hits.rows.tolist() == [[1, 2, 3], [0, 3, 2]]
    assert top_k(scores, 10).rows.shape == (2, 4)


def test_embeddings_are_computed_once_then_reused(session_workspace, csn_mini):
    encoder = load_encoder("minilm", session_workspace)
    first, _ = open_vector_index(session_workspace, csn_mini, encoder)
    again, report = open_vector_index(session_workspace, csn_mini, encoder)
    assert report.reused
    assert np.array_equal(first.vectors, again.vectors)
    assert first.vectors.shape == (len(csn_mini.documents), 384)


def test_table_metadata_records_model_and_count(session_workspace, csn_mini):
    encoder = load_encoder("minilm", session_workspace)
    open_vector_index(session_workspace, csn_mini, encoder)
    table = lancedb.connect(str(session_workspace.vectors_dir)).open_table(corpus_table_name(csn_mini, encoder))
    meta = table.schema.metadata[b"codeir"].decode()
    assert encoder.fingerprint in meta and f'"count": {len(csn_mini.documents)}' in meta


def test_dense_search_equals_a_flat_inner_product(session_workspace, csn_mini):
    encoder = load_encoder("minilm", session_workspace)
    index, _ = open_vector_index(session_workspace, csn_mini, encoder)
    rows, queries, report = benchmark_query_vectors(session_workspace, csn_mini, encoder)
    hits = index.search(queries, 20)
    flat = queries @ index.vectors.T
    for i in range(len(queries)):
        assert set(hits.rows[i]) == set(np.argsort(-flat[i])[:20])
    assert rows[csn_mini.queries[0].id] == 0


def test_ann_search_re_scores_its_candidates_exactly(tmp_path):
    """The ANN path: a real lance index proposes candidates, exact cosines order them (as the flat search)."""
    from core.index.vectors import ANN_INDEX_TYPE, VectorIndex

    rng = np.random.default_rng(7)
    centres = rng.normal(size=(20, 32))
    vectors = centres[rng.integers(0, 20, 4000)] + 0.05 * rng.normal(size=(4000, 32))  # near neighbours, as in real corpora
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    table = lancedb.connect(str(tmp_path)).create_table("v", [{"row": i, "vector": v.tolist()} for i, v in enumerate(vectors)])
    table.create_index(metric="dot", vector_column_name="vector", index_type=ANN_INDEX_TYPE, num_partitions=4)
    index = VectorIndex(table, vectors)
    index.uses_ann = True  # the product switches at ANN_THRESHOLD documents; this corpus is small to keep the test fast
    queries = vectors[:25] + 0.01
    hits = index.search(queries, 10)
    exact = top_k(queries @ vectors.T, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hits.rows, exact.rows)])
    assert recall >= 0.95
    for rows, scores, query in zip(hits.rows, hits.scores, queries):
        assert np.allclose(scores, vectors[rows] @ query, atol=1e-5)  # exact cosines, not quantised distances
        assert np.all(np.diff(scores) <= 1e-7)  # best first
    assert index.search(queries[:0], 10).rows.shape[0] == 0
    whole = index.search(queries[:2], 10_000)  # more than the corpus: capped, every document ranked exactly
    assert whole.rows.shape == (2, 4000)
    assert all(sorted(row) == list(range(4000)) for row in whole.rows.tolist())
    assert np.allclose(whole.scores, np.take_along_axis(queries[:2] @ vectors.T, whole.rows, axis=1), atol=1e-5)
