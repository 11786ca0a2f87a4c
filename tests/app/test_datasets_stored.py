"""The Datasets page's Large corpus tab: a corpus stored in Lance with its BM25 index, searched with hits read by row.

The dataset is never loaded there: a dataset whose queries and qrels cannot load is still stored and searched.
"""
import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.corpus_store import open_corpus_store, store_folder
from core.data.datasets import load_dataset
from core.errors import DatasetError
from core.retrieval.stored_search import open_stored_corpus, search_stored
from core.workspace import Workspace
from tests.app.test_datasets import APP


def open_stored_tab(dataset: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params["dataset"] = dataset
    at.run()
    at.switch_page("pages/datasets.py").run()
    at.session_state["datasets_tab"] = "Large corpus"
    at.run()
    assert not at.exception, at.exception
    return at


def store(at: AppTest) -> AppTest:
    at.button(key="datasets_stored_open").click().run()
    assert not at.exception, at.exception
    return at


def shown(elements) -> str:
    return "\n".join(e.value.replace("\\", "") for e in elements)  # the page escapes markdown


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def copy_dataset(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_storing_shows_rows_size_and_built_then_a_new_session_reuses_it(app_at, tmp_path, mini_data_dir):
    workspace = app_at(Workspace.open(tmp_path / "ws", mini_data_dir), mini_data_dir)
    at = open_stored_tab("csn-mini")
    assert not at.error and "Not opened in this session" in shown(at.info)
    store(at)
    assert not at.error
    assert "corpus store for csn-mini: written" in shown(at.success)
    assert "BM25 index (code) for csn-mini: built" in shown(at.success)
    facts = metrics(at)
    assert facts["Stored documents"] == "400" and facts["Opened"] == "built"
    assert facts["Store on disk"].endswith(" MiB") and facts["BM25 index on disk"].endswith(" MiB")
    assert (store_folder(workspace, "csn-mini") / "corpus.lance").is_dir()

    again = store(open_stored_tab("csn-mini"))
    assert not again.error and "corpus store for csn-mini: reused" in shown(again.success)
    assert metrics(again)["Opened"] == "reused" and metrics(again)["Store on disk"] == facts["Store on disk"]


def test_a_dataset_whose_queries_cannot_load_is_still_stored_and_searched_with_hits_read_by_row(app_at, tmp_path,
                                                                                               mini_data_dir):
    data = tmp_path / "data"
    folder = copy_dataset(mini_data_dir / "csn-mini", data / "corpus-only")
    (folder / "queries.jsonl").write_text("{not json\n", encoding="utf-8")
    for qrels in (folder / "qrels").glob("*.tsv"):
        qrels.write_text("query-id\tcorpus-id\tscore\nq-missing\td-missing\t1\n", encoding="utf-8")
    with pytest.raises(DatasetError):
        load_dataset(folder)  # so any page path that loads the dataset fails visibly
    workspace = app_at(Workspace.open(tmp_path / "ws", data), data)

    overview = AppTest.from_file(str(APP), default_timeout=300)
    overview.query_params["dataset"] = "corpus-only"
    overview.run()
    overview.switch_page("pages/datasets.py").run()
    assert overview.error  # the Overview tab loads the dataset whole, and cannot

    at = store(open_stored_tab("corpus-only"))
    assert not at.error and metrics(at)["Stored documents"] == "400"
    query = load_dataset(mini_data_dir / "csn-mini").queries[0].text
    at.text_area(key="datasets_stored_query").input(query).run()
    at.number_input(key="datasets_stored_k").set_value(5).run()
    assert not at.exception and not at.error
    hits = next(df.value for df in at.dataframe if "doc id" in df.value.columns)
    expected = search_stored(open_stored_corpus(workspace, "corpus-only", folder), query, 5)
    assert list(hits["doc id"]) == [hit.document.id for hit in expected.hits]
    assert list(hits["text"]) == [hit.document.full_text for hit in expected.hits]

    wanted = expected.hits[2].document
    at.text_input(key="datasets_stored_doc_id").input(wanted.id).run()
    assert [code.value for code in at.code] == [wanted.full_text]
    at.text_input(key="datasets_stored_doc_id").input("no-such-id").run()
    assert not at.code and "has no document no-such-id" in shown(at.warning)


def test_a_damaged_store_is_rebuilt_and_a_corpus_with_no_usable_line_is_an_error_that_keeps_the_store(app_at, tmp_path,
                                                                                                      mini_data_dir):
    data = tmp_path / "data"
    folder = copy_dataset(mini_data_dir / "cosqa-mini", data / "cosqa-mini")
    workspace = app_at(Workspace.open(tmp_path / "ws", data), data)
    store(open_stored_tab("cosqa-mini"))
    data_file = next((store_folder(workspace, "cosqa-mini") / "corpus.lance" / "data").glob("*.lance"))
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one byte inside the text pages
    data_file.write_bytes(bytes(raw))

    repaired = store(open_stored_tab("cosqa-mini"))
    assert not repaired.error
    told = shown(repaired.warning)
    assert "corpus store for cosqa-mini: rebuilt" in told and "damage found" in told
    assert metrics(repaired)["Stored documents"] == "300"

    corpus = folder / "corpus.jsonl"
    good = corpus.read_bytes()
    corpus.write_text("{oops\n" * 3, encoding="utf-8")
    refused = store(open_stored_tab("cosqa-mini"))
    assert len(refused.error) == 1 and "no usable documents" in shown(refused.error)
    assert "Not opened in this session" in shown(refused.info) and not refused.metric
    corpus.write_bytes(good)
    _, report = open_corpus_store(workspace, "cosqa-mini", folder)
    assert report.reused  # the store written before the refused one is on disk, whole


def test_a_store_deleted_under_an_open_session_is_an_error_message_and_storing_again_serves_it(app_at, tmp_path,
                                                                                               mini_data_dir):
    """Another session's rebuild, or a user's rm, removes the Lance files the open store reads."""
    workspace = app_at(Workspace.open(tmp_path / "ws", mini_data_dir), mini_data_dir)
    at = store(open_stored_tab("csn-mini"))
    first_id = json.loads((mini_data_dir / "csn-mini" / "corpus.jsonl").read_text().splitlines()[0])["_id"]
    data_files = list((store_folder(workspace, "csn-mini") / "corpus.lance" / "data").glob("*.lance"))
    assert data_files
    for path in data_files:
        path.unlink()

    at.text_input(key="datasets_stored_doc_id").input(first_id).run()  # a document shown by id
    assert not at.exception, [e.value for e in at.exception]
    assert "cannot be read" in shown(at.error) and "store it again" in shown(at.error)
    at.run()
    assert "Not opened in this session" in shown(at.info)  # the broken store was let go after the error

    store(at)  # the damage is found on open, and the store written again
    at.text_input(key="datasets_stored_doc_id").input("").run()
    for path in (store_folder(workspace, "csn-mini") / "corpus.lance" / "data").glob("*.lance"):
        path.unlink()
    at.text_area(key="datasets_stored_query").input("sort a list").run()  # a search reading its hits' rows
    assert not at.exception, [e.value for e in at.exception]
    assert "cannot be read" in shown(at.error)
    at.text_area(key="datasets_stored_query").input("").run()

    store(at)  # the damage is found on open, and the store written again
    assert not at.exception and "Stored documents" in metrics(at)
    at.text_area(key="datasets_stored_query").input("sort a list").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("doc id" in df.value.columns and len(df.value) for df in at.dataframe)  # hits again


def test_a_lookup_in_a_store_whose_files_are_gone_raises_index_corrupt_error(tmp_path, mini_data_dir):
    from core.errors import IndexCorruptError

    workspace = Workspace.open(tmp_path / "ws", mini_data_dir)
    store_, _ = open_corpus_store(workspace, "csn-mini", mini_data_dir / "csn-mini")
    for path in (store_folder(workspace, "csn-mini") / "corpus.lance" / "data").glob("*.lance"):
        path.unlink()
    first_id = json.loads((mini_data_dir / "csn-mini" / "corpus.jsonl").read_text().splitlines()[0])["_id"]
    for read in (lambda: store_.lookup([first_id]), lambda: store_.take([0]), lambda: store_.rows_of([first_id])):
        with pytest.raises(IndexCorruptError, match="cannot be read"):
            read()
