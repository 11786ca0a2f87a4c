"""Corpus embedding on Ray Data: the corpus streams in blocks through a pool of embedding actors into Lance.

The same call runs on a local Ray started in this process (a laptop) and on a cluster (``address``). A corpus
kept in its corpus store is read by Ray Data's own tasks from the store's Lance files; the vectors are written by
lance-ray into a staging folder beside the tables. Adoption then reads that table back in batches (rows and ids
checked against the corpus, the checksum computed, the embedding cache fed) and renames it into place: the result
is the very table the single-process build writes (same name, columns, metadata and checksum), the driver never
holds the corpus's texts or vectors, and an interrupted job leaves the previous table serving.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa

from core.data.corpus_store import LANCE_DIR, Corpus, CorpusStore
from core.errors import ClusterError, IndexCorruptError, WorkbenchError
from core.index.encoders import THREADS_ENV, Encoder, load_encoder
from core.index.lexical import BuildReport
from core.index.vectors import (META_KEY, EmbeddingCache, corpus_table_name, corpus_table_schema, embed_chunk_size,
                                is_stale_version, table_names, text_key)
from core.workspace import PROJECT_ROOT, Workspace, replace_folder

ROWS_PER_BLOCK = 512   # rows per Ray Data block: small enough that every actor gets even work (SCALE.md)
ENCODE_BATCH = 256     # rows per map_batches call inside an actor
READ_ROWS = 65_536     # rows of a staged table or corpus the driver reads at a time while adopting (~100 MB of vectors)
SOURCE_COLUMNS = ("row", "id", "text", "title")  # what the actors read; full_text is joined in the actor
ACTOR_RESTARTS = 3     # an actor that dies more often than this fails the job with a ClusterError
RAY_REMOTE_ARGS_DEPRECATION = r"`ray_remote_args` is deprecated"  # the start of Ray 2.60's warning (a regex)
INSTALL_HINT = "pip install 'ray[data]==2.60.0' lance-ray==0.5.0 pylance==13.0.0"


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray embedding job runs.

    ``address`` None starts a local Ray for this process (or uses the one it already joined);
    ``auto`` joins the cluster this machine belongs to; ``host:port`` or ``ray://host:port`` a remote one.
    """

    address: str | None = None
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    rows_per_block: int = ROWS_PER_BLOCK
    max_restarts: int = ACTOR_RESTARTS

    def check(self) -> None:
        if self.actors < 1:
            raise ClusterError(f"--actors must be at least 1, got {self.actors}.")
        # written so that NaN fails too (every comparison with NaN is false); infinity is no CPU count either
        if not 0 < self.cpus_per_actor < float("inf"):
            raise ClusterError(f"CPUs per actor must be a positive number, got {self.cpus_per_actor}.")
        if not 0 <= self.gpus_per_actor < float("inf"):
            raise ClusterError(f"GPUs per actor must be a number from 0 up (--gpus-per-actor), got {self.gpus_per_actor}.")
        if self.rows_per_block < 1:
            raise ClusterError(f"Rows per block must be at least 1, got {self.rows_per_block}.")


def import_ray():
    """The ray module, or a ClusterError that says how to install it."""
    try:
        import lance_ray  # noqa: F401  (the writer; checked here so a missing piece fails before any work)
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ClusterError(f"The Ray engine needs Ray Data and lance-ray ({exc.name} is missing): {INSTALL_HINT}.") from exc
    return ray


