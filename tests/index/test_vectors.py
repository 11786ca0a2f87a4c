"""LanceDB corpus and query embeddings, and the embedding cache under them."""
from dataclasses import replace

import lancedb
import numpy as np
import pytest

from core.data.datasets import Dataset, Query
from core.index.encoders import load_encoder
from core.index.vectors import (EmbeddingCache, benchmark_query_vectors, corpus_table_name, open_vector_index,
                                query_table_name, remember_vectors, table_names, text_key, top_k)
from tests.conftest import slice_dataset
from tests.test_hardening_stores import CountingEncoder


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


class StreamedCorpus:
    """A Corpus that only streams (as a CorpusStore does): no documents to index, and each stream counted."""

    def __init__(self, dataset: Dataset):
        self._dataset = dataset
        self.streams = 0

    name = property(lambda self: self._dataset.name)
    corpus_hash = property(lambda self: self._dataset.corpus_hash)
    num_docs = property(lambda self: len(self._dataset.documents))

    def iter_documents(self):
        self.streams += 1
        return iter(self._dataset.documents)


def test_a_streamed_corpus_builds_the_table_a_loaded_dataset_opens_encoding_only_what_the_cache_lacks(workspace, csn_mini):
    counting = CountingEncoder(load_encoder("minilm", workspace))
    half = Dataset("stream-half", csn_mini.documents[:150], (), csn_mini.qrels)
    open_vector_index(workspace, half, counting)  # the first 150 texts enter the embedding cache
    streamed = StreamedCorpus(replace(csn_mini, name="stream-all"))
    counting.encoded = 0
    built, report = open_vector_index(workspace, streamed, counting)
    assert not report.reused and report.cached == 150 and counting.encoded == len(csn_mini.documents) - 150
    assert streamed.streams == 2  # ids and text keys first, then the texts the cache lacks
    reference = load_encoder("minilm", workspace).encode([d.full_text for d in csn_mini.documents[150:]])
    assert np.allclose(built.vectors[150:], reference, atol=1e-5)
    opened, again = open_vector_index(workspace, replace(csn_mini, name="stream-all"), counting)  # the loaded dataset
    assert again.reused and np.array_equal(opened.vectors, built.vectors) and opened.checksum == built.checksum


def test_a_corpus_store_is_embedded_into_the_table_its_dataset_opens(workspace, csn_mini, session_workspace):
    from core.data.corpus_store import open_corpus_store

    store, _ = open_corpus_store(workspace, "csn-mini", session_workspace.data_dir / "csn-mini")
    encoder = load_encoder("minilm", workspace)
    from_store, report = open_vector_index(workspace, store, encoder)
    assert not report.reused
    from_dataset, reopened = open_vector_index(workspace, csn_mini, encoder)
    assert reopened.reused and np.array_equal(from_dataset.vectors, from_store.vectors)
    session, _ = open_vector_index(session_workspace, csn_mini, encoder)
    assert np.array_equal(from_store.vectors, session.vectors)


# ---- the embedding cache: any text a model embedded is never encoded again ------------------------

def renamed(dataset: Dataset, name: str, documents=None, queries=None) -> Dataset:
    return Dataset(name, tuple(documents if documents is not None else dataset.documents),
                   tuple(queries if queries is not None else dataset.queries), dataset.qrels, dataset.split)


@pytest.fixture(scope="module")
def tiny(csn_mini: Dataset) -> Dataset:
    return slice_dataset(csn_mini, 4, 24, name="cache-tiny")


