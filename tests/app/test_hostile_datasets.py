"""Pages over a dataset whose JSON held lone surrogates (``\\ud800``): they crashed before load_dataset cleaned them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.workspace import Workspace

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def lone_surrogates(app_at, tmp_path) -> Workspace:
    folder = tmp_path / "data" / "lone"
    (folder / "qrels").mkdir(parents=True)
    docs = [json.dumps({"_id": f"d{i}", "text": f"Read file number {i} and parse it."}) for i in range(4)]
    docs.append('{"_id": "d9", "title": "bad \\udfff", "text": "Open a file \\ud800 and read its lines.", "language": "py\\ud800"}')
    (folder / "corpus.jsonl").write_text("\n".join(docs) + "\n")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "read lines \\ud800 of a file"}\n')
    (folder / "qrels" / "test.tsv").write_text("q1\td9\t1\n")
    return app_at(Workspace.open(tmp_path / "ws", tmp_path / "data"), tmp_path / "data")


@pytest.mark.parametrize("page", ["pages/datasets.py", "pages/explorer.py", "pages/breakdown.py"])
def test_pages_open_a_dataset_that_held_lone_surrogates(lone_surrogates, page):
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params.update({"dataset": "lone", "profiles": "bm25-code,bm25-plain", "qid": "q1"})
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    if page == "pages/explorer.py":
        [table, _] = [df.value for df in at.dataframe if "doc id" in df.value.columns]
        assert table["doc id"].iloc[0] == "d9" and table["document"].iloc[0] == "bad ?\nOpen a file ? and read its lines."