def _reachable(address: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:port`` (optionally ``ray://``) opens within ``timeout`` seconds."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not 'auto', 'host:port' or 'ray://host:port'.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def check_address(address: str | None) -> None:
    """Fail at once, with what to do, when a ``host:port`` address is malformed or nothing listens there."""
    if address not in (None, "", "local", "auto") and not _reachable(address):
        raise ClusterError(f"No Ray cluster answers at {address}: start one with `ray start --head` there, "
                           f"or check the address and port (the GCS port is 6379, the client port 10001).")


def connect(options: RayOptions):
    """Join (or start) the Ray the options name; return (ray, whether this call started it)."""
    ray = import_ray()
    options.check()
    address = options.address
    check_address(address)
    if (address or "").startswith("ray://"):
        try:
            import grpc  # noqa: F401  (Ray Client, which ray:// addresses use, is the ray[client] extra)
        except ImportError:
            raise ClusterError(f"{address} is a Ray Client address, which needs `pip install 'ray[client]==2.60.0'`; or run "
                               f"this command on a node of the cluster with --address auto.") from None
    if ray.is_initialized():  # a Ray this process already joined (a notebook, a test) is used as it is
        return ray, False
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    try:
        if address in (None, "", "local"):
            # "local" always starts a Ray for this process (plain ray.init() would join RAY_ADDRESS or the last `ray start`)
            ray.init(address="local", include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
        else:
            ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env})
    except Exception as exc:
        if _refused_for_token(exc):
            raise ClusterError(token_advice(address)) from None
        if isinstance(exc, ConnectionError):
            raise ClusterError(f"Cannot join the Ray cluster at {address}: {exc}".rstrip(".") + ". Start one with "
                               f"`ray start --head`, or leave the address out to run on this machine.") from exc
        raise
    return ray, True


def _refused_for_token(exc: BaseException) -> bool:
    """Whether Ray refused to connect for want of the cluster's token (Ray 2.60's token authentication)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "AuthenticationError" or any(
                word in str(exc) for word in ("InvalidAuthToken", "Unauthenticated", "authentication token")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _token_source() -> str:
    """Where Ray takes this process's token from, in Ray's own order; '' when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH ({os.environ['RAY_AUTH_TOKEN_PATH']})"
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else ""


def token_advice(address: str | None) -> str:
    """What to do when a cluster refuses this process for want of its token (docs/scale.md, "Running it on a real cluster")."""
    where = f"The Ray cluster at {address or 'auto'}"
    how = ("`ray get-auth-token` on the head node prints the cluster's token; give it to this process as RAY_AUTH_TOKEN "
           "(or in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token)")
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return (f"{where} requires a token (token authentication): set RAY_AUTH_MODE=token and the token, then run the "
                f"command again; {how}.")
    source = _token_source()
    if not source:
        return f"{where} requires a token and RAY_AUTH_MODE=token is set, but this process has none: {how}."
    return f"{where} refused the token from {source}: it is not the cluster's token; {how}."


def check_capacity(ray, options: RayOptions) -> None:
    """Refuse a pool the cluster cannot hold: Ray would wait for ever for a CPU or GPU that never comes free."""
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    wanted = options.actors * options.cpus_per_actor
    # one CPU stays free for the tasks that read blocks and write Lance files (SCALE.md: otherwise the job hangs)
    if wanted > cpus - 1:
        raise ClusterError(f"{options.actors} actor(s) x {options.cpus_per_actor:g} CPU need {wanted:g} CPUs, but the cluster "
                           f"has {cpus:g} and one must stay free for reading and writing: use at most "
                           f"{max(int((cpus - 1) // options.cpus_per_actor), 0)} actor(s), fewer CPUs per actor, or a "
                           f"larger cluster.")
    if options.gpus_per_actor and options.actors * options.gpus_per_actor > gpus:
        raise ClusterError(f"{options.actors} actor(s) x {options.gpus_per_actor:g} GPU need "
                           f"{options.actors * options.gpus_per_actor:g} GPUs, but the cluster has {gpus:g}.")


class Embedder:
    """A Ray Data actor: loads the model once, then turns (row, id, text, title) batches into (row, id, vector, key).

    ``key`` is the embedding cache's key of each text (``text_key`` of ``Document.full_text``): adoption feeds the
    cache from it and drops it, so the driver never reads a text.
    """

    def __init__(self, model: str, backend: str, workspace_root: str, device: str, threads: int, counter=None):
        os.environ[THREADS_ENV] = str(threads)  # torch in this actor uses the CPUs Ray gave it, not every core
        if backend == "torch":
            import torch

            torch.set_num_threads(threads)
        self.encoder = load_encoder(model, Workspace(Path(workspace_root)), backend, device)
        self.dim = self.encoder.dim
        self.counter = counter

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = full_texts(batch)
        vectors = self.encoder.encode(texts)
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
        if self.counter is not None:
            self.counter.add.remote(batch.num_rows)
        return pa.table({"row": batch["row"], "id": batch["id"], "vector": pa.FixedSizeListArray.from_arrays(flat, self.dim),
                         "key": pa.array([text_key(text) for text in texts], pa.binary(16))})


class _RowCounter:
    """Rows embedded so far, summed over every actor (re-done rows of a restarted actor count again)."""

    def __init__(self):
        self.rows = 0

    def add(self, rows: int) -> None:
        self.rows += rows

    def value(self) -> int:
        return self.rows


def full_texts(batch: pa.Table) -> list[str]:
    """``Document.full_text`` of every row of a (text, title) batch: title and text joined by a newline, or the text alone."""
    return [f"{title}\n{text}" if title else text for text, title in zip(batch["text"].to_pylist(), batch["title"].to_pylist())]


def corpus_store_of(corpus: Corpus) -> CorpusStore | None:
    """The corpus store a corpus is read from (the store itself, or a Dataset opened from its store), else None."""
    if isinstance(corpus, CorpusStore):
        return corpus
    store = getattr(getattr(corpus, "documents", None), "store", None)
    return store if isinstance(store, CorpusStore) else None


def corpus_blocks(corpus: Corpus, rows_per_block: int) -> list[pa.Table]:
    """A corpus held in memory as (row, id, text, title) Arrow tables of ``rows_per_block`` rows: Ray Data's input blocks."""
    documents = list(corpus.iter_documents())
    table = pa.table({"row": pa.array(np.arange(len(documents), dtype=np.int64)),
                      "id": pa.array([d.id for d in documents], pa.string()),
                      "text": pa.array([d.text for d in documents], pa.string()),
                      "title": pa.array([d.title for d in documents], pa.string())})
    return [table.slice(start, rows_per_block) for start in range(0, max(table.num_rows, 1), rows_per_block)]


def corpus_source(ray, corpus: Corpus, rows_per_block: int):
    """The corpus as a Ray Dataset of (row, id, text, title) in blocks of ``rows_per_block`` rows, in row order.

    A corpus kept in its store is read by Ray Data's read tasks from the store's Lance files, wherever they run:
    the driver never sees a text (every node must reach the workspace). A corpus held in memory (a small set)
    is handed over from the driver as Arrow blocks.
    """
    store = corpus_store_of(corpus)
    if store is not None:
        import lance_ray

        source = lance_ray.read_lance(str(store.folder / LANCE_DIR), columns=list(SOURCE_COLUMNS),
                                      scanner_options={"batch_size": rows_per_block})
    else:
        source = ray.data.from_arrow(corpus_blocks(corpus, rows_per_block))
    # repartition splits large read blocks (and from_arrow's single bundle) so every actor gets even work
    return source.repartition(target_num_rows_per_block=rows_per_block)


def _is_actor_death(exc: BaseException) -> bool:
    """Whether an exception (or one it wraps) says a Ray worker or actor died."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ in ("RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError",
                                  "OutOfMemoryError", "ObjectLostError"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def embed_corpus(workspace: Workspace, corpus: Corpus, encoder: Encoder, options: RayOptions, rebuild: bool = False,
                 progress: Callable[[float], None] | None = None) -> BuildReport:
    """Embed ``corpus`` on Ray into its corpus table under ``encoder``, unless that table is current (or ``rebuild``).

    ``corpus`` is a Dataset (its corpus held in memory or opened from its store) or a ``CorpusStore``. The engine
    then opens the table as its own (``core.index.vectors.open_vector_index`` finds it current).
    """
    started = time.perf_counter()
    what = f"embeddings ({encoder.name}) for {corpus.name}"
    if options.gpus_per_actor and getattr(encoder, "device", None) is None:
        raise ClusterError("GPU actors run the torch backend; the onnx backend runs on CPU actors only.")
    if not rebuild and corpus_table_is_current(workspace, corpus, encoder):
        return BuildReport(what, True, time.perf_counter() - started, corpus.num_docs)
    if getattr(encoder, "device", None) is None:
        encoder.encode(["warm up"])  # ONNX: export the model once here, not in every actor at the same time
    ray, started_here = connect(options)
    staged = workspace.vectors_dir / ".ray-staging" / f"{corpus_table_name(corpus, encoder)}-{uuid.uuid4().hex[:8]}.lance"
    try:
        check_capacity(ray, options)
        _run_pipeline(ray, workspace, corpus, encoder, options, staged, progress)
        adopt_staged_table(workspace, corpus, encoder, staged, rebuild=rebuild)
        return BuildReport(what, False, time.perf_counter() - started, corpus.num_docs)
    except WorkbenchError:
        raise
    except Exception as exc:
        if _is_actor_death(exc):
            raise ClusterError(f"An embedding worker kept dying ({options.max_restarts} restarts used up): the job was "
                               f"stopped and the previous table is unchanged. Common causes: too little memory per "
                               f"actor (lower --actors) or a node that left the cluster. Last error: "
                               f"{type(exc).__name__}.") from exc
        raise ClusterError(f"The Ray embedding job failed ({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}); "
                           f"the previous table is unchanged.") from exc
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        if started_here:
            ray.shutdown()


def _run_pipeline(ray, workspace: Workspace, corpus: Corpus, encoder: Encoder, options: RayOptions, staged: Path,
                  progress: Callable[[float], None] | None) -> None:
    """read blocks -> actor pool (encode) -> lance-ray write into ``staged``; progress polled from a counter actor."""
    import lance_ray
    from ray.data import DataContext

    DataContext.get_current().execution_options.preserve_order = True  # rows land in row order: adoption reads them in one pass
    DataContext.get_current().enable_progress_bars = progress is None
    counter = ray.remote(num_cpus=0)(_RowCounter).remote()
    embedded = _embedding_stage(corpus_source(ray, corpus, options.rows_per_block), workspace, encoder, options, counter)
    staged.parent.mkdir(parents=True, exist_ok=True)
    failure: list[BaseException] = []

    def write() -> None:
        try:
            lance_ray.write_lance(embedded, str(staged), schema=staged_table_schema(encoder.dim),
                                  min_rows_per_file=max(options.rows_per_block, 1024), mode="create")
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    writer = threading.Thread(target=write, name="lance-ray-writer", daemon=True)
    writer.start()
    total = max(corpus.num_docs, 1)
    while writer.is_alive():
        writer.join(0.5)
        if progress:
            progress(min(0.99, ray.get(counter.value.remote()) / total))
    if failure:
        raise failure[0]
    if progress:
        progress(1.0)


# ---- adoption: the staged table read back in batches, never gathered ----------------------------------------------

def _row_positions(dataset, count: int) -> np.ndarray | None:
    """Where each row number sits in the table's scan order, or None when the table is in row order (the usual case).

    Raises IndexCorruptError unless every row 0..count-1 is there exactly once. Only the ``row`` column is read; a
    table out of order costs one int64 per row.
    """
    if dataset.count_rows() != count:
        raise IndexCorruptError(f"The table at {dataset.uri} holds {dataset.count_rows():,} rows, not each of the corpus's "
                                f"{count:,} rows once.")
    position = 0
    for batch in dataset.to_batches(columns=["row"], batch_size=READ_ROWS, scan_in_order=True):
        rows = batch.column("row").to_numpy()
        if not np.array_equal(rows, np.arange(position, position + len(rows))):
            break
        position += len(rows)
    else:
        return None
    positions, seen, offset = np.full(count, -1, dtype=np.int64), np.zeros(count, dtype=bool), 0
    for batch in dataset.to_batches(columns=["row"], batch_size=READ_ROWS, scan_in_order=True):
        rows = batch.column("row").to_numpy()
        if len(rows) and (rows.min() < 0 or rows.max() >= count or seen[rows].any() or len(np.unique(rows)) != len(rows)):
            raise IndexCorruptError(f"The table at {dataset.uri} does not hold each of the corpus's {count:,} rows once.")
        seen[rows] = True
        positions[rows] = np.arange(offset, offset + len(rows))
        offset += len(rows)
    return positions


def _in_row_order(dataset, columns: list[str], positions: np.ndarray | None) -> Iterator[pa.RecordBatch | pa.Table]:
    """The table's ``columns`` in row order, ``READ_ROWS`` rows at a time (a scan, or takes where it is out of order)."""
    if positions is None:
        yield from dataset.to_batches(columns=columns, batch_size=READ_ROWS, scan_in_order=True)
        return
    for start in range(0, len(positions), READ_ROWS):
        yield dataset.take(positions[start:start + READ_ROWS], columns=columns)


def _matrix(batch: pa.RecordBatch | pa.Table, dim: int) -> np.ndarray:
    column = batch.column("vector")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), dim).astype(np.float32, copy=False)


