"""Corpus embedding on Ray Data: the corpus streams in blocks through a pool of embedding actors into Lance.

The same call runs on a local Ray started in this process (a laptop) and on a cluster (``address``). The
vectors are written by lance-ray into a staging folder beside the tables and adopted by
``core.index.vectors.adopt_corpus_table``: the result is the very table the single-process build writes
(same name, columns, metadata and checksum), and an interrupted job leaves the previous table serving.
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from core.data.datasets import Dataset
from core.errors import ClusterError, WorkbenchError
from core.index.encoders import THREADS_ENV, Encoder, load_encoder
from core.index.lexical import BuildReport
from core.index.vectors import (VectorIndex, adopt_corpus_table, corpus_table_name, corpus_table_schema,
                                open_current_corpus_table, remember_vectors)
from core.workspace import PROJECT_ROOT, Workspace

ROWS_PER_BLOCK = 512   # rows per Ray Data block: small enough that every actor gets even work (SCALE.md)
ENCODE_BATCH = 256     # rows per map_batches call inside an actor
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
        if self.cpus_per_actor <= 0:
            raise ClusterError(f"CPUs per actor must be positive, got {self.cpus_per_actor}.")
        if self.gpus_per_actor < 0:
            raise ClusterError(f"--gpus-per-actor cannot be negative, got {self.gpus_per_actor}.")
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
    except ConnectionError as exc:
        raise ClusterError(f"Cannot join the Ray cluster at {address}: {exc}".rstrip(".") + ". Start one with "
                           f"`ray start --head`, or leave the address out to run on this machine.") from exc
    return ray, True


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
    """A Ray Data actor: loads the model once, then turns (row, id, text) batches into (row, id, vector)."""

    def __init__(self, model: str, backend: str, workspace_root: str, device: str, threads: int, counter=None):
        os.environ[THREADS_ENV] = str(threads)  # torch in this actor uses the CPUs Ray gave it, not every core
        if backend == "torch":
            import torch

            torch.set_num_threads(threads)
        self.encoder = load_encoder(model, Workspace(Path(workspace_root)), backend, device)
        self.dim = self.encoder.dim
        self.counter = counter

    def __call__(self, batch: pa.Table) -> pa.Table:
        vectors = self.encoder.encode(batch["text"].to_pylist())
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
        if self.counter is not None:
            self.counter.add.remote(batch.num_rows)
        return pa.table({"row": batch["row"], "id": batch["id"], "vector": pa.FixedSizeListArray.from_arrays(flat, self.dim)})


class _RowCounter:
    """Rows embedded so far, summed over every actor (re-done rows of a restarted actor count again)."""

    def __init__(self):
        self.rows = 0

    def add(self, rows: int) -> None:
        self.rows += rows

    def value(self) -> int:
        return self.rows


def corpus_blocks(dataset: Dataset, rows_per_block: int) -> list[pa.Table]:
    """The corpus as (row, id, text) Arrow tables of ``rows_per_block`` rows: Ray Data's input blocks."""
    texts = [d.full_text for d in dataset.documents]
    table = pa.table({"row": pa.array(np.arange(len(texts), dtype=np.int64)),
                      "id": pa.array([d.id for d in dataset.documents], pa.string()), "text": pa.array(texts, pa.string())})
    return [table.slice(start, rows_per_block) for start in range(0, max(table.num_rows, 1), rows_per_block)]


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


def embed_corpus(workspace: Workspace, dataset: Dataset, encoder: Encoder, options: RayOptions, rebuild: bool = False,
                 progress: Callable[[float], None] | None = None) -> tuple[VectorIndex, BuildReport]:
    """The corpus table of (dataset, encoder), embedded on Ray when it is not current (or ``rebuild``)."""
    started = time.perf_counter()
    if options.gpus_per_actor and getattr(encoder, "device", None) is None:
        raise ClusterError("GPU actors run the torch backend; the onnx backend runs on CPU actors only.")
    if not rebuild:
        current = open_current_corpus_table(workspace, dataset, encoder)
        if current is not None:
            return current, BuildReport(f"embeddings ({encoder.name}) for {dataset.name}", True,
                                        time.perf_counter() - started, len(dataset.documents))
    if getattr(encoder, "device", None) is None:
        encoder.encode(["warm up"])  # ONNX: export the model once here, not in every actor at the same time
    ray, started_here = connect(options)
    staged = workspace.vectors_dir / ".ray-staging" / f"{corpus_table_name(dataset, encoder)}-{uuid.uuid4().hex[:8]}.lance"
    try:
        check_capacity(ray, options)
        _run_pipeline(ray, workspace, dataset, encoder, options, staged, progress)
        index, report = adopt_corpus_table(workspace, dataset, encoder, staged, started)
        # as after a single-process build, every text embedded here is never encoded again by this model
        remember_vectors(workspace, encoder, [d.full_text for d in dataset.documents], index.vectors, replace=rebuild)
        return index, report
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


def _run_pipeline(ray, workspace: Workspace, dataset: Dataset, encoder: Encoder, options: RayOptions, staged: Path,
                  progress: Callable[[float], None] | None) -> None:
    """read blocks -> actor pool (encode) -> lance-ray write into ``staged``; progress polled from a counter actor."""
    import lance_ray
    from ray.data import DataContext

    DataContext.get_current().execution_options.preserve_order = True  # rows land in row order: the engine opens them without a sort
    DataContext.get_current().enable_progress_bars = progress is None
    counter = ray.remote(num_cpus=0)(_RowCounter).remote()
    # from_arrow hands its tables over as one bundle: repartition splits it so every actor gets blocks
    source = ray.data.from_arrow(corpus_blocks(dataset, options.rows_per_block)).repartition(
        target_num_rows_per_block=options.rows_per_block)
    embedded = _embedding_stage(source, workspace, encoder, options, counter)
    staged.parent.mkdir(parents=True, exist_ok=True)
    failure: list[BaseException] = []

    def write() -> None:
        try:
            lance_ray.write_lance(embedded, str(staged), schema=corpus_table_schema(encoder.dim),
                                  min_rows_per_file=max(options.rows_per_block, 1024), mode="create")
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    writer = threading.Thread(target=write, name="lance-ray-writer", daemon=True)
    writer.start()
    total = max(len(dataset.documents), 1)
    while writer.is_alive():
        writer.join(0.5)
        if progress:
            progress(min(0.99, ray.get(counter.value.remote()) / total))
    if failure:
        raise failure[0]
    if progress:
        progress(1.0)


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
