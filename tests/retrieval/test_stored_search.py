"""BM25 over a stored corpus: what opening it built or reused, its size on disk, and hits read by row."""
import os

from core.data.catalog import open_dataset
from core.retrieval.stored_search import open_stored_corpus, search_stored, stored_facts


def test_facts_count_rows_and_bytes_and_say_whether_the_second_opening_reused_both(workspace, mini_data_dir):
    first = open_stored_corpus(workspace, "csn-mini", mini_data_dir / "csn-mini")
    built = stored_facts(first)
    assert built.documents == 400 and built.skipped == 0 and not built.reused
    on_disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(first.store.folder) for f in files)
    assert built.store_bytes == on_disk and built.index_bytes > 0
    again = stored_facts(open_stored_corpus(workspace, "csn-mini", mini_data_dir / "csn-mini"))
    assert again.reused and (again.documents, again.store_bytes, again.index_bytes) == (400, built.store_bytes, built.index_bytes)


def test_hits_are_the_documents_of_the_loaded_dataset(workspace, mini_data_dir):
    corpus = open_stored_corpus(workspace, "csn-mini", mini_data_dir / "csn-mini")
    dataset = open_dataset(workspace, "csn-mini")
    result = search_stored(corpus, dataset.queries[0].text, k=5)
    assert len(result.hits) == 5 and [hit.rank for hit in result.hits] == [1, 2, 3, 4, 5]
    assert all(hit.document == dataset.document(hit.document.id) for hit in result.hits)
