"""Dense retrieval over normalised embeddings stored in LanceDB.

One table per (dataset, model) holds the corpus embeddings; its name carries the corpus content
hash and the model fingerprint, and its schema metadata repeats them, so a table is reused exactly
until the corpus text or the model changes. Benchmark query embeddings are cached the same way.

Under the tables lies the embedding cache (``EmbeddingCache``): every vector a model computed, keyed by
(model fingerprint, hash of the text). A table is assembled from it, and only texts it lacks are
encoded, so a text already embedded by that model, for any dataset or query set, is never encoded
again. The cache also serves as the checkpoints of a build: each encoded chunk is written to it at
once, under a content checksum that is verified whenever the chunk is read back.

Search is exact (a matrix product over the vectors held in memory) whatever the corpus size: it is the
reference every run uses. An ANN index is built only when asked (``core.index.ann``), and a run made through
it carries its measured recall against this exact search.

A corpus is read as a stream (``Corpus.iter_documents``): a build holds the ids, the text keys, the vector
matrix and one chunk of texts, never the corpus's texts.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa

from core.data.corpus_store import Corpus
from core.data.datasets import Dataset
from core.index.encoders import Encoder
from core.errors import IndexCorruptError, ModelUnavailableError
from core.progress import ItemProgress
from core.index.lexical import BuildReport
from core.workspace import Workspace, replace_folder, slug

EMBED_CHUNK = 1024  # embeddings are written to the cache every chunk, so an interrupted build resumes
EMBED_CHUNK_ENV = "CODEIR_EMBED_CHUNK"  # overrides EMBED_CHUNK (tests use small chunks to interrupt a build mid-way)
META_KEY = b"codeir"


@dataclass(frozen=True)
class DenseHits:
    """Row numbers and cosine scores, one row per query, best first."""

    rows: np.ndarray    # (queries, k) int64
    scores: np.ndarray  # (queries, k) float32


def top_k(scores: np.ndarray, k: int) -> DenseHits:
    """Exact top-k per row of a (queries, docs) score matrix; ties broken by lower row number, at the cut too."""
    n_docs = scores.shape[1]
    k = min(k, n_docs)
    if k == 0:
        return DenseHits(np.empty((scores.shape[0], 0), np.int64), np.empty((scores.shape[0], 0), np.float32))
    if k < n_docs:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        _prefer_lower_rows_among_ties_at_the_cut(scores, candidates)
    else:
        candidates = np.tile(np.arange(n_docs), (scores.shape[0], 1))
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    rows = np.take_along_axis(candidates, order, axis=1)
    return DenseHits(rows.astype(np.int64), np.take_along_axis(candidate_scores, order, axis=1))


def _prefer_lower_rows_among_ties_at_the_cut(scores: np.ndarray, candidates: np.ndarray) -> None:
    """Where more documents tie at the k-th score than fit, keep the lowest rows (argpartition keeps any of them)."""
    kept_scores = np.take_along_axis(scores, candidates, axis=1)
    kth = kept_scores.min(axis=1)
    tied = (scores == kth[:, None]).sum(axis=1)
    tied_kept = (kept_scores == kth[:, None]).sum(axis=1)
    for i in np.flatnonzero(tied > tied_kept):
        above = np.flatnonzero(scores[i] > kth[i])
        at_cut = np.flatnonzero(scores[i] == kth[i])[:candidates.shape[1] - len(above)]
        candidates[i] = np.concatenate([above, at_cut])


SCORE_CHUNK_DOCS = 16_384  # documents converted to float64 at a time: a bounded copy, whatever the corpus size
SCREEN_BLOCK_SCORES = 8_388_608  # float32 screen scores held at once by exact_top_k (32 MiB): queries per block = this / docs


def dot_scores(queries: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """Dot products of each query with each document, as float32, the same whatever other queries share the batch.

    A float32 matrix product rounds each score differently with the batch's shape and a query's position in it
    (BLAS kernels block the rows), so one query ranked alone, in a run, or in a Ray task of 15 queries got scores a
    few ulps apart. Accumulated in float64 (a product of two float32 values is exact there) and rounded once,
    a score depends only on its two vectors, up to a float64 rounding tie (about one score in 10^8).
    """
    queries64 = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    scores = np.empty((len(queries64), len(documents)), dtype=np.float32)
    for start in range(0, len(documents), SCORE_CHUNK_DOCS):
        chunk = np.asarray(documents[start:start + SCORE_CHUNK_DOCS], dtype=np.float64)
        scores[:, start:start + len(chunk)] = queries64 @ chunk.T
    return scores


def float32_dot_error_bound(query_norm: float, max_document_norm: float, dims: int) -> float:
    """Largest gap between a float32 dot product, summed in any order with or without FMA, and the exact one.

    |fl(q.d) - q.d| <= gamma_n |q|.|d| <= gamma_n ||q|| ||d||, with gamma_n = n u / (1 - n u) and u = 2^-24
    (Higham, Accuracy and Stability of Numerical Algorithms, section 3.1): true for every BLAS kernel and batch shape.
    """
    unit = 2.0 ** -24
    gamma = dims * unit / (1.0 - dims * unit)
    return gamma * float(query_norm) * float(max_document_norm)


def max_row_norm(vectors: np.ndarray) -> float:
    """The largest Euclidean norm of a row, computed in float64 chunk by chunk (a bounded copy)."""
    largest = 0.0
    for start in range(0, len(vectors), SCORE_CHUNK_DOCS):
        chunk = np.asarray(vectors[start:start + SCORE_CHUNK_DOCS], dtype=np.float64)
        if len(chunk):
            largest = max(largest, float(np.sqrt(np.einsum("ij,ij->i", chunk, chunk).max())))
    return largest


def exact_top_k(queries: np.ndarray, documents: np.ndarray, k: int, max_document_norm: float | None = None) -> DenseHits:
    """``top_k(dot_scores(queries, documents), k)``, the same rows and scores to the bit, at the cost of a float32 product.

    A float32 product screens every document; its error is bounded (``float32_dot_error_bound``), so every
    document that can belong to the exact top k scores within twice the bound of the screen's k-th score. Only
    those candidates are scored again in float64 (``dot_scores``) and ranked with ``top_k``'s tie rule. A query
    whose screen holds a NaN, or a k close to the corpus size, is scored exactly throughout. (As in ``dot_scores``,
    "to the bit" holds up to a float64 rounding tie, about one score in 10^8.)
    """
    queries32 = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    n_docs = len(documents)
    k = min(k, n_docs)
    if k <= 0 or len(queries32) == 0 or 4 * k >= n_docs:
        return top_k(dot_scores(queries32, documents), k)
    if max_document_norm is None:
        max_document_norm = max_row_norm(documents)
    rows = np.empty((len(queries32), k), np.int64)
    scores = np.empty((len(queries32), k), np.float32)
    block = max(1, SCREEN_BLOCK_SCORES // n_docs)
    query_norms = np.sqrt(np.einsum("ij,ij->i", queries32.astype(np.float64), queries32.astype(np.float64)))
    for i, query in enumerate(queries32):
        if i % block == 0:  # a matrix product screens a block of queries at once: a bounded (block, docs) matrix
            screens = queries32[i:i + block] @ documents.T
            kths = np.partition(screens, n_docs - k, axis=1)[:, n_docs - k]
        screen, kth = screens[i % block], float(kths[i % block])
        bound = float32_dot_error_bound(query_norms[i], max_document_norm, documents.shape[1])
        if not (np.isfinite(kth) and np.isfinite(bound)) or np.isnan(screen).any():
            best = top_k(dot_scores(query, documents), k)
            rows[i], scores[i] = best.rows[0], best.scores[0]
            continue
        # the exact k-th score is at least kth - bound (less a float32 rounding), and a document at or above it
        # screens at least bound lower again; four float32 spacings cover both roundings to float32
        margin = 2 * bound + 4 * float(np.spacing(np.float32(abs(kth) + bound)))
        candidates = np.flatnonzero(screen >= kth - margin)
        exact = dot_scores(query, documents[candidates])[0]
        best = np.lexsort((candidates, -exact))[:k]  # candidates ascend, so ties go to the lower row as in top_k
        rows[i], scores[i] = candidates[best], exact[best]
    return DenseHits(rows, scores)


class VectorIndex:
    """Corpus embeddings for one (dataset, model), searched exactly; ``core.index.ann`` adds an ANN index on request.

    ``checksum`` is the table's CRC-32 of ids and vectors: what an ANN index and its measured recall are keyed by.
    """

    def __init__(self, table, vectors: np.ndarray, checksum: str = ""):
        self.table = table
        self.vectors = vectors
        self.checksum = checksum
        self._max_norm: float | None = None

    @property
    def max_norm(self) -> float:
        """The largest vector norm, computed on first use (it bounds the float32 screen's error in exact_top_k)."""
        if self._max_norm is None:
            self._max_norm = max_row_norm(self.vectors)
        return self._max_norm

    def search(self, query_vectors: np.ndarray, k: int = 100) -> DenseHits:
        """The exact top ``k`` of each query (``exact_top_k``): every run's reference, whatever the corpus size."""
        query_vectors = np.atleast_2d(np.asarray(query_vectors, dtype=np.float32))
        return exact_top_k(query_vectors, self.vectors, k, self.max_norm)


def _connect(workspace: Workspace):
    return lancedb.connect(str(workspace.vectors_dir))


def table_names(db) -> list[str]:
    listing = db.list_tables() if hasattr(db, "list_tables") else db.table_names()
    names = getattr(listing, "tables", listing)
    return list(names)


def _name_part(text: str, limit: int) -> str:
    """A readable, table-safe piece of a name that never holds the ``__`` separator."""
    return re.sub(r"_{2,}", "_", slug(text, limit)).strip("_") or "x"


def table_key(kind: str, dataset_name: str, model_name: str) -> str:
    """A short hash of the exact (kind, dataset, model) names.

    Readable slugs alone collide (``tiny`` and ``tiny-`` share one, and ``tiny`` + ``__minilm`` used to
    read as a prefix of ``tiny__minilm``); the key tells them apart, so stale-table cleanup drops only
    older versions of the very same (dataset, model).
    """
    return hashlib.sha256(f"{kind}\x00{dataset_name}\x00{model_name}".encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _table_name(kind: str, dataset_name: str, model_name: str, content_hash: str, fingerprint: str) -> str:
    return (f"{kind}__{_name_part(dataset_name, 48)}__{_name_part(model_name, 32)}__{table_key(kind, dataset_name, model_name)}"
            f"__{content_hash[:12]}__{fingerprint[:24]}")


def corpus_table_name(dataset: Corpus, encoder: Encoder) -> str:
    return _table_name("docs", dataset.name, encoder.name, dataset.corpus_hash, encoder.fingerprint)


def query_table_name(dataset: Dataset, encoder: Encoder) -> str:
    return _table_name("queries", dataset.name, encoder.name, dataset.queries_hash, encoder.fingerprint)


def is_stale_version(other: str, name: str) -> bool:
    """Whether table ``other`` is an older version (another corpus or model build) of table ``name``.

    Same kind and same exact (dataset, model) key, same backend; names are compared field by field
    (no field holds ``__``), never by prefix.
    """
    mine, theirs = name.split("__"), other.split("__")
    return (other != name and len(theirs) == len(mine) == 6 and theirs[0] == mine[0] and theirs[3] == mine[3]
            and _backend_tag(other) == _backend_tag(name))


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


READ_BATCH_ROWS = 65_536  # rows read from a table at a time: opening one holds its matrix and one batch, not a second copy


def read_checked_table(db, name: str, expected: dict) -> tuple[object, np.ndarray, list[str]]:
    """Open a table and verify it is complete and matches; raise IndexCorruptError when not.

    Read batch by batch into the matrix, each row at its ``row`` number (any write order): the peak is the
    matrix and one batch (1M x 384 opens in ~1.6 GiB, not ~3).
    """
    try:
        table = db.open_table(name)
        meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
        if any(meta.get(key) != value for key, value in expected.items()):
            raise IndexCorruptError(f"Vector table {name} is stale.")
        count, dim = expected["count"], expected["dim"]
        if table.count_rows() != count:
            raise IndexCorruptError(f"Vector table {name} holds {table.count_rows()} rows, expected {count}.")
        if table.schema.field("vector").type.list_size != dim:
            raise IndexCorruptError(f"Vector table {name} has damaged vectors.")
        vectors = np.empty((count, dim), dtype=np.float32)
        ids: list = [None] * count
        seen = np.zeros(count, dtype=bool)
        start = 0
        for batch in table.to_lance().to_batches(columns=["row", "id", "vector"], batch_size=READ_BATCH_ROWS, scan_in_order=True):
            rows = batch.column("row").to_numpy()
            if len(rows) == 0:
                continue
            if start + len(rows) > count or rows.min() < 0 or rows.max() >= count or seen[rows].any() or len(np.unique(rows)) != len(rows):
                raise IndexCorruptError(f"Vector table {name} has damaged row numbers.")
            part = batch.column("vector").flatten().to_numpy(zero_copy_only=False).reshape(len(rows), dim)
            if not np.isfinite(part).all():
                raise IndexCorruptError(f"Vector table {name} has damaged vectors.")
            batch_ids = batch.column("id").to_pylist()
            if rows[0] == start and rows[-1] == start + len(rows) - 1 and np.all(np.diff(rows) == 1):
                vectors[start:start + len(rows)] = part  # written in row order: the common case
                ids[start:start + len(rows)] = batch_ids
            else:
                vectors[rows] = part
                for row, doc_id in zip(rows.tolist(), batch_ids):
                    ids[row] = doc_id
            seen[rows] = True
            start += len(rows)
        if start != count or not seen.all():
            raise IndexCorruptError(f"Vector table {name} has damaged row numbers.")
        # tables written before checksums were recorded carry none; they are still accepted
        if "checksum" in meta and meta["checksum"] != _checksum(ids, vectors):
            raise IndexCorruptError(f"Vector table {name} does not match its checksum (a data file is damaged).")
        return table, vectors, ids
    except IndexCorruptError:
        raise
    except Exception as exc:  # lance raises many kinds of errors on missing or truncated files
        raise IndexCorruptError(f"Vector table {name} cannot be read ({type(exc).__name__}: {exc}).") from exc


def table_checksum(table, ids: Sequence[str], vectors: np.ndarray) -> str:
    """The checksum recorded in a table's metadata, or computed from its ids and vectors for a table that has none."""
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    return meta.get("checksum") or _checksum(ids, vectors)


def text_key(text: str) -> bytes:
    """The cache key of one text: 16 bytes of BLAKE2b over its UTF-8 bytes (lone surrogates kept as they are)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _shard_digest(keys: np.ndarray, vectors: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(keys, dtype=np.uint8))
    digest.update(np.ascontiguousarray(vectors, dtype=np.float32))
    return digest.hexdigest()


class EmbeddingCache:
    """Every vector one model computed in a workspace, keyed by the hash of its text.

    One folder per model fingerprint holds immutable shards (``<checksum>.npz``: the text keys and their
    vectors), each written atomically as soon as its chunk is encoded. The file name is the BLAKE2b
    checksum of the shard's keys and vectors, recomputed whenever a shard is used: a damaged or rewritten
    shard (even with finite, plausible values) is deleted and its texts encoded again. Concurrent builders
    only ever add files, so they need no lock.
    """

    def __init__(self, folder: Path, dim: int):
        self.folder = folder
        self.dim = dim
        self.rejected: list[str] = []  # shards that failed their check (deleted), for reports and tests

    @classmethod
    def for_encoder(cls, workspace: Workspace, encoder: Encoder) -> "EmbeddingCache":
        return cls(embedding_cache_dir(workspace) / slug(encoder.fingerprint, 80), encoder.dim)

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []

    def _read(self, path: Path, with_vectors: bool) -> tuple[np.ndarray, np.ndarray | None] | None:
        try:
            with np.load(path, allow_pickle=False) as shard:
                keys = shard["keys"]
                vectors = shard["vectors"] if with_vectors else None
        except Exception:  # truncated, not a zip, missing members: the shard is unusable
            return None
        if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != 16:
            return None
        if vectors is not None:
            if (vectors.dtype != np.float32 or vectors.shape != (len(keys), self.dim) or not np.isfinite(vectors).all()
                    or _shard_digest(keys, vectors) != path.stem.split("-")[0]):
                return None
        return keys, vectors

    def _reject(self, path: Path) -> None:
        self.rejected.append(path.name)
        path.unlink(missing_ok=True)

    def fill(self, keys: Sequence[bytes], out: np.ndarray) -> np.ndarray:
        """Copy the cached vector of each key into ``out`` (same row); return the mask of rows found.

        Only shards holding a wanted key have their vectors read, and each is verified before use.
        """
        wanted: dict[bytes, list[int]] = {}
        for row, key in enumerate(keys):
            wanted.setdefault(key, []).append(row)
        found = np.zeros(len(keys), dtype=bool)
        for path in self.shards():
            if not wanted:
                break
            head = self._read(path, with_vectors=False)
            if head is None:
                self._reject(path)
                continue
            hits = [(i, key) for i, key in enumerate(map(bytes, head[0])) if key in wanted]
            if not hits:
                continue
            shard = self._read(path, with_vectors=True)
            if shard is None:
                self._reject(path)
                continue
            vectors = shard[1]
            for i, key in hits:
                rows = wanted.pop(key, None)
                if rows is not None:
                    out[rows] = vectors[i]
                    found[rows] = True
        return found

    def held(self, keys: Sequence[bytes]) -> np.ndarray:
        """The mask of keys some readable shard holds; only keys are read (``fill`` checks vectors when they are used)."""
        wanted, found = set(keys), set()
        for path in self.shards():
            head = self._read(path, with_vectors=False)
            if head is not None:
                found.update(key for key in map(bytes, head[0]) if key in wanted)
        return np.fromiter((key in found for key in keys), dtype=bool, count=len(keys))

    def forget(self, texts: Sequence[str]) -> None:
        """Delete every shard holding one of ``texts``, so they are encoded again."""
        self.forget_keys({text_key(text) for text in texts})

    def forget_keys(self, keys: set[bytes]) -> None:
        """Delete every shard holding one of these text keys (``text_key``)."""
        for path in self.shards():
            head = self._read(path, with_vectors=False)
            if head is None or any(bytes(key) in keys for key in head[0]):
                path.unlink(missing_ok=True)

    def add(self, keys: Sequence[bytes], vectors: np.ndarray) -> Path:
        """Write one shard (atomically: a temporary file renamed into place)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        path = self.folder / f"{_shard_digest(key_array, vectors)}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.folder / f".{path.name}.tmp"  # not *.npz: never listed as a shard
        with tmp.open("wb") as handle:
            np.savez(handle, keys=key_array, vectors=vectors)
        tmp.replace(path)
        return path


def embedding_cache_dir(workspace: Workspace) -> Path:
    """``indexes/embeddings/``: the embedding cache, one folder per model fingerprint."""
    return workspace.vectors_dir.parent / "embeddings"


def check_finite_vectors(vectors: np.ndarray, model_name: str) -> None:
    """Refuse vectors holding a NaN or an infinity before they are cached or stored, naming the model that made them.

    A model with damaged weights (a diverged fine-tuning run, say) encodes every text to NaN; stored, such a
    table made LanceDB fail later with a message that named no model.
    """
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise ModelUnavailableError(
            f"Model {model_name!r} produced non-finite vectors (NaN or infinity) for {int((~finite).sum())} of {len(vectors)} "
            f"texts: its weights are damaged. Nothing was stored; train or copy the model again, or pick another one.")


@dataclass(frozen=True)
class RowSource:
    """What a table is built from: its row count, and a fresh stream of (id, text) pairs in row order on each call.

    A build streams it twice at most (keys first, then only the texts the cache lacks), so a corpus read from
    disk (a ``CorpusStore``) is never held whole.
    """

    count: int
    stream: Callable[[], Iterator[tuple[str, str]]]

    @classmethod
    def of_corpus(cls, corpus: Corpus) -> "RowSource":
        return cls(corpus.num_docs, lambda: ((d.id, d.full_text) for d in corpus.iter_documents()))

    @classmethod
    def of_pairs(cls, pairs: Sequence[tuple[str, str]]) -> "RowSource":
        return cls(len(pairs), lambda: iter(pairs))


def _embed_streamed(source: RowSource, encoder: Encoder, cache: EmbeddingCache, progress: ItemProgress | None,
                    forget: bool = False) -> tuple[list[str], np.ndarray, int]:
    """Ids and vectors of ``source`` in row order, and how many vectors came from the cache.

    A first pass keeps each row's id and text key; the cache fills what it holds; a second pass encodes the texts
    it lacks (each distinct text once) in chunks, every chunk written to the cache as it is done: an interrupted
    build resumes from there, whatever chunk size the next run uses. ``forget`` (a rebuild) drops the texts'
    cached vectors first.
    """
    ids: list[str] = []
    keys: list[bytes] = []
    for doc_id, text in source.stream():
        ids.append(doc_id)
        keys.append(text_key(text))
    if len(ids) != source.count:
        raise IndexCorruptError(f"The corpus streamed {len(ids):,} rows but says it holds {source.count:,}: reopen or rebuild it.")
    if forget:
        cache.forget_keys(set(keys))
    vectors = np.empty((len(ids), encoder.dim), dtype=np.float32)
    found = cache.fill(keys, vectors)
    first_row: dict[bytes, int] = {}
    for row in np.flatnonzero(~found).tolist():
        first_row.setdefault(keys[row], row)
    wanted = np.zeros(len(ids), dtype=bool)
    wanted[list(first_row.values())] = True
    total, done = len(ids), len(ids) - len(first_row)
    if progress:
        progress("embed", done, total)
    size = embed_chunk_size()
    chunk_rows: list[int] = []
    chunk_texts: list[str] = []

    def encode_chunk() -> None:
        nonlocal done
        chunk = encoder.encode(chunk_texts)
        check_finite_vectors(chunk, encoder.name)
        cache.add([keys[row] for row in chunk_rows], chunk)
        vectors[chunk_rows] = chunk
        done += len(chunk_rows)
        chunk_rows.clear()
        chunk_texts.clear()
        if progress:
            progress("embed", done, total)

    if first_row:
        for row, (_, text) in enumerate(source.stream()):
            if row >= total or (wanted[row] and text_key(text) != keys[row]):
                raise IndexCorruptError(f"The corpus changed while it was embedded (row {row}): build again.")
            if wanted[row]:
                chunk_rows.append(row)
                chunk_texts.append(text)
                if len(chunk_rows) == size or done + len(chunk_rows) == total:
                    encode_chunk()
                if done == total:  # the rest is in the cache: no need to read it
                    break
        if done != total:
            raise IndexCorruptError("The corpus changed while it was embedded (rows went missing): build again.")
        duplicates = np.flatnonzero(~found & ~wanted)  # repeated texts take the vector of their first occurrence
        source_rows = np.array([first_row[keys[row]] for row in duplicates.tolist()], dtype=np.int64)
        vectors[duplicates] = vectors[source_rows]
    return ids, vectors, int(found.sum())


def remember_vectors(workspace: Workspace, encoder: Encoder, texts: Sequence[str], vectors: np.ndarray,
                     replace: bool = False) -> int:
    """Add vectors computed outside this module (a Ray build) to the embedding cache; return how many texts were added.

    Only texts the cache lacks are added, each distinct text once, in shards of the build's chunk size, so
    a later single-process build of any dataset sharing these texts encodes none of them. ``replace``
    (a rebuild) first drops the texts' cached vectors, as ``open_vector_index(..., rebuild=True)`` does.
    """
    check_finite_vectors(vectors, encoder.name)
    cache = EmbeddingCache.for_encoder(workspace, encoder)
    if replace:
        cache.forget(texts)
    keys = [text_key(text) for text in texts]
    found = cache.held(keys)  # keys only: a second copy of every vector would double a large corpus's memory
    first_row: dict[bytes, int] = {}
    for row in np.flatnonzero(~found).tolist():
        first_row.setdefault(keys[row], row)
    missing = list(first_row.values())
    size = embed_chunk_size()
    for start in range(0, len(missing), size):
        rows = missing[start:start + size]
        cache.add([keys[row] for row in rows], vectors[rows])
    return len(missing)


def _drop_damaged(db, workspace: Workspace, name: str) -> None:
    """Remove a table that failed its check, so the rebuild writes a fresh one.

    ``create_table(mode="overwrite")`` reads the latest manifest first and fails when that manifest
    is the damaged part; the table holds nothing worth keeping, so it goes before the rebuild.
    """
    try:
        db.drop_table(name)
    except Exception:  # lance cannot always drop what it cannot read
        shutil.rmtree(workspace.vectors_dir / f"{name}.lance", ignore_errors=True)


def _verify_written(db, name: str, ids: Sequence[str], vectors: np.ndarray, expected: dict):
    """The table just written, compared batch by batch with the matrix it was written from (no second matrix)."""
    try:
        table = db.open_table(name)
        meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
        if any(meta.get(key) != value for key, value in expected.items()) or table.count_rows() != len(ids):
            raise IndexCorruptError(f"Vector table {name} was not written as asked.")
        start = 0
        for batch in table.to_lance().to_batches(columns=["row", "id", "vector"], batch_size=READ_BATCH_ROWS, scan_in_order=True):
            stop = start + batch.num_rows
            part = batch.column("vector").flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, -1)
            if (stop > len(ids) or not np.array_equal(batch.column("row").to_numpy(), np.arange(start, stop))
                    or batch.column("id").to_pylist() != list(ids[start:stop]) or not np.array_equal(part, vectors[start:stop])):
                raise IndexCorruptError(f"Vector table {name} does not read back as it was written.")
            start = stop
        if start != len(ids):
            raise IndexCorruptError(f"Vector table {name} does not read back as it was written.")
        return table
    except IndexCorruptError:
        raise
    except Exception as exc:  # lance raises many kinds of errors on missing or truncated files
        raise IndexCorruptError(f"Vector table {name} cannot be read back ({type(exc).__name__}: {exc}).") from exc


def write_table(workspace: Workspace, name: str, ids: Sequence[str], vectors: np.ndarray, expected: dict):
    """Write (row, id, vector) as table ``name`` with ``expected`` and the checksum in its metadata, check it, and drop
    older versions of it; the caller holds the table's lock. Returns the table, which serves ``vectors`` itself."""
    db = _connect(workspace)
    db.create_table(name, record_batches(vectors_to_arrow(ids, vectors, expected)), mode="overwrite")  # Arrow views the matrix
    table = _verify_written(db, name, ids, vectors, expected)
    # checkpoints of the layout before the cache (.partial/<table>/) are never reused: they carried no checksum
    shutil.rmtree(workspace.vectors_dir / ".partial" / name, ignore_errors=True)
    for other in table_names(db):  # older versions of this (dataset, model, backend) are dropped once the new one serves
        if is_stale_version(other, name):
            db.drop_table(other)
    return table


def _open_or_build(workspace: Workspace, name: str, source: RowSource, encoder: Encoder, what: str, rebuild: bool,
                   progress: ItemProgress | None) -> tuple[object, np.ndarray, str, BuildReport]:
    """The table ``name`` (opened and checked, or built from ``source``), its vectors, its checksum and a report."""
    db = _connect(workspace)
    expected = {"fingerprint": encoder.fingerprint, "count": source.count, "dim": encoder.dim}
    started = time.perf_counter()
    if not rebuild and name in table_names(db):
        try:
            table, vectors, ids = read_checked_table(db, name, expected)
            return table, vectors, table_checksum(table, ids, vectors), BuildReport(what, True, time.perf_counter() - started, source.count)
        except IndexCorruptError:
            pass
    with workspace.lock(name):
        db = _connect(workspace)
        if not rebuild and name in table_names(db):
            try:
                table, vectors, ids = read_checked_table(db, name, expected)
                return table, vectors, table_checksum(table, ids, vectors), BuildReport(what, True, time.perf_counter() - started, source.count)
            except IndexCorruptError:
                _drop_damaged(db, workspace, name)
        cache = EmbeddingCache.for_encoder(workspace, encoder)
        # a rebuild means "compute again": this table's texts leave the cache first
        ids, vectors, cached = _embed_streamed(source, encoder, cache, progress, forget=rebuild)
        if progress:
            progress("store", 0, len(ids))
        table = write_table(workspace, name, ids, vectors, expected)
        if progress:
            progress("store", len(ids), len(ids))
    return table, vectors, table_checksum(table, ids, vectors), BuildReport(what, False, time.perf_counter() - started, len(ids), cached=cached)


def open_vector_index(workspace: Workspace, dataset: Corpus, encoder: Encoder, rebuild: bool = False,
                      progress: ItemProgress | None = None) -> tuple[VectorIndex, BuildReport]:
    """The corpus embeddings of ``dataset`` (any ``Corpus``: a Dataset or a CorpusStore) under ``encoder``, computed
    once and then reused; the corpus is streamed, never held."""
    name = corpus_table_name(dataset, encoder)
    table, vectors, checksum, report = _open_or_build(workspace, name, RowSource.of_corpus(dataset), encoder,
                                                      f"embeddings ({encoder.name}) for {dataset.name}", rebuild, progress)
    return VectorIndex(table, vectors, checksum), report


def benchmark_query_vectors(workspace: Workspace, dataset: Dataset, encoder: Encoder,
                            progress: ItemProgress | None = None) -> tuple[dict[str, int], np.ndarray, BuildReport]:
    """Embeddings of all benchmark queries (cached in LanceDB): query id -> row, and the matrix."""
    name = query_table_name(dataset, encoder)
    _, vectors, _, report = _open_or_build(workspace, name, RowSource.of_pairs([(q.id, q.text) for q in dataset.queries]),
                                           encoder, f"query embeddings ({encoder.name}) for {dataset.name}", False, progress)
    return {q.id: row for row, q in enumerate(dataset.queries)}, vectors, report


# ---- corpus tables written by another process (core/index/distributed.py writes them with Ray) ----------------

def corpus_table_schema(dim: int) -> pa.Schema:
    """The columns of a corpus table as a writer outside this module must produce them: row, id, vector."""
    return pa.schema([("row", pa.int64()), ("id", pa.string()), ("vector", pa.list_(pa.float32(), dim))])


def open_current_corpus_table(workspace: Workspace, dataset: Dataset, encoder: Encoder) -> VectorIndex | None:
    """The corpus table of (dataset, encoder) when it exists and passes its checks, else None (nothing is built)."""
    db = _connect(workspace)
    name = corpus_table_name(dataset, encoder)
    if name not in table_names(db):
        return None
    try:
        table, vectors, ids = read_checked_table(db, name, {"fingerprint": encoder.fingerprint, "count": len(dataset.documents),
                                                            "dim": encoder.dim})
    except IndexCorruptError:
        return None
    return VectorIndex(table, vectors, table_checksum(table, ids, vectors))


def adopt_corpus_table(workspace: Workspace, dataset: Dataset, encoder: Encoder, staged: Path,
                       started: float | None = None) -> tuple[VectorIndex, BuildReport]:
    """Make a Lance dataset of (row, id, vector) written elsewhere the corpus table of (dataset, encoder).

    The staged dataset must hold every row exactly once with the corpus ids; it is stamped with the
    metadata and checksum the engine verifies, and moved into place by a rename, so until then the previous
    table keeps serving.
    """
    import lance

    started = time.perf_counter() if started is None else started
    name = corpus_table_name(dataset, encoder)
    ids = list(getattr(dataset, "doc_ids", None) or [d.id for d in dataset.iter_documents()])
    expected = {"fingerprint": encoder.fingerprint, "count": len(ids), "dim": encoder.dim}
    staged_dataset = lance.dataset(str(staged))
    if staged_dataset.schema.field("vector").type.list_size != expected["dim"]:
        raise IndexCorruptError(f"The staged table {staged} has vectors of the wrong dimension.")
    # read batch by batch into the one matrix, each row at its row number (Ray writes blocks in any order)
    vectors = np.empty((len(ids), expected["dim"]), dtype=np.float32)
    seen = np.zeros(len(ids), dtype=bool)
    for batch in staged_dataset.to_batches(columns=["row", "id", "vector"], batch_size=READ_BATCH_ROWS):
        rows = batch.column("row").to_numpy()
        if len(rows) and (rows.min() < 0 or rows.max() >= len(ids) or seen[rows].any() or len(np.unique(rows)) != len(rows)):
            raise IndexCorruptError(f"The staged table {staged} holds rows outside the corpus's {len(ids)} or some twice, "
                                    f"not each row once.")
        if batch.column("id").to_pylist() != [ids[row] for row in rows.tolist()]:
            raise IndexCorruptError(f"The staged table {staged} has ids that do not match the corpus rows.")
        vectors[rows] = batch.column("vector").flatten().to_numpy(zero_copy_only=False).reshape(len(rows), expected["dim"])
        seen[rows] = True
    if not seen.all():
        raise IndexCorruptError(f"The staged table {staged} holds {int(seen.sum())} of the corpus's {len(ids)} rows, "
                                f"not each row once.")
    check_finite_vectors(vectors, encoder.name)
    staged_dataset.update_schema_metadata({META_KEY.decode(): json.dumps({**expected, "checksum": _checksum(ids, vectors)})})
    del vectors  # read back below, checksum verified: one matrix at a time
    target = workspace.vectors_dir / f"{name}.lance"
    with workspace.lock(name):
        replace_folder(staged, target)  # a rebuild: the old table steps aside only once the new one is complete
        db = _connect(workspace)
        table, vectors, ids = read_checked_table(db, name, expected)
        for other in table_names(db):  # as after a single-process build: older versions of this (dataset, model, backend) go
            if is_stale_version(other, name):
                db.drop_table(other)
    report = BuildReport(f"embeddings ({encoder.name}) for {dataset.name}", False, time.perf_counter() - started, len(ids))
    return VectorIndex(table, vectors, table_checksum(table, ids, vectors)), report
