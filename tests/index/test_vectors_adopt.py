"""A corpus table written by another process (the Ray engine) is checked, stamped and renamed into the engine's place."""
from __future__ import annotations

from dataclasses import replace

import lance
import numpy as np
import pyarrow as pa
import pytest

from core.data.datasets import Qrels
from core.errors import IndexCorruptError
from core.index.encoders import load_encoder
from core.index.vectors import (adopt_corpus_table, corpus_table_name, corpus_table_schema, open_current_corpus_table,
                                open_vector_index)
from core.workspace import Workspace


@pytest.fixture
def built(tmp_path, session_workspace, csn_mini):
    """A fresh workspace whose 40-document corpus table was built in this process: (workspace, corpus, encoder, index)."""
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    corpus = replace(csn_mini, name="csn-40", documents=csn_mini.documents[:40], queries=(), qrels=Qrels({}))
    encoder = load_encoder("minilm", session_workspace)
    index, _ = open_vector_index(workspace, corpus, encoder)
    return workspace, corpus, encoder, index


def stage(workspace, rows: list[int], ids: list[str], vectors: np.ndarray):
    """Write (row, id, vector) as the Ray engine does, into the staging folder."""
    path = workspace.vectors_dir / ".ray-staging" / "staged.lance"
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    table = pa.table({"row": pa.array(rows, pa.int64()), "id": pa.array(ids, pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])}, schema=corpus_table_schema(vectors.shape[1]))
    lance.write_dataset(table, str(path))
    return path


def test_a_staged_table_in_any_row_order_replaces_the_current_one(built):
    workspace, corpus, encoder, index = built
    order = np.random.default_rng(3).permutation(40)
    new_vectors = -index.vectors  # different from what is served, so the swap shows
    staged = stage(workspace, order.tolist(), [corpus.documents[r].id for r in order], new_vectors[order])
    adopted, report = adopt_corpus_table(workspace, corpus, encoder, staged)
    assert not report.reused and np.array_equal(adopted.vectors, new_vectors)
    reopened, reopen_report = open_vector_index(workspace, corpus, encoder)  # metadata and checksum pass the engine's checks
    assert reopen_report.reused and np.array_equal(reopened.vectors, new_vectors)
    assert not staged.exists() and not any((workspace.vectors_dir / ".ray-staging").iterdir())
    assert (workspace.vectors_dir / f"{corpus_table_name(corpus, encoder)}.lance").is_dir()


@pytest.mark.parametrize("damage", ["missing row", "row twice", "wrong id"])
def test_a_staged_table_without_every_row_once_is_refused_and_the_current_one_serves(built, damage):
    workspace, corpus, encoder, index = built
    rows, ids = list(range(40)), [d.id for d in corpus.documents]
    vectors = index.vectors.copy()
    if damage == "missing row":
        rows, ids, vectors = rows[:-1], ids[:-1], vectors[:-1]
    elif damage == "row twice":
        rows[5], ids[5] = 4, ids[4]
    else:
        ids[7] = "not-in-the-corpus"
    with pytest.raises(IndexCorruptError):
        adopt_corpus_table(workspace, corpus, encoder, stage(workspace, rows, ids, vectors))
    current = open_current_corpus_table(workspace, corpus, encoder)
    assert current is not None and np.array_equal(current.vectors, index.vectors)