def test_a_dataset_sharing_a_corpus_is_assembled_from_the_cache_without_encoding(workspace, tiny, csn_mini):
    counting = CountingEncoder(load_encoder("minilm", workspace))
    first, report = open_vector_index(workspace, tiny, counting)
    assert counting.encoded == len(tiny.documents) and report.cached == 0

    # an import of the same corpus under another name (as cosqa re-imported, or -nodoc beside code2doc): nothing encoded
    twin = renamed(tiny, "cache-tiny-import")
    counting.encoded = 0
    twin_index, twin_report = open_vector_index(workspace, twin, counting)
    assert counting.encoded == 0
    assert not twin_report.reused and twin_report.cached == len(tiny.documents)
    assert "24 of 24 vectors from the embedding cache" in str(twin_report)
    assert np.array_equal(twin_index.vectors, first.vectors)

    # a grown, reordered corpus: only the new texts are encoded, each vector lands on its own row
    extra = [d for d in csn_mini.documents if d.id not in tiny.doc_index][:5]
    grown = renamed(tiny, "cache-tiny-grown", documents=list(reversed(tiny.documents)) + extra)
    counting.encoded = 0
    grown_index, grown_report = open_vector_index(workspace, grown, counting)
    assert counting.encoded == 5 and grown_report.cached == len(tiny.documents)
    assert np.array_equal(grown_index.vectors[:len(tiny.documents)], first.vectors[::-1])
    fresh = load_encoder("minilm", workspace).encode([d.full_text for d in extra])
    assert np.allclose(grown_index.vectors[len(tiny.documents):], fresh, atol=1e-5)

    # query texts share the cache too: queries that are corpus texts cost nothing
    as_queries = renamed(tiny, "cache-tiny-q", queries=[Query(f"q{i}", d.full_text) for i, d in enumerate(tiny.documents[:6])])
    counting.encoded = 0
    _, query_vectors, _ = benchmark_query_vectors(workspace, as_queries, counting)
    assert counting.encoded == 0 and np.array_equal(query_vectors, first.vectors[:6])


def test_repeated_texts_are_encoded_once(workspace, tiny):
    doubled = renamed(tiny, "cache-doubled", documents=list(tiny.documents) + [replace(d, id=d.id + "-again") for d in tiny.documents])
    counting = CountingEncoder(load_encoder("minilm", workspace))
    index, _ = open_vector_index(workspace, doubled, counting)
    assert counting.encoded == len(tiny.documents)
    assert np.array_equal(index.vectors[:len(tiny.documents)], index.vectors[len(tiny.documents):])


def test_rebuild_encodes_again_even_when_cached(workspace, tiny):
    counting = CountingEncoder(load_encoder("minilm", workspace))
    open_vector_index(workspace, tiny, counting)
    counting.encoded = 0
    _, report = open_vector_index(workspace, tiny, counting, rebuild=True)
    assert counting.encoded == len(tiny.documents) and report.cached == 0


# ---- issue 15.3: similar dataset names never delete each other's tables -----------------------------

def test_similar_dataset_names_keep_their_own_tables(workspace, csn_mini):
    encoder = load_encoder("minilm", workspace)
    documents = list(csn_mini.documents)
    # tiny and tiny- share a slug; tiny__minilm used to extend tiny's table-name prefix; TINY differs in case only
    names = ["tiny", "tiny-", "tiny__minilm", "tiny_minilm", "TINY"]
    datasets = [Dataset(name, tuple(documents[8 * i: 8 * i + 8]), tuple(csn_mini.queries[:2]), csn_mini.qrels)
                for i, name in enumerate(names)]
    tables = []
    for dataset in datasets:
        open_vector_index(workspace, dataset, encoder)
        benchmark_query_vectors(workspace, dataset, encoder)
        tables += [corpus_table_name(dataset, encoder), query_table_name(dataset, encoder)]
    assert len(set(tables)) == len(tables)
    assert sorted(table_names(lancedb.connect(str(workspace.vectors_dir)))) == sorted(tables)
    for dataset in datasets:
        assert open_vector_index(workspace, dataset, encoder)[1].reused, dataset.name
        assert benchmark_query_vectors(workspace, dataset, encoder)[2].reused, dataset.name


def test_a_changed_corpus_replaces_only_its_own_older_table(workspace, csn_mini):
    encoder = load_encoder("minilm", workspace)
    documents = list(csn_mini.documents)
    before = Dataset("tiny", tuple(documents[:8]), (), csn_mini.qrels)
    neighbour = Dataset("tiny-", tuple(documents[8:16]), (), csn_mini.qrels)
    after = Dataset("tiny", tuple(documents[:9]), (), csn_mini.qrels)
    for dataset in (before, neighbour, after):
        open_vector_index(workspace, dataset, encoder)
    assert sorted(table_names(lancedb.connect(str(workspace.vectors_dir)))) == sorted(
        [corpus_table_name(neighbour, encoder), corpus_table_name(after, encoder)])