def staged_table_schema(dim: int) -> pa.Schema:
    """What the Ray job writes: the corpus table's columns and each text's cache key (dropped on adoption)."""
    return corpus_table_schema(dim).append(pa.field("key", pa.binary(16)))


def _corpus_ids(corpus: Corpus) -> Iterator[str]:
    """The corpus's ids in row order; from a corpus store, its id column alone (its texts are never read here)."""
    store = corpus_store_of(corpus)
    if store is None:
        yield from (d.id for d in corpus.iter_documents())
        return
    position = 0
    for batch in store.dataset.to_batches(columns=["id", "row"], batch_size=READ_ROWS, scan_in_order=True):
        rows = batch.column("row").to_numpy()
        if not np.array_equal(rows, np.arange(position, position + len(rows))):
            raise IndexCorruptError(f"Corpus store {store.folder} has rows out of order at row {position:,}: rebuild it with "
                                    f"`python -m core store-corpus --dataset {store.name} --rebuild`.")
        position += len(rows)
        yield from batch.column("id").to_pylist()


def _key_matrix(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """The ``key`` column as a (rows, 16) uint8 matrix."""
    column = batch.column("key")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise IndexCorruptError("The staged table has rows without a cache key.")
    return np.frombuffer(column.buffers()[1], dtype=np.uint8)[column.offset * 16:(column.offset + len(column)) * 16].reshape(-1, 16)


def _ids_checksum(dataset, positions: np.ndarray | None, corpus: Corpus) -> int:
    """CRC-32 of the table's ids in row order (as ``_checksum`` starts it), after checking each against the corpus."""
    corpus_ids = _corpus_ids(corpus)
    crc, row = 0, 0
    for batch in _in_row_order(dataset, ["id"], positions):
        ids = batch.column("id").to_pylist()
        if list(islice(corpus_ids, len(ids))) != ids:
            raise IndexCorruptError(f"The table at {dataset.uri} has ids that do not match the corpus rows "
                                    f"(first difference at or after row {row:,}).")
        crc = zlib.crc32((("\x1f" if row else "") + "\x1f".join(ids)).encode("utf-8", "surrogatepass"), crc)
        row += len(ids)
    return crc


def _sorted_keys(parts: Iterator[np.ndarray]) -> np.ndarray:
    """(n, 16) uint8 key matrices as one sorted array of distinct ``S16`` keys (16 bytes a key)."""
    flat = [np.ascontiguousarray(part).view("S16").ravel() for part in parts]
    return np.unique(np.concatenate(flat)) if flat else np.empty(0, dtype="S16")


def _among(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` (``S16``) are in ``sorted_keys``."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


def _cached_keys(cache: EmbeddingCache) -> np.ndarray:
    """Every key the cache's readable shards hold, sorted (``S16``); only the keys are read."""
    return _sorted_keys(head[0] for head in (cache._read(path, with_vectors=False) for path in cache.shards())
                        if head is not None)


def _forget_keys(cache: EmbeddingCache, sorted_keys: np.ndarray) -> None:
    """Delete every shard holding one of ``sorted_keys`` (as ``EmbeddingCache.forget`` does for texts)."""
    for path in cache.shards():
        head = cache._read(path, with_vectors=False)
        if head is None or _among(sorted_keys, np.ascontiguousarray(head[0]).view("S16").ravel()).any():
            path.unlink(missing_ok=True)


def adopt_staged_table(workspace: Workspace, corpus: Corpus, encoder: Encoder, staged: Path, rebuild: bool = False) -> None:
    """Make the (row, id, vector, key) Lance table a job wrote at ``staged`` the corpus table of (corpus, encoder).

    Read back in batches: every corpus row must be there exactly once with its id, the checksum the engine verifies
    is computed on the way, and the vectors of texts the embedding cache lacks go into it (each distinct text once;
    ``rebuild`` first drops the corpus texts' cached vectors), so a later single-process build encodes none of them.
    The ``key`` column is then dropped, the table stamped and renamed into place under its lock; until then the
    previous table keeps serving. The driver reads the corpus's ids, never its texts or all the vectors at once; it
    holds the cache's keys and those it adds (16 bytes each), and on a rebuild the corpus's keys for a moment.
    """
    import lance

    count, dim = corpus.num_docs, encoder.dim
    dataset = lance.dataset(str(staged))
    if dataset.schema.names != staged_table_schema(dim).names or dataset.schema.field("vector").type.list_size != dim:
        raise IndexCorruptError(f"The table at {staged} does not have the columns {staged_table_schema(dim).names} with "
                                f"vectors of {dim} dimensions.")
    positions = _row_positions(dataset, count)
    crc = _ids_checksum(dataset, positions, corpus)
    cache = EmbeddingCache.for_encoder(workspace, encoder)
    if rebuild:  # as open_vector_index(..., rebuild=True): the new vectors replace the texts' cached ones
        _forget_keys(cache, _sorted_keys(_key_matrix(batch) for batch in _in_row_order(dataset, ["key"], positions)))
    known = _cached_keys(cache)  # grows by the keys added below: each distinct text goes in once
    pending_keys: list[np.ndarray] = []
    pending_vectors: list[np.ndarray] = []
    chunk, pending, row = embed_chunk_size(), 0, 0
    for batch in _in_row_order(dataset, ["vector", "key"], positions):
        vectors = _matrix(batch, dim)
        if not np.isfinite(vectors).all():
            raise IndexCorruptError(f"Model {encoder.name!r} produced non-finite vectors (NaN or infinity) on Ray: its weights "
                                    f"are damaged. Nothing was stored; train or copy the model again, or pick another one.")
        crc = zlib.crc32(np.ascontiguousarray(vectors), crc)
        keys = _key_matrix(batch)
        distinct, first = np.unique(np.ascontiguousarray(keys).view("S16").ravel(), return_index=True)
        new = ~_among(known, distinct)
        if new.any():
            rows = np.sort(first[new])
            pending_keys.append(keys[rows])
            pending_vectors.append(vectors[rows])
            pending += len(rows)
            known = np.insert(known, np.searchsorted(known, distinct[new]), distinct[new])
        row += len(vectors)
        while pending >= chunk or (row == count and pending):
            all_keys, all_vectors = np.concatenate(pending_keys), np.concatenate(pending_vectors)
            cache.add([key.tobytes() for key in all_keys[:chunk]], all_vectors[:chunk])
            pending_keys, pending_vectors, pending = [all_keys[chunk:]], [all_vectors[chunk:]], max(0, pending - chunk)
    expected = {"fingerprint": encoder.fingerprint, "count": count, "dim": dim, "checksum": f"{crc:08x}"}
    dataset.drop_columns(["key"])  # the engine's table holds row, id and vector, as the single-process build writes it
    dataset.update_schema_metadata({META_KEY.decode(): json.dumps(expected)})
    name = corpus_table_name(corpus, encoder)
    with workspace.lock(name):
        replace_folder(staged, workspace.vectors_dir / f"{name}.lance")  # on a rebuild the old table steps aside only now
        db = lancedb.connect(str(workspace.vectors_dir))
        for other in table_names(db):  # as after a single-process build: older versions of this (dataset, model, backend) go
            if is_stale_version(other, name):
                db.drop_table(other)


def corpus_table_is_current(workspace: Workspace, corpus: Corpus, encoder: Encoder) -> bool:
    """Whether the corpus table of (corpus, encoder) exists, matches, and passes its checksum, read in batches."""
    import lance

    path = workspace.vectors_dir / f"{corpus_table_name(corpus, encoder)}.lance"
    if not path.is_dir():
        return False
    try:
        dataset = lance.dataset(str(path))
        meta = json.loads((dataset.schema.metadata or {}).get(META_KEY, b"{}"))
        expected = {"fingerprint": encoder.fingerprint, "count": corpus.num_docs, "dim": encoder.dim}
        if any(meta.get(key) != value for key, value in expected.items()) or "checksum" not in meta:
            return False
        positions = _row_positions(dataset, corpus.num_docs)
        crc, row = 0, 0
        for batch in _in_row_order(dataset, ["id"], positions):
            ids = batch.column("id").to_pylist()
            crc = zlib.crc32((("\x1f" if row else "") + "\x1f".join(ids)).encode("utf-8", "surrogatepass"), crc)
            row += len(ids)
        for batch in _in_row_order(dataset, ["vector"], positions):
            crc = zlib.crc32(np.ascontiguousarray(_matrix(batch, encoder.dim)), crc)
        return meta["checksum"] == f"{crc:08x}"
    except Exception:  # rows missing or repeated (IndexCorruptError), or lance failing on damaged files: embed again
        return False


def build_vector_index_on_ray(table: Path, index_type: str, partitions: int, options: RayOptions,
                              sub_vectors: int = 0) -> None:
    """Build the vector index of a corpus table with lance-ray, replacing any index it had.

    Lance-ray trains the IVF centroids (and the PQ codebook) in the driver on a sample of the table, then Ray
    workers (``options.actors`` of ``options.cpus_per_actor`` CPUs) assign and encode the vectors of their share of
    the fragments, and the segments commit as one index over every row: LanceDB searches it as any index of
    ``index_type`` (``IVF_FLAT``, ``IVF_PQ``, ``IVF_HNSW_SQ``...), metric dot.
    """
    import lance
    import lance_ray

    ray, started_here = connect(options)
    try:
        check_capacity(ray, options)
        rows = lance.dataset(str(table)).count_rows()
        # lance-ray refuses a sample larger than the table: small tables train on fewer rows per partition
        sample_rate = max(2, min(256, rows // max(partitions, 256 if "PQ" in index_type else 1)))
        extra = {"num_sub_vectors": sub_vectors} if sub_vectors and "PQ" in index_type else {}
        lance_ray.create_index(str(table), column="vector", index_type=index_type, metric="dot", replace=True,
                               num_partitions=partitions, sample_rate=sample_rate, num_workers=options.actors,
                               ray_remote_args={"num_cpus": options.cpus_per_actor}, **extra)
    except WorkbenchError:
        raise
    except Exception as exc:
        raise ClusterError(f"Building the {index_type} index on Ray failed ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:300] if str(exc) else ''}); the table keeps its previous index.") from exc
    finally:
        if started_here:
            ray.shutdown()


def _embedding_stage(source, workspace: Workspace, encoder: Encoder, options: RayOptions, counter):
    """The actor pool: each actor loads the model once, restarts at most ``max_restarts`` times, and embeds its blocks."""
    from ray.data import ActorPoolStrategy

    backend = "onnx" if "-onnx-" in encoder.fingerprint else "torch"
    device = "cuda" if options.gpus_per_actor else "cpu"
    with warnings.catch_warnings():
        # Ray 2.60 (pinned) takes max_restarts and max_task_retries only through **ray_remote_args, which it deprecates
        # for removal in 2.64; the named parameters that replace it (ray-project/ray#65228) have none for restarts, and
        # Ray Data otherwise restarts actors without limit. Only that one warning is silenced; see docs/scale.md.
        warnings.filterwarnings("ignore", message=RAY_REMOTE_ARGS_DEPRECATION, category=DeprecationWarning)
        return source.map_batches(
            Embedder, fn_constructor_args=(encoder.name, backend, str(workspace.root), device,
                                           max(1, int(options.cpus_per_actor)), counter),
            compute=ActorPoolStrategy(size=options.actors), batch_size=min(ENCODE_BATCH, options.rows_per_block),
            batch_format="pyarrow", num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor or None,
            max_restarts=options.max_restarts, max_task_retries=options.max_restarts)
