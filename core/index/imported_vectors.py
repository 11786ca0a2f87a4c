"""Corpus vectors computed elsewhere, checked, then stored as the very table the engine would build for them.

A user who embedded the corpus on another machine brings the vectors with the name of the model that made them:

- a **parquet** file with columns ``id`` (string, or integers written as their decimal text) and ``vector`` (a list,
  or fixed-size list, of float32; float16 and float64 are cast to float32), rows in any order;
- a **.npy** float matrix of (documents, dimension), saved without pickling (``np.save(path, matrix)``). Its rows
  are the corpus's rows in order, unless ``ids_path`` names a text file of one document id per line, line i
  being the id of row i.

Every check runs before anything is written, and the first that fails stops the import with one line
(``VectorFileError``): the file's size is bounded by the corpus size and dimension before it is read; the row
count equals the corpus's; the dimension equals the model's when the model can be loaded here (otherwise the
file's is recorded); every corpus id is present exactly once and no other id is; every value is finite. Reads go
batch by batch (parquet) or through a memory map (.npy, ``allow_pickle=False``), into the one matrix the table
is written from.

The table gets the name, metadata and checksum of the table the engine builds for (corpus, model), so the
engine opens it as ``reused``; its metadata also says ``imported``, with the file's name and SHA-256. Imported
vectors do not enter the embedding cache: they are the user's claim about a model, not the model's output here.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data.corpus_store import Corpus
from core.errors import ModelUnavailableError, VectorFileError
from core.index.encoders import TorchEncoder, load_encoder, resolve_model
from core.index.ann import sidecar_path
from core.index.vectors import VectorIndex, corpus_table_name, table_checksum, write_table
from core.workspace import Workspace

SUFFIXES = (".parquet", ".npy")
MAX_DIM = 65_536
SLACK_BYTES = 64 * 2**20       # room for headers, page indexes and row-group metadata beyond the data itself
READ_BATCH_ROWS = 65_536       # rows read and checked at a time
HASH_CHUNK = 8 * 2**20


@dataclass(frozen=True)
class ImportedModel:
    """The model the vectors are said to come from: its name and fingerprint name the table; ``dim`` is None when it
    cannot be loaded here (then the file's dimension is recorded)."""

    name: str
    fingerprint: str
    dim: int | None


@dataclass(frozen=True)
class ImportReport:
    """What an import stored, from which file, and how long it took."""

    table: str
    rows: int
    dim: int
    model: str
    model_loaded: bool
    file: str
    sha256: str
    seconds: float
    min_norm: float
    max_norm: float

    def __str__(self) -> str:
        checked = "dimension checked against the model" if self.model_loaded else "model not loadable here: dimension taken from the file"
        return (f"imported {self.rows:,} vectors of {self.dim} dimensions from {self.file} (sha256 {self.sha256[:16]}…) "
                f"as the {self.model} table {self.table} in {self.seconds:.1f}s; {checked}")

    @property
    def unit_length(self) -> bool:
        """Whether every vector has norm 1 (to 1e-3): dense scores are cosines only then, dot products otherwise."""
        return abs(self.min_norm - 1) <= 1e-3 and abs(self.max_norm - 1) <= 1e-3


def resolve_imported_model(workspace: Workspace, name: str, backend: str = "torch") -> ImportedModel:
    """The model's fingerprint (as the engine computes it) and its dimension when its weights load here."""
    try:
        encoder = load_encoder(name, workspace, backend)
    except ModelUnavailableError:
        if backend != "torch":
            raise
        encoder = TorchEncoder(name, resolve_model(name, workspace))  # a hub id offline: its fingerprint needs no weights
    try:
        dim = int(encoder.dim)
    except ModelUnavailableError:
        dim = None
    return ImportedModel(name, encoder.fingerprint, dim)


def corpus_ids(corpus: Corpus) -> list[str]:
    """The corpus's document ids in row order (a Dataset keeps them; a store streams them)."""
    ids = getattr(corpus, "doc_ids", None)
    return list(ids) if ids is not None else [document.id for document in corpus.iter_documents()]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _size_limit(count: int, dim: int, id_bytes: int) -> int:
    """The largest file accepted for ``count`` vectors of ``dim`` floats: float64 values, the ids, offsets, slack."""
    return 2 * count * dim * 4 + id_bytes + 16 * count + SLACK_BYTES


def _check_dim(file: str, dim: int, model: ImportedModel) -> None:
    if not 1 <= dim <= MAX_DIM:
        raise VectorFileError(f"{file}: vectors of {dim} dimensions cannot be right (1 to {MAX_DIM:,} are accepted).")
    if model.dim is not None and dim != model.dim:
        raise VectorFileError(f"{file}: vectors have {dim} dimensions but {model.name} makes {model.dim}: "
                              f"were they made by another model?")


def _check_count(file: str, count: int, expected: int) -> None:
    if count != expected:
        raise VectorFileError(f"{file}: holds {count:,} vectors but the corpus has {expected:,} documents: "
                              f"export one vector per document.")


class _Filler:
    """The matrix an import fills, row by corpus row, refusing unknown, repeated and non-finite rows as they come."""

    def __init__(self, file: str, ids: list[str], dim: int):
        self.file = file
        self.ids = ids
        self.row_of = {doc_id: row for row, doc_id in enumerate(ids)}
        self.vectors = np.empty((len(ids), dim), dtype=np.float32)
        self.seen = np.zeros(len(ids), dtype=bool)

    def rows_of(self, batch_ids: list[str]) -> np.ndarray:
        rows = np.fromiter((self.row_of.get(doc_id, -1) for doc_id in batch_ids), dtype=np.int64, count=len(batch_ids))
        if (rows < 0).any():
            unknown = batch_ids[int(np.flatnonzero(rows < 0)[0])]
            raise VectorFileError(f"{self.file}: id {unknown!r} is not a document of the corpus: export the corpus's own ids.")
        return rows

    def put(self, rows: np.ndarray, values: np.ndarray) -> None:
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():
            bad = self.ids[int(rows[np.flatnonzero(~finite)[0]])]
            raise VectorFileError(f"{self.file}: the vector of {bad!r} holds NaN or infinity ({int((~finite).sum())} such "
                                  f"vectors in this batch): fix them at the source.")
        unique, first = np.unique(rows, return_index=True)
        if len(unique) != len(rows) or self.seen[rows].any():
            repeated = rows[np.setdiff1d(np.arange(len(rows)), first)] if len(unique) != len(rows) else rows[self.seen[rows]]
            raise VectorFileError(f"{self.file}: id {self.ids[int(repeated[0])]!r} appears more than once: keep one vector per document.")
        self.vectors[rows] = values
        self.seen[rows] = True

    def finish(self) -> np.ndarray:
        if not self.seen.all():
            missing = int((~self.seen).sum())
            raise VectorFileError(f"{self.file}: {missing:,} corpus document(s) have no vector, the first {self.ids[int(np.flatnonzero(~self.seen)[0])]!r}.")
        return self.vectors


def _read_npy(path: Path, ids: list[str], model: ImportedModel, ids_path: Path | None) -> np.ndarray:
    from numpy.lib import format as npy_format

    file = path.name
    try:
        with path.open("rb") as handle:
            version = npy_format.read_magic(handle)
            reader = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}.get(version)
            if reader is None:
                raise ValueError(f"format version {version} is not read here; save with numpy's default np.save")
            shape, fortran_order, dtype = reader(handle)
            data_offset = handle.tell()
    except ValueError as exc:
        raise VectorFileError(f"{file}: not a readable .npy file ({exc}).") from None
    if dtype.hasobject:
        raise VectorFileError(f"{file}: holds Python objects (a pickled array), which are never loaded: "
                              f"save the vectors as a float array, np.save(path, vectors.astype('float32')).")
    # the header is bounded (numpy reads at most 10,000 bytes of it) and the data size is checked before any is read
    if dtype.names or dtype.kind != "f" or len(shape) != 2:
        raise VectorFileError(f"{file}: holds a {dtype} array of shape {shape}; a (documents, dimension) float array is needed.")
    count, dim = int(shape[0]), int(shape[1])
    _check_count(file, count, len(ids))
    _check_dim(file, dim, model)
    if path.stat().st_size != data_offset + count * dim * dtype.itemsize:
        raise VectorFileError(f"{file}: is {path.stat().st_size:,} bytes, not the {data_offset + count * dim * dtype.itemsize:,} "
                              f"its header announces (truncated, or bytes appended).")
    order = _read_id_lines(ids_path, ids) if ids_path is not None else None
    matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    filler = _Filler(file, ids, dim)
    for start in range(0, count, READ_BATCH_ROWS):
        values = np.asarray(matrix[start:start + READ_BATCH_ROWS], dtype=np.float32)
        rows = np.arange(start, start + len(values)) if order is None else order[start:start + len(values)]
        filler.put(rows, values)
    del matrix
    return filler.finish()


