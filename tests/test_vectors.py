"""LanceDB corpus and query embeddings."""
import lancedb
import numpy as np

from core.encoders import load_encoder
from core.vectors import benchmark_query_vectors, corpus_table_name, open_vector_index, top_k


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
