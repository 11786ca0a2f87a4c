"""Dense retrieval over normalised embeddings stored in LanceDB.

One table per (dataset, model) holds the corpus embeddings; its name carries the corpus content
hash and the model fingerprint, and its schema metadata repeats them, so a table is reused exactly
until the corpus text or the model changes. Benchmark query embeddings are cached the same way.

Search is exact (a matrix product over the vectors held in memory) up to ``ANN_THRESHOLD``
documents; past that an IVF index in LanceDB (``ANN_INDEX_TYPE``) proposes ``ANN_OVERSAMPLE`` x k
candidates whose exact cosines pick the k best. Its recall against the exact search is reported by the
benchmark script.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa

from core.data.datasets import Dataset
from core.index.encoders import Encoder
from core.errors import IndexCorruptError
from core.progress import ItemProgress
from core.index.lexical import BuildReport
from core.workspace import Workspace, slug

ANN_THRESHOLD = 200_000
# IVF with exact distances inside the probed partitions. IVF_HNSW_SQ was measured first: its 8-bit scalar
# quantisation cannot tell near-duplicates apart (recall@10 0.83 at 1M synthetic docs, 0.29 on clustered test
# vectors, whatever nprobes or ef) and it took 13 min to build at 1M; IVF_PQ was worse still.
ANN_INDEX_TYPE = "IVF_FLAT"
# The index proposes this many times k candidates; their cosines from the in-memory vectors pick the k best, so
# scores are the very float32 values the exact search computes.
ANN_OVERSAMPLE = 2
EMBED_CHUNK = 1024  # embeddings are checkpointed every chunk, so an interrupted build resumes
EMBED_CHUNK_ENV = "CODEIR_EMBED_CHUNK"  # overrides EMBED_CHUNK (tests use small chunks to interrupt a build mid-way)
META_KEY = b"codeir"


@dataclass(frozen=True)
class DenseHits:
    """Row numbers and cosine scores, one row per query, best first."""

    rows: np.ndarray    # (queries, k) int64
    scores: np.ndarray  # (queries, k) float32


def top_k(scores: np.ndarray, k: int) -> DenseHits:
    """Exact top-k per row of a (queries, docs) score matrix; ties broken by lower row number."""
    n_docs = scores.shape[1]
    k = min(k, n_docs)
    if k == 0:
        return DenseHits(np.empty((scores.shape[0], 0), np.int64), np.empty((scores.shape[0], 0), np.float32))
    if k < n_docs:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        candidates = np.tile(np.arange(n_docs), (scores.shape[0], 1))
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    rows = np.take_along_axis(candidates, order, axis=1)
    return DenseHits(rows.astype(np.int64), np.take_along_axis(candidate_scores, order, axis=1))


class VectorIndex:
    """Corpus embeddings for one (dataset, model), searchable by query vectors."""

    def __init__(self, table, vectors: np.ndarray):
        self.table = table
        self.vectors = vectors
        self.uses_ann = len(vectors) > ANN_THRESHOLD

    def search(self, query_vectors: np.ndarray, k: int = 100) -> DenseHits:
        query_vectors = np.atleast_2d(np.asarray(query_vectors, dtype=np.float32))
        if not self.uses_ann:
            return top_k(query_vectors @ self.vectors.T, k)
        k = min(k, len(self.vectors))
        if k <= 0 or len(query_vectors) == 0:
            return top_k(np.zeros((len(query_vectors), 0), np.float32), 0)
        rows, scores = np.empty((len(query_vectors), k), np.int64), np.empty((len(query_vectors), k), np.float32)
        for i, vector in enumerate(query_vectors):
            # naming _distance keeps lance from warning on every query
            hits = self.table.search(vector).metric("dot").limit(k * ANN_OVERSAMPLE).select(["row", "_distance"]).to_arrow()
            candidates = np.sort(hits["row"].to_numpy().astype(np.int64))  # sorted: ties then go to the lower row, as in top_k
            if len(candidates) < k:  # the probed partitions hold fewer than k documents: search this query exactly
                best = top_k((self.vectors @ vector)[None, :], k)
                rows[i], scores[i] = best.rows[0], best.scores[0]
            else:
                best = top_k((self.vectors[candidates] @ vector)[None, :], k)
                rows[i], scores[i] = candidates[best.rows[0]], best.scores[0]
        return DenseHits(rows, scores)


def _connect(workspace: Workspace):
    return lancedb.connect(str(workspace.vectors_dir))


def table_names(db) -> list[str]:
    listing = db.list_tables() if hasattr(db, "list_tables") else db.table_names()
    names = getattr(listing, "tables", listing)
    return list(names)


def corpus_table_name(dataset: Dataset, encoder: Encoder) -> str:
    return f"docs__{slug(dataset.name, 60)}__{slug(encoder.name, 40)}__{dataset.corpus_hash[:12]}__{encoder.fingerprint[:24]}"


def query_table_name(dataset: Dataset, encoder: Encoder) -> str:
    return f"queries__{slug(dataset.name, 60)}__{slug(encoder.name, 40)}__{dataset.queries_hash[:12]}__{encoder.fingerprint[:24]}"


def embed_chunk_size() -> int:
    """Rows per embedding checkpoint: ``$CODEIR_EMBED_CHUNK`` when set to a positive integer, else EMBED_CHUNK."""
    value = os.environ.get(EMBED_CHUNK_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else EMBED_CHUNK


def _checksum(ids: Sequence[str], vectors: np.ndarray) -> str:
    """CRC-32 of the ids and vector bytes in row order.

    Lance checks its manifests but not its data pages: a flipped byte in a data file reads back as
    a different, still finite vector. The checksum written with the table catches that.
    """
    crc = zlib.crc32("\x1f".join(ids).encode("utf-8", "surrogatepass"))
    return f"{zlib.crc32(np.ascontiguousarray(vectors, dtype=np.float32), crc):08x}"  # the buffer itself: no copy


def _backend_tag(table_name: str) -> str:
    """The backend part of a table name's fingerprint (``torch``, ``onnx-in``...): torch and ONNX tables live side by side."""
    return table_name.rsplit("__", 1)[-1].partition("-")[2]


