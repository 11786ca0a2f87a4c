"""Batch BM25 over the term matrix: the same rankings as Tantivy, Tantivy's length norms, exact lengths as bm25s."""
from collections import Counter

import numpy as np
import pytest

from core.index.analyzers import get_analyzer
from core.index.bm25_batch import (MATRIX_ARRAYS, MATRIX_FILES, NORM_TABLE, TERMS_FILE, TermMatrix, TermMatrixBuilder,
                                   TermMatrixWriter, bm25_top_k, quantized_lengths)
from core.data.catalog import open_dataset
from core.data.datasets import Dataset, Document, Qrels, Query
from core.errors import ProfileError
from core.index.lexical import open_lexical_index
from core.retrieval.profiles import Bm25Profile, profile_from_dict
from core.retrieval.engine import Engine
from core.workspace import Workspace
from tests.conftest import require_shared


def test_length_norms_are_tantivys_one_byte_table():
    assert list(NORM_TABLE[:41]) == list(range(41))  # exact up to 40 tokens
    assert list(NORM_TABLE[40:51]) == [40, 42, 44, 46, 48, 50, 52, 54, 56, 60, 64]
    assert NORM_TABLE[255] == 2013265944 and np.all(np.diff(NORM_TABLE) > 0)
    assert list(quantized_lengths(np.array([0, 7, 40, 41, 43, 59, 61, 100]))) == [0, 7, 40, 40, 42, 56, 60, 96]


def assert_same_ranking(ours_rows, ours_scores, tantivy_rows, tantivy_scores):
    """Same documents with the same scores (float32 rounding apart); order may differ only among equal scores."""
    assert len(ours_rows) == len(tantivy_rows)
    if not len(ours_rows):
        return
    np.testing.assert_allclose(ours_scores, tantivy_scores, rtol=2e-6, atol=2e-6)
    cut = min(ours_scores[-1], tantivy_scores[-1]) + 1e-4  # documents tied at the cut may be either
    assert {int(r) for r, s in zip(ours_rows, ours_scores) if s > cut} == {int(r) for r, s in zip(tantivy_rows, tantivy_scores) if s > cut}
    gaps = np.diff(np.asarray(ours_scores, dtype=np.float64))
    assert np.all(gaps <= 1e-6)


@pytest.mark.parametrize("name", ["cosqa", "csn-python-code2doc"])
@pytest.mark.parametrize("analyzer", ["code", "plain"])
def test_batch_rankings_equal_tantivys_on_the_bundled_sets(tmp_path, name, analyzer):
    shared = require_shared()
    workspace = Workspace.open(tmp_path / "workspace", shared)
    dataset = open_dataset(workspace, name)
    index, _ = open_lexical_index(workspace, dataset, analyzer)
    texts = [q.text for q in dataset.judged_queries]
    batch = index.search_many(texts, 100)
    for text, ours in zip(texts, batch):
        tantivy = index.search(text, 100)
        assert_same_ranking(ours.rows, ours.scores, tantivy.rows, tantivy.scores)


def test_tantivy_and_the_batch_scorer_rank_alike_in_trec_order(workspace, csn_mini):
    index, _ = open_lexical_index(workspace, csn_mini, "code")
    texts = [q.text for q in csn_mini.queries]
    tiebreak = np.arange(index.num_docs)[::-1].copy()
    batch = index.search_many(texts, 50, tiebreak=tiebreak, scorer="batch")
    per_query = index.search_many(texts, 50, tiebreak=tiebreak, scorer="tantivy")
    for ours, tantivy in zip(batch, per_query):
        assert_same_ranking(ours.rows, ours.scores, tantivy.rows, tantivy.scores)
        assert np.all(np.diff(tantivy.scores) <= 0)
        tied = np.diff(tantivy.scores) == 0  # equal scores come in tiebreak order, as the engine's trec order needs
        assert np.all(np.diff(tiebreak[tantivy.rows])[tied] > 0)
    with pytest.raises(ValueError, match="Tantivy scores only"):  # Tantivy knows its own k1/b only
        index.search_many(texts[:3], 10, k1=0.9, scorer="tantivy")


