"""The corpus store: a BEIR corpus written once as a Lance dataset, streamed in row order, read by row and id."""
import json
import os

import pytest

from core.data.corpus_store import STAMP_FILE, open_corpus_store, store_folder
from core.data.datasets import load_dataset
from core.errors import DatasetError


def test_store_rows_equal_the_loaded_datasets_documents_in_order(workspace, mini_data_dir):
    folder = mini_data_dir / "cosqa-mini"
    dataset = load_dataset(folder)
    store, report = open_corpus_store(workspace, "cosqa-mini", folder)
    assert not report.reused and store.num_docs == len(dataset.documents)
    batches = list(store.batches(batch_rows=64))
    assert len(batches) == -(-len(dataset.documents) // 64)  # several batches, streamed in order
    assert [doc for batch in batches for doc in batch] == list(dataset.documents)  # ids, text, title, language, order
    assert store.corpus_hash == dataset.corpus_hash
    assert any(doc.language for doc in dataset.documents)


def test_documents_are_read_by_row_and_by_id_in_the_order_asked(workspace, mini_data_dir):
    dataset = load_dataset(mini_data_dir / "cosqa-mini")
    store, _ = open_corpus_store(workspace, "cosqa-mini", mini_data_dir / "cosqa-mini")
    last = len(dataset.documents) - 1
    assert store.take([last, 0, 7]) == [dataset.documents[last], dataset.documents[0], dataset.documents[7]]
    wanted = [dataset.documents[9].id, "no-such-id", dataset.documents[2].id]
    assert store.lookup(wanted) == [dataset.documents[9], None, dataset.documents[2]]
    assert store.rows_of(wanted) == [9, None, 2]
    with pytest.raises(IndexError):
        store.take([last + 1])


def test_store_is_reused_until_its_corpus_file_changes(workspace, tmp_path, mini_data_dir):
    folder = tmp_path / "set"
    folder.mkdir()
    corpus = folder / "corpus.jsonl"
    corpus.write_bytes((mini_data_dir / "cosqa-mini" / "corpus.jsonl").read_bytes())
    _, first = open_corpus_store(workspace, "set", folder)
    os.utime(corpus, ns=(corpus.stat().st_atime_ns, corpus.stat().st_mtime_ns + 10**9))  # touched, same bytes
    store, touched = open_corpus_store(workspace, "set", folder)
    assert (first.reused, touched.reused) == (False, True)
    with corpus.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"_id": "new-doc", "text": "def added(): pass"}) + "\n")
    store, changed = open_corpus_store(workspace, "set", folder)
    assert not changed.reused and "stale" in changed.damage
    assert store.num_docs == load_dataset(mini_data_dir / "cosqa-mini").num_docs + 1
    assert store.take([store.num_docs - 1])[0].id == "new-doc"


def write_corpus(folder, lines):
    folder.mkdir(exist_ok=True)
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_malformed_lines_are_skipped_as_load_dataset_skips_them(workspace, tmp_path):
    folder = write_corpus(tmp_path / "bad", ['{"_id": "a", "text": "first"}', '{"_id": "b", "text": ', '[1, 2]',
                                             '{"_id": "a", "text": "again"}', '{"_id": "c", "title": "T", "text": "third"}'])
    store, report = open_corpus_store(workspace, "bad", folder)
    assert [(d.id, d.title, d.text) for d in store.iter_documents()] == [("a", "", "first"), ("c", "T", "third")]
    assert report.skipped == 3 and "corpus.jsonl:2: bad JSON" in store.problems[0]
    assert "3 corpus lines skipped" in str(report)


def test_strict_store_refuses_a_corpus_with_a_bad_line_in_one_line_and_keeps_nothing(workspace, tmp_path):
    folder = write_corpus(tmp_path / "bad", ['{"_id": "a", "text": "first"}', 'not json'])
    with pytest.raises(DatasetError) as refused:
        open_corpus_store(workspace, "bad", folder, on_problem="raise")
    assert "corpus.jsonl:2: bad JSON" in str(refused.value) and "\n" not in str(refused.value)
    assert not store_folder(workspace, "bad").exists()
    assert not list(store_folder(workspace, "bad").parent.glob(".bad.tmp-*"))


def test_missing_or_empty_corpus_is_refused_in_one_line(workspace, tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match="no corpus.jsonl"):
        open_corpus_store(workspace, "none", tmp_path / "none")
    folder = write_corpus(tmp_path / "empty", ['{"_id": "a"}', "{oops"])
    with pytest.raises(DatasetError, match="no usable documents") as refused:
        open_corpus_store(workspace, "empty", folder)
    assert "\n" not in str(refused.value)


def test_a_damaged_store_is_rebuilt_not_served(workspace, mini_data_dir):
    folder = mini_data_dir / "cosqa-mini"
    dataset = load_dataset(folder)
    open_corpus_store(workspace, "cosqa-mini", folder)
    data_file = next((store_folder(workspace, "cosqa-mini") / "corpus.lance" / "data").glob("*.lance"))
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one byte inside the text pages
    data_file.write_bytes(bytes(raw))
    store, report = open_corpus_store(workspace, "cosqa-mini", folder)
    assert not report.reused and "damaged" in report.damage
    assert list(store.iter_documents()) == list(dataset.documents)


def test_a_store_with_a_broken_stamp_is_rebuilt(workspace, mini_data_dir):
    folder = mini_data_dir / "cosqa-mini"
    open_corpus_store(workspace, "cosqa-mini", folder)
    (store_folder(workspace, "cosqa-mini") / STAMP_FILE).write_text("{half a stamp", encoding="utf-8")
    store, report = open_corpus_store(workspace, "cosqa-mini", folder)
    assert not report.reused and report.damage
    assert store.num_docs == load_dataset(folder).num_docs