def vectors_to_arrow(ids: Sequence[str], vectors: np.ndarray, meta: dict) -> pa.Table:
    dim = vectors.shape[1]
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1), pa.float32())
    table = pa.table({"row": pa.array(np.arange(len(ids), dtype=np.int64)), "id": pa.array(list(ids), pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})
    meta = {**meta, "checksum": _checksum(ids, vectors)}
    return table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})


def record_batches(table: pa.Table, rows: int = 65_536) -> pa.RecordBatchReader:
    """The table as a stream of batches: lance then writes it without a second full copy (1M x 384: 2 GiB peak, not 4.6)."""
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=rows))


def read_checked_table(db, name: str, expected: dict) -> tuple[object, np.ndarray, list[str]]:
    """Open a table and verify it is complete and matches; raise IndexCorruptError when not."""
    try:
        table = db.open_table(name)
        data = table.to_arrow()
        meta = json.loads((data.schema.metadata or {}).get(META_KEY, b"{}"))
        if any(meta.get(key) != value for key, value in expected.items()):
            raise IndexCorruptError(f"Vector table {name} is stale.")
        if data.num_rows != expected["count"]:
            raise IndexCorruptError(f"Vector table {name} holds {data.num_rows} rows, expected {expected['count']}.")
        if not np.array_equal(data["row"].to_numpy(), np.arange(data.num_rows)):
            data = data.sort_by("row")  # lance returns rows in write order, so this copy is the rare case
            if not np.array_equal(data["row"].to_numpy(), np.arange(data.num_rows)):
                raise IndexCorruptError(f"Vector table {name} has damaged row numbers.")
        if data.schema.field("vector").type.list_size != expected["dim"]:
            raise IndexCorruptError(f"Vector table {name} has damaged vectors.")
        # filled chunk by chunk: at most the Arrow table and one matrix in memory (1M x 384 reads in ~3 GiB, not ~6)
        vectors = np.empty((data.num_rows, expected["dim"]), dtype=np.float32)
        start = 0
        for chunk in data["vector"].chunks:
            part = chunk.flatten().to_numpy(zero_copy_only=False).reshape(len(chunk), expected["dim"])
            if not np.isfinite(part).all():
                raise IndexCorruptError(f"Vector table {name} has damaged vectors.")
            vectors[start:start + len(chunk)] = part
            start += len(chunk)
        ids = data["id"].to_pylist()
        del data
        # tables written before checksums were recorded carry none; they are still accepted
        if "checksum" in meta and meta["checksum"] != _checksum(ids, vectors):
            raise IndexCorruptError(f"Vector table {name} does not match its checksum (a data file is damaged).")
        return table, vectors, ids
    except IndexCorruptError:
        raise
    except Exception as exc:  # lance raises many kinds of errors on missing or truncated files
        raise IndexCorruptError(f"Vector table {name} cannot be read ({type(exc).__name__}: {exc}).") from exc