def test_exact_lengths_give_bm25s_lucene_scores(csn_mini):
    import bm25s

    analyzer = get_analyzer("code")
    builder = TermMatrixBuilder()
    tokens = [analyzer.tokenize(d.full_text) for d in csn_mini.documents]
    for document_tokens in tokens:
        builder.add(document_tokens)
    matrix = builder.build()
    reference = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    reference.index(tokens, show_progress=False)
    queries = [analyzer.tokenize(q.text) for q in csn_mini.queries]
    found = bm25_top_k(matrix, [Counter(q) for q in queries], 10, length_norm="exact")
    for i, query in enumerate(queries):
        rows, scores = found.query(i)
        theirs = 2.2 * reference.get_scores(query)  # Lucene (and bm25s) dropped Tantivy's constant (k1 + 1) factor
        np.testing.assert_allclose(scores, theirs[rows], rtol=1e-4)
        assert scores[0] == pytest.approx(theirs.max(), rel=1e-4)
    tantivy_norms = bm25_top_k(matrix, [Counter(q) for q in queries], 10)
    assert not np.allclose(tantivy_norms.scores, found.scores)  # csn code docs exceed 40 tokens: the norms matter


def test_ties_follow_the_tiebreak_and_absent_terms_match_nothing():
    builder = TermMatrixBuilder()
    for tokens in (["read", "file"], ["write", "file"], ["read", "file"], ["other"]):
        builder.add(tokens)
    matrix = builder.build()
    queries = [Counter(["read"]), Counter(["missing"]), Counter()]
    found = bm25_top_k(matrix, queries, 10)
    assert list(found.query(0)[0]) == [0, 2] and found.scores[0, 0] == found.scores[0, 1]
    assert list(bm25_top_k(matrix, queries, 10, tiebreak=np.array([3, 2, 1, 0])).query(0)[0]) == [2, 0]
    assert list(found.counts[1:]) == [0, 0]
    assert found.rows.shape == (3, 4)  # k is capped at the corpus size
    assert bm25_top_k(matrix, queries, 0).rows.shape == (3, 0)
    with pytest.raises(ValueError, match="length_norm"):
        bm25_top_k(matrix, queries, 10, length_norm="lucene")
    for k1, b in ((-2.0, 0.75), (1.2, 1.5), (float("nan"), 0.5)):
        with pytest.raises(ValueError, match="k1 must be"):
            bm25_top_k(matrix, queries, 10, k1=k1, b=b)


def test_a_repeated_query_term_counts_once_per_occurrence():
    builder = TermMatrixBuilder()
    for tokens in (["parse", "url"], ["parse", "json", "json"], ["url"]):
        builder.add(tokens)
    matrix = builder.build()
    found = bm25_top_k(matrix, [Counter(["json", "url"]), Counter(["json", "url", "url"])], 3)
    once, twice = ({int(r): float(s) for r, s in zip(*found.query(i))} for i in (0, 1))
    assert twice[2] == pytest.approx(2 * once[2])  # document 2 holds only "url"
    assert twice[1] == pytest.approx(once[1])  # document 1 holds only "json"


def test_term_matrix_round_trips_through_disk_memory_mapped(tmp_path):
    builder = TermMatrixBuilder()
    for tokens in (["ünïcode", "名前", "x"], [], ["x", "x"]):
        builder.add(tokens)
    matrix = builder.build()
    matrix.save(tmp_path)
    loaded = TermMatrix.load(tmp_path)
    assert loaded.vocabulary == matrix.vocabulary and list(loaded.lengths) == [3, 0, 2]
    for name in MATRIX_ARRAYS:
        assert np.array_equal(getattr(loaded, name), getattr(matrix, name))
        assert isinstance(getattr(loaded, name), np.memmap)  # mapped, not read: a 1M-document matrix opens at once
    # arrays that would send the (unchecked) scorer outside memory are refused on load
    rows_file = tmp_path / MATRIX_FILES["rows"]
    np.save(rows_file, np.load(rows_file) + 5)
    with pytest.raises(ValueError, match="inconsistent"):
        TermMatrix.load(tmp_path)
    np.save(rows_file, np.load(rows_file).astype(np.int64) - 5)  # right values, another type than the scorer was built for
    with pytest.raises(ValueError, match="inconsistent"):
        TermMatrix.load(tmp_path)
    np.save(rows_file, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # never unpickled
    with pytest.raises(ValueError, match="Python objects|pickle"):
        TermMatrix.load(tmp_path)


def test_the_matrix_written_in_chunks_equals_the_one_built_in_memory(tmp_path, csn_mini):
    analyzer = get_analyzer("code")
    in_memory, on_disk = TermMatrixBuilder(), TermMatrixWriter(tmp_path, spill_pairs=97, place_pairs=131)  # many chunks and blocks
    for document in csn_mini.documents:
        tokens = analyzer.tokenize(document.full_text)
        in_memory.add(tokens)
        on_disk.add(tokens)
    expected, written = in_memory.build(), on_disk.build()
    assert written.vocabulary == expected.vocabulary and len(expected.vocabulary) > 1000
    for name in MATRIX_ARRAYS:
        assert getattr(written, name).dtype == getattr(expected, name).dtype
        assert np.array_equal(getattr(written, name), getattr(expected, name)), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*MATRIX_FILES.values(), TERMS_FILE])  # scratch files gone
    loaded = TermMatrix.load(tmp_path)
    queries = [analyzer.term_counts(q.text) for q in csn_mini.queries]
    ours, theirs = bm25_top_k(loaded, queries, 20, 0.9, 0.4), bm25_top_k(expected, queries, 20, 0.9, 0.4)
    assert np.array_equal(ours.rows, theirs.rows) and np.array_equal(ours.scores, theirs.scores)