def _read_id_lines(ids_path: Path, ids: list[str]) -> np.ndarray:
    """The corpus row of each line of an ids file (one id a line, UTF-8), refused when it is not a permutation."""
    file = ids_path.name
    limit = sum(len(doc_id.encode("utf-8", "surrogatepass")) + 2 for doc_id in ids) + SLACK_BYTES
    if ids_path.stat().st_size > limit:
        raise VectorFileError(f"{file}: is {ids_path.stat().st_size:,} bytes, far more than {len(ids):,} ids need: "
                              f"give a file of one id per line.")
    lines = ids_path.read_text(encoding="utf-8").splitlines()
    if lines and lines[-1] == "" and len(lines) == len(ids) + 1:
        lines.pop()
    if len(lines) != len(ids):
        raise VectorFileError(f"{file}: holds {len(lines):,} ids but the corpus has {len(ids):,} documents: "
                              f"give one id per vector row.")
    filler = _Filler(file, ids, 1)
    rows = filler.rows_of(lines)
    filler.put(rows, np.zeros((len(rows), 1), np.float32))  # a repeated id is refused here
    filler.finish()
    return rows


def _read_parquet(path: Path, ids: list[str], model: ImportedModel) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    file = path.name
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... on what is not parquet
        raise VectorFileError(f"{file}: not a readable parquet file ({exc}).") from None
    schema = parquet.schema_arrow
    if "id" not in schema.names or "vector" not in schema.names:
        raise VectorFileError(f"{file}: needs the columns id and vector; it has {', '.join(schema.names)}.")
    id_type, vector_type = schema.field("id").type, schema.field("vector").type
    if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type) or pa.types.is_integer(id_type)):
        raise VectorFileError(f"{file}: column id is {id_type}; it must hold the document ids as text.")
    if not (pa.types.is_list(vector_type) or pa.types.is_large_list(vector_type) or pa.types.is_fixed_size_list(vector_type)) \
            or not pa.types.is_floating(vector_type.value_type):
        raise VectorFileError(f"{file}: column vector is {vector_type}; it must be a list of float32.")
    count = parquet.metadata.num_rows
    _check_count(file, count, len(ids))
    if pa.types.is_fixed_size_list(vector_type):
        dim = vector_type.list_size
    else:  # the values the file stores, from its footer alone: count x dim when every row has dim of them
        leaf = next(i for i in range(parquet.metadata.num_columns)
                    if parquet.metadata.schema.column(i).path.split(".")[0] == "vector")
        values = sum(parquet.metadata.row_group(g).column(leaf).num_values for g in range(parquet.metadata.num_row_groups))
        if count == 0 or values % count:
            raise VectorFileError(f"{file}: its {values:,} values do not split into {count:,} vectors of one dimension.")
        dim = values // count
    _check_dim(file, dim, model)
    id_bytes = sum(len(doc_id.encode("utf-8", "surrogatepass")) for doc_id in ids)
    if path.stat().st_size > _size_limit(count, dim, id_bytes):
        raise VectorFileError(f"{file}: is {path.stat().st_size:,} bytes, more than {count:,} vectors of {dim} floats "
                              f"and their ids can take: export only id and vector.")
    filler = _Filler(file, ids, dim)
    # one row group at a time: with threads, pyarrow decodes several ahead (1.9 GiB more at 1M x 384, measured)
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=["id", "vector"], use_threads=False):
        column = batch.column("vector")
        if column.null_count:
            raise VectorFileError(f"{file}: {column.null_count} row(s) have no vector.")
        if not pa.types.is_fixed_size_list(column.type):
            lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
            if (lengths != dim).any():
                raise VectorFileError(f"{file}: a vector has {int(lengths[lengths != dim][0])} values, not {dim}: "
                                      f"every vector needs the same dimension.")
        values = column.flatten()
        if values.null_count:
            raise VectorFileError(f"{file}: a vector holds null values.")
        batch_ids = batch.column("id")
        if batch_ids.null_count:
            raise VectorFileError(f"{file}: {batch_ids.null_count} row(s) have no id.")
        id_list = [str(doc_id) for doc_id in batch_ids.to_pylist()]
        matrix = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(id_list), dim)
        filler.put(filler.rows_of(id_list), matrix)
    return filler.finish()


