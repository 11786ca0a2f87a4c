"""The Tantivy BM25 index: build, reuse, query safety, other k1/b values."""
import numpy as np
import pytest

from core.data.datasets import Dataset, Document, Qrels, Query
from core.index.lexical import index_path, open_lexical_index
from tests.index.test_bm25_batch import assert_same_ranking


def tiny_dataset(texts):
    documents = tuple(Document(f"d{i}", text) for i, text in enumerate(texts))
    return Dataset("tiny", documents, (Query("q0", "x"),), Qrels({"q0": {"d0": 1}}))


def test_index_is_built_once_then_reused(workspace, csn_mini):
    _, first = open_lexical_index(workspace, csn_mini, "code")
    _, second = open_lexical_index(workspace, csn_mini, "code")
    assert (first.reused, second.reused) == (False, True)
    assert "reused" in str(second)


def test_a_changed_corpus_gets_a_new_index(workspace, csn_mini):
    open_lexical_index(workspace, csn_mini, "code")
    changed = Dataset(csn_mini.name, csn_mini.documents[:-1], csn_mini.queries, csn_mini.qrels)
    _, report = open_lexical_index(workspace, changed, "code")
    assert not report.reused
    assert index_path(workspace, changed, "code") != index_path(workspace, csn_mini, "code")


def test_code_query_with_quotes_and_operators_is_searched_not_parsed(workspace):
    dataset = tiny_dataset(['config: "key" AND value', "parse the url", "nothing here"])
    index, _ = open_lexical_index(workspace, dataset, "code")
    hits = index.search('config:"key" AND (value*', 3)
    assert hits.rows[0] == 0
    assert len(index.search(')))((( ::: *** ^^^', 3).rows) == 0


def test_camel_case_query_finds_snake_case_document(workspace):
    dataset = tiny_dataset(["def read_config_file(path): ...", "def write_log(msg): ..."])
    code_index, _ = open_lexical_index(workspace, dataset, "code")
    plain_index, _ = open_lexical_index(workspace, dataset, "plain")
    assert code_index.search("readConfigFile", 2).rows[0] == 0
    assert len(plain_index.search("readConfigFile", 2).rows) == 0


def test_default_k1_b_is_tantivy_and_other_values_score_every_document(workspace, csn_mini):
    index, _ = open_lexical_index(workspace, csn_mini, "code")
    texts = [d.full_text for d in csn_mini.documents]
    query = csn_mini.queries[0].text
    default = index.search_bm25(query, 10, 1.2, 0.75)  # the batch scorer: this corpus is small
    tantivy = index.search(query, 10)
    assert_same_ranking(default.rows, default.scores, tantivy.rows, tantivy.scores)
    no_length_norm = index.search_bm25(query, 10, 1.2, 0.0)
    # with b=0 the score of a document no longer depends on its length: recompute one by hand
    from collections import Counter
    import math
    terms = index.query_terms(query)
    row = int(no_length_norm.rows[0])
    counts = Counter(index.analyzer.tokenize(texts[row]))
    n = index.num_docs
    expected = sum(q * math.log(1 + (n - df + 0.5) / (df + 0.5)) * counts[t] * 2.2 / (counts[t] + 1.2)
                   for t, q in terms.items() if counts[t] and (df := index.searcher.doc_freq("body", t)))
    assert no_length_norm.scores[0] == pytest.approx(expected, rel=1e-5)
    # and the best document at b=0 is the best of all of them, not of a candidate pool
    every = [sum(q * math.log(1 + (n - df + 0.5) / (df + 0.5)) * c[t] * 2.2 / (c[t] + 1.2)
                 for t, q in terms.items() if c[t] and (df := index.searcher.doc_freq("body", t)))
             for c in (Counter(index.analyzer.tokenize(text)) for text in texts)]
    assert no_length_norm.scores[0] == pytest.approx(max(every), rel=1e-5)


def test_huge_query_is_capped_and_still_answers(workspace, csn_mini):
    index, _ = open_lexical_index(workspace, csn_mini, "code")
    huge = " ".join(f"identifier{i}" for i in range(20000)) + " " + csn_mini.queries[0].text
    assert len(index.query_terms(huge)) <= 1024
    assert len(index.search(huge, 10).rows) > 0


def test_streamed_build_from_the_corpus_store_equals_the_in_memory_build(tmp_path, mini_data_dir):
    from core.data.catalog import open_dataset
    from core.data.corpus_store import open_corpus_store
    from core.workspace import Workspace

    memory_ws, store_ws = (Workspace.open(tmp_path / name, mini_data_dir) for name in ("memory", "store"))
    dataset = open_dataset(memory_ws, "cosqa-mini")  # a real slice of cosqa
    store, _ = open_corpus_store(store_ws, "cosqa-mini", mini_data_dir / "cosqa-mini")
    in_memory, _ = open_lexical_index(memory_ws, dataset, "code")
    streamed, report = open_lexical_index(store_ws, store, "code")
    assert not report.reused and streamed.num_docs == in_memory.num_docs == len(dataset.documents)
    assert index_path(store_ws, store, "code").name == index_path(memory_ws, dataset, "code").name  # same corpus hash
    texts = [q.text for q in dataset.queries]
    for a, b in zip(in_memory.search_many(texts, 100), streamed.search_many(texts, 100)):  # the batch scorer's matrix
        assert a.rows.tolist() == b.rows.tolist() and a.scores.tolist() == b.scores.tolist()
    for text in texts:  # Tantivy's own index
        a, b = in_memory.search(text, 100), streamed.search(text, 100)
        assert a.rows.tolist() == b.rows.tolist() and a.scores.tolist() == b.scores.tolist()