def _embed_resumable(texts: Sequence[str], encoder: Encoder, partial_dir: Path,
                     progress: ItemProgress | None) -> np.ndarray:
    """Embed in checkpointed chunks: chunks already on disk from an interrupted build are reused."""
    partial_dir.mkdir(parents=True, exist_ok=True)
    size = embed_chunk_size()
    chunks = []
    if progress:
        progress("embed", 0, len(texts))
    for start in range(0, len(texts), size):
        path = partial_dir / f"{start:09d}.npy"
        if path.is_file():
            try:
                chunk = np.load(path)
                # a chunk file is keyed by its first row; its length says which rows it covers, so a
                # checkpoint written with another chunk size is reused only when it covers the same rows
                if chunk.shape == (len(texts[start:start + size]), encoder.dim) and np.isfinite(chunk).all():
                    chunks.append(chunk)
                    if progress:
                        progress("embed", min(start + size, len(texts)), len(texts))
                    continue
            except (OSError, ValueError, EOFError):
                pass  # a damaged chunk is recomputed (writes are atomic, so a kill leaves none)
        chunk = encoder.encode(texts[start:start + size])
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, chunk)
        tmp.replace(path)
        chunks.append(chunk)
        if progress:
            progress("embed", min(start + size, len(texts)), len(texts))
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.dim), np.float32)


def _drop_damaged(db, workspace: Workspace, name: str) -> None:
    """Remove a table that failed its check, so the rebuild writes a fresh one.

    ``create_table(mode="overwrite")`` reads the latest manifest first and fails when that manifest
    is the damaged part; the table holds nothing worth keeping, so it goes before the rebuild.
    """
    try:
        db.drop_table(name)
    except Exception:  # lance cannot always drop what it cannot read
        shutil.rmtree(workspace.vectors_dir / f"{name}.lance", ignore_errors=True)


def _open_or_build(workspace: Workspace, name: str, ids: Sequence[str], texts: Sequence[str], encoder: Encoder,
                   what: str, rebuild: bool, progress: ItemProgress | None, stale_prefix: str):
    db = _connect(workspace)
    expected = {"fingerprint": encoder.fingerprint, "count": len(ids), "dim": encoder.dim}
    started = time.perf_counter()
    if not rebuild and name in table_names(db):
        try:
            table, vectors, _ = read_checked_table(db, name, expected)
            return table, vectors, BuildReport(what, True, time.perf_counter() - started, len(ids))
        except IndexCorruptError:
            pass
    with workspace.lock(name):
        db = _connect(workspace)
        if not rebuild and name in table_names(db):
            try:
                table, vectors, _ = read_checked_table(db, name, expected)
                return table, vectors, BuildReport(what, True, time.perf_counter() - started, len(ids))
            except IndexCorruptError:
                _drop_damaged(db, workspace, name)
        partial_dir = workspace.vectors_dir / ".partial" / name
        if rebuild:
            shutil.rmtree(partial_dir, ignore_errors=True)
        vectors = _embed_resumable(texts, encoder, partial_dir, progress)
        if progress:
            progress("store", 0, len(ids))
        table = db.create_table(name, record_batches(vectors_to_arrow(ids, vectors, expected)), mode="overwrite")
        if len(ids) > ANN_THRESHOLD:
            table.create_index(metric="dot", vector_column_name="vector", index_type=ANN_INDEX_TYPE)
        table, vectors, _ = read_checked_table(db, name, expected)
        if progress:
            progress("store", len(ids), len(ids))
        shutil.rmtree(partial_dir, ignore_errors=True)
        for other in table_names(db):  # older versions of this (dataset, model, backend) are dropped once the new one serves
            if other != name and other.startswith(stale_prefix) and _backend_tag(other) == _backend_tag(name):
                db.drop_table(other)
    return table, vectors, BuildReport(what, False, time.perf_counter() - started, len(ids))


def open_vector_index(workspace: Workspace, dataset: Dataset, encoder: Encoder, rebuild: bool = False,
                      progress: ItemProgress | None = None) -> tuple[VectorIndex, BuildReport]:
    """The corpus embeddings of ``dataset`` under ``encoder``, computed once and then reused."""
    name = corpus_table_name(dataset, encoder)
    prefix = f"docs__{slug(dataset.name, 60)}__{slug(encoder.name, 40)}__"
    table, vectors, report = _open_or_build(workspace, name, [d.id for d in dataset.documents],
                                            [d.full_text for d in dataset.documents], encoder,
                                            f"embeddings ({encoder.name}) for {dataset.name}", rebuild, progress, prefix)
    return VectorIndex(table, vectors), report


def benchmark_query_vectors(workspace: Workspace, dataset: Dataset, encoder: Encoder,
                            progress: ItemProgress | None = None) -> tuple[dict[str, int], np.ndarray, BuildReport]:
    """Embeddings of all benchmark queries (cached in LanceDB): query id -> row, and the matrix."""
    name = query_table_name(dataset, encoder)
    prefix = f"queries__{slug(dataset.name, 60)}__{slug(encoder.name, 40)}__"
    _, vectors, report = _open_or_build(workspace, name, [q.id for q in dataset.queries], [q.text for q in dataset.queries],
                                        encoder, f"query embeddings ({encoder.name}) for {dataset.name}", False, progress, prefix)
    return {q.id: row for row, q in enumerate(dataset.queries)}, vectors, report