def read_vector_file(path: Path, ids: list[str], model: ImportedModel, ids_path: Path | None = None) -> np.ndarray:
    """The file's vectors in corpus row order, every check passed (see the module docstring), else VectorFileError."""
    path = Path(path)
    if not path.is_file():
        raise VectorFileError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise VectorFileError(f"{path.name}: give a .parquet (columns id, vector) or a .npy file, not {suffix or 'a file without suffix'}.")
    if suffix == ".parquet":
        if ids_path is not None:
            raise VectorFileError(f"{path.name}: a parquet file carries its own id column; --ids is for .npy files.")
        return _read_parquet(path, ids, model)
    return _read_npy(path, ids, model, Path(ids_path) if ids_path is not None else None)


def import_vectors(workspace: Workspace, corpus: Corpus, model: str | ImportedModel, path: Path, backend: str = "torch",
                   ids_path: Path | None = None) -> tuple[VectorIndex, ImportReport]:
    """Check ``path`` against ``corpus`` and ``model`` (a name, or a model resolved already) and store it as their corpus
    table, replacing any there.

    Nothing is written unless every check passes; the table is then the engine's own, opened as ``reused``.
    """
    started = time.perf_counter()
    path = Path(path)
    imported_model = model if isinstance(model, ImportedModel) else resolve_imported_model(workspace, model, backend)
    model = imported_model.name
    ids = corpus_ids(corpus)
    if len(ids) != corpus.num_docs:
        raise VectorFileError(f"The corpus of {corpus.name} streamed {len(ids):,} ids but holds {corpus.num_docs:,}: reopen it.")
    vectors = read_vector_file(path, ids, imported_model, ids_path)
    dim = vectors.shape[1]
    sha256 = file_sha256(path)
    norms = np.concatenate([np.linalg.norm(vectors[start:start + READ_BATCH_ROWS].astype(np.float64), axis=1)
                            for start in range(0, len(vectors), READ_BATCH_ROWS)]) if len(vectors) else np.ones(1)
    name = corpus_table_name(corpus, imported_model)
    expected = {"fingerprint": imported_model.fingerprint, "count": len(ids), "dim": dim,
                "imported": {"file": path.name, "sha256": sha256, "model": model, "model_loaded": imported_model.dim is not None,
                             "ids_file": Path(ids_path).name if ids_path is not None else "",
                             "ids_sha256": file_sha256(Path(ids_path)) if ids_path is not None else "",
                             "at": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    with workspace.lock(name):
        table = write_table(workspace, name, ids, vectors, expected)
        sidecar_path(workspace, name).unlink(missing_ok=True)  # an ANN index and its recall belonged to the vectors replaced
    report = ImportReport(name, len(ids), dim, model, imported_model.dim is not None, path.name, sha256,
                          time.perf_counter() - started, float(norms.min()), float(norms.max()))
    return VectorIndex(table, vectors, table_checksum(table, ids, vectors)), report