def test_an_empty_corpus_writes_an_empty_matrix(tmp_path):
    matrix = TermMatrixWriter(tmp_path).build()
    assert matrix.num_docs == 0 and len(matrix.rows) == 0 and list(matrix.indptr) == [0]
    assert bm25_top_k(TermMatrix.load(tmp_path), [Counter(["x"])], 10).rows.shape == (1, 0)


def test_a_query_scores_the_same_alone_as_in_a_run_on_any_number_of_threads(csn_mini):
    import numba

    analyzer = get_analyzer("code")
    builder = TermMatrixBuilder()
    for document in csn_mini.documents:
        builder.add(analyzer.tokenize(document.full_text))
    matrix = builder.build()
    queries = [analyzer.term_counts(q.text) for q in csn_mini.queries] + [Counter(["return"]), Counter()]
    run = bm25_top_k(matrix, queries, 50)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one_thread = bm25_top_k(matrix, queries, 50)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(run.rows, one_thread.rows) and np.array_equal(run.scores, one_thread.scores)
    for i, query in enumerate(queries):
        alone = bm25_top_k(matrix, [query], 50)
        assert np.array_equal(alone.rows[0], run.rows[i]) and np.array_equal(alone.scores[0], run.scores[i])


def test_engine_run_and_pasted_queries_rank_alike(csn_engine):
    """A query opened in the explorer shows exactly the ranking the evaluation scored, ties and all."""
    queries = [*csn_engine.dataset.judged_queries[:15], Query("tie-1", "return"), Query("tie-2", "dict"), Query("tie-3", "self")]
    run = csn_engine.run("bm25-code", queries=queries)
    ties = 0
    for query in queries:
        pasted = csn_engine.search("bm25-code", query.text).ranking
        assert pasted == run.rankings[query.id]  # every document id and every score, to the bit, at depth 100
        ties += len(pasted.scores) - len(set(pasted.scores))
    assert ties > 50  # one-word queries give large groups of tied scores: the case a cut can split


def test_profiles_take_a_length_norm(tmp_path, csn_mini):
    exact = profile_from_dict({"kind": "bm25", "length_norm": "exact"}, "bm25-exact")
    assert exact == Bm25Profile("bm25-exact", length_norm="exact")
    with pytest.raises(ProfileError, match="length_norm"):
        profile_from_dict({"kind": "bm25", "length_norm": "lucene"}, "bad")
    workspace = Workspace.open(tmp_path / "workspace")
    engine = Engine(workspace, csn_mini, {"exact": exact, "tantivy": Bm25Profile("tantivy")})
    query = csn_mini.queries[0]
    pasted, scored = engine.search("exact", query.text).ranking, engine.run("exact").rankings[query.id]
    assert pasted == scored
    assert engine.run("exact").rankings != engine.run("tantivy").rankings


def test_a_tiny_corpus_with_one_document():
    dataset = Dataset("one", (Document("d0", "read the config file"),), (Query("q0", "config"),), Qrels({"q0": {"d0": 1}}))
    builder = TermMatrixBuilder()
    builder.add(get_analyzer("code").tokenize(dataset.documents[0].full_text))
    found = bm25_top_k(builder.build(), [Counter(["config"])], 100)
    assert list(found.query(0)[0]) == [0] and found.scores[0, 0] > 0
