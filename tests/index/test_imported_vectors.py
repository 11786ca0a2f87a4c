"""Vectors computed elsewhere: checked against the corpus and the model, then served as the engine's own table."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.cli.main import main
from core.errors import VectorFileError
from core.index.encoders import load_encoder
from core.index.imported_vectors import file_sha256, import_vectors
from core.index.vectors import corpus_table_name, open_vector_index, table_names
from core.retrieval.engine import Engine
from core.retrieval.profiles import default_profiles
from core.workspace import Workspace


def write_parquet(path: Path, ids: list[str], vectors: np.ndarray, fixed: bool = False) -> Path:
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    offsets = pa.array(np.arange(0, len(ids) * vectors.shape[1] + 1, vectors.shape[1], dtype=np.int32))
    column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]) if fixed else pa.ListArray.from_arrays(offsets, flat)
    pq.write_table(pa.table({"id": pa.array(ids, pa.string()), "vector": column}), path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, session_workspace, csn_mini):
    """csn-mini's dense run and its table's vectors, exported as a user would bring them (the table then deleted)."""
    folder = tmp_path_factory.mktemp("import")
    workspace = Workspace.open(folder / "ws", session_workspace.data_dir)
    engine = Engine(workspace, csn_mini, default_profiles())
    run = engine.run("dense-minilm")
    index = engine.vectors("minilm")
    ids = list(csn_mini.doc_ids)
    vectors = index.vectors.copy()
    shuffled = np.random.default_rng(5).permutation(len(ids))  # a parquet file's rows come in any order
    files = {"parquet": write_parquet(folder / "vectors.parquet", [ids[r] for r in shuffled], vectors[shuffled]),
             "npy": folder / "vectors.npy", "ids": folder / "ids.txt", "npy-shuffled": folder / "shuffled.npy"}
    np.save(files["npy"], vectors)
    np.save(files["npy-shuffled"], vectors[shuffled])
    files["ids"].write_text("\n".join(ids[r] for r in shuffled) + "\n", encoding="utf-8")
    encoder = engine.encoder("minilm", "torch")
    name = corpus_table_name(csn_mini, encoder)
    lancedb.connect(str(workspace.vectors_dir)).drop_table(name)
    return workspace, run, ids, vectors, files, name


@pytest.mark.parametrize("form", ["parquet", "npy", "npy with an ids file"])
def test_imported_vectors_give_the_run_the_engine_built_to_the_bit(exported, csn_mini, form):
    workspace, original, _, vectors, files, name = exported
    path, ids_path = {"parquet": (files["parquet"], None), "npy": (files["npy"], None),
                      "npy with an ids file": (files["npy-shuffled"], files["ids"])}[form]
    index, report = import_vectors(workspace, csn_mini, "minilm", path, ids_path=ids_path)
    assert report.table == name and report.model_loaded and report.dim == 384 and report.unit_length
    np.testing.assert_array_equal(index.vectors, vectors)

    engine = Engine(workspace, csn_mini, default_profiles())
    rerun = engine.run("dense-minilm")
    assert rerun.rankings == original.rankings  # ids and scores, to the bit
    opened = [r for r in engine.reports if r.what.startswith("embeddings")]
    assert opened and opened[0].reused  # the engine took the imported table as its own
    meta = json.loads(lancedb.connect(str(workspace.vectors_dir)).open_table(name).schema.metadata[b"codeir"])
    assert meta["imported"]["sha256"] == file_sha256(path) and meta["imported"]["file"] == path.name


def _malformed(kind: str, ids: list[str], vectors: np.ndarray, folder: Path) -> tuple[Path, str]:
    """A broken export and the words its one-line refusal must hold."""
    if kind == "missing id":
        return write_parquet(folder / "f.parquet", ids[:-1] + ["x-unknown"], vectors), "not a document of the corpus"
    if kind == "row missing":
        return write_parquet(folder / "f.parquet", ids[:-1], vectors[:-1]), "399 vectors but the corpus has 400"
    if kind == "duplicate id":
        return write_parquet(folder / "f.parquet", ids[:-1] + [ids[0]], vectors), "appears more than once"
    if kind == "extra id":
        return write_parquet(folder / "f.parquet", ids + ["x-extra"], np.vstack([vectors, vectors[:1]])), "401 vectors"
    if kind == "wrong dimension":
        return write_parquet(folder / "f.parquet", ids, vectors[:, :128], fixed=True), "128 dimensions but minilm makes 384"
    if kind == "ragged vectors":
        flat = pa.array(np.concatenate([vectors[0, :383], vectors[1:].reshape(-1), vectors[0, :1]]), pa.float32())
        offsets = pa.array([0, 383] + [383 + 384 * i for i in range(1, len(ids) - 1)] + [len(ids) * 384], pa.int32())
        pq.write_table(pa.table({"id": ids, "vector": pa.ListArray.from_arrays(offsets, flat)}), folder / "f.parquet")
        return folder / "f.parquet", "has 383 values, not 384"
    if kind == "NaN":
        broken = vectors.copy()
        broken[7, 5] = np.nan
        return write_parquet(folder / "f.parquet", ids, broken), f"the vector of {ids[7]!r} holds NaN"
    if kind == "infinity in npy":
        broken = vectors.copy()
        broken[3, 0] = np.inf
        np.save(folder / "f.npy", broken)
        return folder / "f.npy", "NaN or infinity"
    if kind == "wrong count in npy":
        np.save(folder / "f.npy", vectors[:-3])
        return folder / "f.npy", "397 vectors but the corpus has 400"
    if kind == "pickled npy":
        np.save(folder / "f.npy", np.array([list(v) for v in vectors], dtype=object), allow_pickle=True)
        return folder / "f.npy", "pickled"
    if kind == "pickle renamed npy":
        (folder / "f.npy").write_bytes(pickle.dumps(vectors))
        return folder / "f.npy", "not a readable .npy file"
    if kind == "truncated npy":
        np.save(folder / "f.npy", vectors)
        data = (folder / "f.npy").read_bytes()
        (folder / "f.npy").write_bytes(data[:-100])
        return folder / "f.npy", "truncated"
    if kind == "integer npy":
        np.save(folder / "f.npy", (vectors * 100).astype(np.int32))
        return folder / "f.npy", "float array"
    if kind == "no vector column":
        pq.write_table(pa.table({"id": ids, "embedding": [v.tolist() for v in vectors]}), folder / "f.parquet")
        return folder / "f.parquet", "needs the columns id and vector"
    raise AssertionError(kind)


MALFORMED = ["missing id", "row missing", "duplicate id", "extra id", "wrong dimension", "ragged vectors", "NaN",
             "infinity in npy", "wrong count in npy", "pickled npy", "pickle renamed npy", "truncated npy", "integer npy",
             "no vector column"]


@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_file_is_refused_with_one_line_and_nothing_written(tmp_path, session_workspace, csn_mini, exported, kind):
    _, _, ids, vectors, _, name = exported
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    path, words = _malformed(kind, ids, vectors, tmp_path)
    with pytest.raises(VectorFileError) as refused:
        import_vectors(workspace, csn_mini, "minilm", path)
    message = str(refused.value)
    assert words in message and "\n" not in message
    assert list(workspace.vectors_dir.iterdir()) == []  # not a table, not a staging folder, not a sidecar


def test_the_cli_imports_a_parquet_file_and_refuses_a_broken_one_with_exit_2(tmp_path, session_workspace, csn_mini,
                                                                            exported, capsys):
    _, _, ids, vectors, files, name = exported
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    common = ["--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), "import-vectors",
              "--dataset", "csn-mini", "--model", "minilm"]
    broken, _ = _malformed("duplicate id", ids, vectors, tmp_path)
    assert main(common + [str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "appears more than once" in err and len(err.splitlines()) == 1
    assert main(common + [str(files["parquet"])]) == 0
    assert "imported 400 vectors of 384 dimensions" in capsys.readouterr().out
    index, report = open_vector_index(workspace, csn_mini, load_encoder("minilm", workspace))
    assert report.reused and np.array_equal(index.vectors, vectors)
    assert main(common + ["--ids", str(files["ids"]), str(files["parquet"])]) == 2  # --ids is for .npy files
    assert "--ids is for .npy files" in capsys.readouterr().err


def test_vectors_of_a_model_not_loadable_here_are_stored_with_the_files_dimension(tmp_path, session_workspace, csn_mini,
                                                                                exported):
    _, _, ids, vectors, _, _ = exported
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    path = write_parquet(tmp_path / "v.parquet", ids, np.ascontiguousarray(vectors[:, :96]))
    index, report = import_vectors(workspace, csn_mini, "some-org/embedder-96", path)  # a hub id, offline in tests
    assert not report.model_loaded and report.dim == 96 and index.vectors.shape == (400, 96)
    assert report.table in table_names(lancedb.connect(str(workspace.vectors_dir)))