def test_a_querys_dense_scores_do_not_depend_on_the_other_queries_in_its_batch():
    """One query alone, in a run, or in a Ray task of a few queries gets bit-identical scores (BLAS blocks rows)."""
    from core.index.vectors import VectorIndex

    rng = np.random.default_rng(20261201)
    documents = rng.standard_normal((3000, 384)).astype(np.float32)
    queries = rng.standard_normal((40, 384)).astype(np.float32)
    index = VectorIndex(None, documents)
    whole = index.search(queries, k=100)
    for offset in (1, 7, 15, 39):
        part = index.search(queries[offset:offset + 15], k=100)
        np.testing.assert_array_equal(part.rows, whole.rows[offset:offset + 15])
        np.testing.assert_array_equal(part.scores, whole.scores[offset:offset + 15])
    alone = index.search(queries[3], k=100)
    np.testing.assert_array_equal(alone.scores[0], whole.scores[3])
    exact = (queries[3].astype(np.float64) @ documents.astype(np.float64).T).astype(np.float32)
    np.testing.assert_array_equal(alone.scores[0], np.sort(exact)[::-1][:100])


def test_vectors_computed_elsewhere_are_remembered_once_and_reused_without_encoding(workspace, tiny):
    counting = CountingEncoder(load_encoder("minilm", workspace))
    texts = [d.full_text for d in tiny.documents]
    elsewhere = load_encoder("minilm", workspace).encode(texts)  # as a Ray actor computes them
    cache = EmbeddingCache.for_encoder(workspace, counting)
    assert not cache.held([text_key(t) for t in texts]).any()
    assert remember_vectors(workspace, counting, texts + texts[:3], np.vstack([elsewhere, elsewhere[:3]])) == len(texts)
    shards = cache.shards()
    assert remember_vectors(workspace, counting, texts, elsewhere) == 0 and cache.shards() == shards  # nothing twice
    assert cache.held([text_key(texts[0]), text_key("a text nobody embedded")]).tolist() == [True, False]
    index, report = open_vector_index(workspace, tiny, counting)
    assert counting.encoded == 0 and report.cached == len(texts)
    assert np.array_equal(index.vectors, elsewhere)


def _near_tie_corpus(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents in clusters of near-duplicates whose scores differ by a few float32 ulps, plus exact duplicates."""
    rng = np.random.default_rng(seed)
    bases = rng.standard_normal((60, 384)).astype(np.float32)
    near = np.repeat(bases, 40, axis=0)
    near += (rng.standard_normal(near.shape) * 2e-7).astype(np.float32)
    documents = np.concatenate([rng.standard_normal((3000, 384)).astype(np.float32), near, near[:500]])
    queries = bases[:12] + (rng.standard_normal((12, 384)) * 0.01).astype(np.float32)
    return documents, queries


@pytest.mark.parametrize("k", [1, 10, 55, 100, 1000])
def test_exact_top_k_equals_the_float64_ranking_to_the_bit_where_float32_alone_misorders(k, monkeypatch):
    import core.index.vectors as vectors
    from core.index.vectors import dot_scores, exact_top_k

    documents, queries = _near_tie_corpus(20261202)
    reference = top_k(dot_scores(queries, documents), k)
    float32_alone = top_k(queries @ documents.T, k)
    if k >= 10:  # the data is hard enough: a float32 product alone ranks (or scores) differently
        assert not (np.array_equal(float32_alone.rows, reference.rows)
                    and np.array_equal(float32_alone.scores, reference.scores))
    for block_scores in (len(documents), 5 * len(documents), vectors.SCREEN_BLOCK_SCORES):
        monkeypatch.setattr(vectors, "SCREEN_BLOCK_SCORES", block_scores)
        found = exact_top_k(queries, documents, k)
        np.testing.assert_array_equal(found.rows, reference.rows)
        np.testing.assert_array_equal(found.scores, reference.scores)


def test_exact_top_k_handles_nan_vectors_small_corpora_and_empty_input_as_the_float64_ranking():
    from core.index.vectors import dot_scores, exact_top_k

    documents, queries = _near_tie_corpus(7)
    documents[17, 3] = np.nan
    for docs, k in ((documents, 50), (documents[:30], 10), (documents[:30], 0), (documents[:0], 10)):
        reference = top_k(dot_scores(queries, docs), k)
        found = exact_top_k(queries, docs, k)
        np.testing.assert_array_equal(found.rows, reference.rows)
        np.testing.assert_array_equal(found.scores, reference.scores)
    assert exact_top_k(queries[:0], documents, 10).rows.shape == (0, 10)


def test_top_k_keeps_the_lowest_rows_when_more_documents_tie_at_the_cut_than_fit():
    scores = np.zeros((3, 500), dtype=np.float32)
    scores[0, 400] = 1.0
    scores[1, ::7] = 0.5
    scores[2] = 0.25
    hits = top_k(scores, 3)
    assert hits.rows.tolist() == [[400, 0, 1], [0, 7, 14], [0, 1, 2]]
