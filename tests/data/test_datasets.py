"""Loading, validating and writing BEIR folders."""
import json

import pytest

from core.data.datasets import Dataset, Qrels, discover_datasets, load_dataset, validate_name, write_dataset
from core.errors import DatasetError
from tests.conftest import require_shared


def write_beir(folder, corpus_lines, query_lines, qrels_lines, split="test"):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_bytes(b"\n".join(corpus_lines) + b"\n")
    (folder / "queries.jsonl").write_bytes(b"\n".join(query_lines) + b"\n")
    (folder / "qrels" / f"{split}.tsv").write_bytes(b"\n".join(qrels_lines) + b"\n")
    return folder


def good_rows():
    corpus = [json.dumps({"_id": f"d{i}", "title": "", "text": f"doc number {i}", "language": "python"}).encode() for i in range(5)]
    queries = [json.dumps({"_id": f"q{i}", "text": f"def f{i}(): pass"}).encode() for i in range(3)]
    qrels = [b"query-id\tcorpus-id\tscore"] + [f"q{i}\td{i}\t1".encode() for i in range(3)]
    return corpus, queries, qrels


def test_bundled_cosqa_loads_with_counts_from_its_meta():
    shared = require_shared()
    dataset = load_dataset(shared / "cosqa")
    meta = json.loads((shared / "cosqa" / "meta.json").read_text())
    assert (len(dataset.documents), len(dataset.queries)) == (meta["documents"], meta["queries"])
    assert dataset.problems == ()
    assert len(dataset.judged_queries) == meta["queries"]


def test_every_defect_is_reported_with_file_and_line(tmp_path):
    corpus, queries, qrels = good_rows()
    corpus += [b'{"_id": "d9", "text": "cut', b'{"_id": "d0", "text": "duplicate"}', b'{"_id": 7, "text": 5}',
               b'{"_id": "d8", "text": "   "}', b'{"_id": "bad", "text": "caf\xe9"}']
    qrels += [b"q0\tnope\t1", b"qX\td1\t1", b"q1\td1\tmaybe"]
    dataset = load_dataset(write_beir(tmp_path / "ds", corpus, queries, qrels))
    found = {(p.file, p.line): p.message for p in dataset.problems}
    assert "bad JSON" in found[("corpus.jsonl", 6)]
    assert "duplicate _id 'd0'" in found[("corpus.jsonl", 7)]
    assert "must be a string" in found[("corpus.jsonl", 8)]
    assert "empty text" in found[("corpus.jsonl", 9)]
    assert "UTF-8" in found[("corpus.jsonl", 10)]
    assert "unknown corpus id 'nope'" in found[("qrels/test.tsv", 5)]
    assert "unknown query id 'qX'" in found[("qrels/test.tsv", 6)]
    assert "not a number" in found[("qrels/test.tsv", 7)]
    assert [d.id for d in dataset.documents] == [f"d{i}" for i in range(5)]  # good rows all kept


def test_strict_loading_refuses_the_whole_dataset(tmp_path):
    corpus, queries, qrels = good_rows()
    folder = write_beir(tmp_path / "ds", corpus + [b"{not json"], queries, qrels)
    with pytest.raises(DatasetError) as caught:
        load_dataset(folder, on_problem="raise")
    assert "corpus.jsonl:6" in str(caught.value)


def test_missing_files_are_named(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "corpus.jsonl").write_text("")
    with pytest.raises(DatasetError, match="missing queries.jsonl, qrels/<split>.tsv"):
        load_dataset(tmp_path / "ds")


def test_dataset_without_relevant_judgments_is_refused(tmp_path):
    corpus, queries, _ = good_rows()
    folder = write_beir(tmp_path / "ds", corpus, queries, [b"q0\td0\t0"])
    with pytest.raises(DatasetError, match="no query has a relevant document"):
        load_dataset(folder)


def test_write_then_load_round_trips_and_keeps_the_hash(tmp_path):
    dataset = Dataset("tiny", tuple(), tuple(), Qrels({}))
    corpus, queries, qrels = good_rows()
    original = load_dataset(write_beir(tmp_path / "src", corpus, queries, qrels))
    written = write_dataset(original, tmp_path / "copy")
    again = load_dataset(written)
    assert again.corpus_hash == original.corpus_hash and again.queries_hash == original.queries_hash
    assert again.qrels.judgments == original.qrels.judgments
    assert dataset.name == "tiny"


def test_graded_qrels_keep_their_grades_and_order_positives(tmp_path):
    corpus, queries, _ = good_rows()
    folder = write_beir(tmp_path / "ds", corpus, queries, [b"q0\td0\t1", b"q0\td1\t3", b"q0\td2\t0"])
    dataset = load_dataset(folder)
    assert dataset.qrels.is_graded()
    assert dataset.qrels.positives("q0") == ["d1", "d0"]


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 101])
def test_unsafe_dataset_names_are_refused(name):
    with pytest.raises(DatasetError):
        validate_name(name)


def test_discovery_finds_beir_folders_only(tmp_path):
    corpus, queries, qrels = good_rows()
    write_beir(tmp_path / "one", corpus, queries, qrels)
    (tmp_path / "not-a-dataset").mkdir()
    assert [info.name for info in discover_datasets((tmp_path, "data-dir"))] == ["one"]
