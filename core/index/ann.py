"""Approximate nearest-neighbour search over a corpus table: built only when asked, always shown with its recall.

Exact search (``VectorIndex.search``) is the reference every run uses. An ANN index (``AnnSettings.kind``:
IVF_PQ, IVF_HNSW_SQ or IVF_FLAT in LanceDB, one per table) is built from the stored table on request. It
proposes ``refine`` x k candidates per query, and their exact cosines from the in-memory vectors pick the k
best, so an ANN ranking differs from the exact one only in which documents it holds, never in their scores.

What that costs is measured, not assumed: ``measure_ann`` compares the ANN top 100 with the exact top 100 over
the dataset's own judged queries (overlap / 100, averaged) and keeps the figure in ``<table>.ann.json`` beside
the table, keyed by the table's checksum, the index's build parameters and lance uuid, the search settings and
the query vectors, so a run through the index carries the recall of exactly that index (``AnnRecall.as_meta``).
``ann_recall`` is the same measurement for a notebook, without the file.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import IndexCorruptError, OptionError
from core.index.vectors import DenseHits, VectorIndex, dot_scores, exact_top_k, top_k
from core.workspace import Workspace

ANN_KINDS = ("ivf_pq", "hnsw", "ivf_flat")
LANCE_INDEX_TYPES = {"ivf_pq": "IVF_PQ", "hnsw": "IVF_HNSW_SQ", "ivf_flat": "IVF_FLAT"}
RECALL_DEPTH = 100  # recall@100 of ANN against exact, the figure shown beside every ANN run
SIDECAR_SUFFIX = ".ann.json"
SIDECAR_VERSION = 1


@dataclass(frozen=True)
class AnnSettings:
    """Which ANN index to build and how to search it.

    ``partitions`` and ``sub_vectors`` 0 take defaults from the table's size and dimension (``build_parameters``);
    ``ef`` 0 searches HNSW graphs with ef = the number of candidates.
    """

    kind: str = "ivf_pq"
    nprobes: int = 20       # IVF partitions searched per query
    # the index proposes refine x k candidates; their exact cosines pick the k. 10, not 4: at 1M (part 16) IVF_PQ's
    # recall@100 rose from 0.86 to 0.92 for the same latency
    refine: int = 10
    partitions: int = 0
    sub_vectors: int = 0    # IVF_PQ: bytes per vector
    ef: int = 0             # hnsw: candidates kept while walking each graph

    def check(self) -> None:
        if self.kind not in ANN_KINDS:
            raise OptionError(f"ANN index must be one of {', '.join(ANN_KINDS)}, not {self.kind!r}.")
        for name, low in (("nprobes", 1), ("refine", 1), ("partitions", 0), ("sub_vectors", 0), ("ef", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1_000_000:
                raise OptionError(f"ANN {name} must be a whole number from {low} to 1,000,000, not {value!r}.")

    def build_parameters(self, count: int, dim: int) -> dict:
        """The index's build parameters, defaults resolved for a table of ``count`` vectors of ``dim`` dimensions."""
        partitions = self.partitions or _default_partitions(self.kind, count)
        sub_vectors = (self.sub_vectors or _default_sub_vectors(dim)) if self.kind == "ivf_pq" else 0
        if self.kind == "ivf_pq" and dim % sub_vectors:
            raise OptionError(f"IVF_PQ sub-vectors must divide the dimension {dim}; {sub_vectors} does not.")
        return {"kind": self.kind, "partitions": min(partitions, max(1, count)), "sub_vectors": sub_vectors}

    def search_parameters(self) -> dict:
        return {"nprobes": self.nprobes, "refine": self.refine, "ef": self.ef}


def _default_partitions(kind: str, count: int) -> int:
    # IVF: about sqrt(n) lists (lance's rule of thumb); HNSW graphs are searched in every probed partition, so fewer
    if kind == "hnsw":
        return max(1, round(math.sqrt(count) / 8))
    return max(1, round(math.sqrt(count)))


def _default_sub_vectors(dim: int) -> int:
    """One byte per 8 dimensions (48 for MiniLM's 384), else the largest divisor of ``dim`` at or below dim / 8."""
    target = max(1, dim // 8)
    return next(n for n in range(target, 0, -1) if dim % n == 0)


@dataclass(frozen=True)
class AnnIndex:
    """An ANN index as built on one table: its parameters, the table state it was built for, what it cost."""

    table: str
    table_checksum: str
    kind: str
    partitions: int
    sub_vectors: int
    index_uuid: str
    build_seconds: float
    reused: bool = False

    @property
    def parameters(self) -> dict:
        return {"kind": self.kind, "partitions": self.partitions, "sub_vectors": self.sub_vectors}

    def describe(self) -> str:
        detail = f"{self.partitions} partitions" + (f", {self.sub_vectors} sub-vectors" if self.kind == "ivf_pq" else "")
        return f"{LANCE_INDEX_TYPES[self.kind]} ({detail})"

    def __str__(self) -> str:
        done = "reused" if self.reused else f"built in {self.build_seconds:.1f}s"
        return f"ANN index {self.describe()} on {self.table}: {done}"


@dataclass(frozen=True)
class AnnRecall:
    """How far an ANN index, searched with ``settings``, is from the exact search on a set of queries."""

    index: AnnIndex
    settings: AnnSettings
    recall: float        # mean over queries of |ANN top-k & exact top-k| / k
    queries: int
    depth: int
    seconds: float       # to measure it (exact and ANN search of every query)
    reused: bool = False

    def as_meta(self) -> dict:
        """What a run records under ``meta["ann"][profile]``: the index, the search settings and the recall."""
        return {"index": self.index.describe(), **self.index.parameters, **self.settings.search_parameters(),
                f"recall@{self.depth}_vs_exact": self.recall, "queries": self.queries,
                "table_checksum": self.index.table_checksum, "build_seconds": self.index.build_seconds}

    def __str__(self) -> str:
        return (f"{self.index.describe()}: recall@{self.depth} vs exact {self.recall:.4f} over {self.queries} queries "
                f"(nprobes {self.settings.nprobes}, refine {self.settings.refine}{self._ef()})")

    def _ef(self) -> str:
        return f", ef {self.settings.ef or 'auto'}" if self.index.kind == "hnsw" else ""


# ---- the sidecar: <table>.ann.json beside the table ------------------------------------------------------------

def sidecar_path(workspace: Workspace, table_name: str) -> Path:
    return workspace.vectors_dir / f"{table_name}{SIDECAR_SUFFIX}"


def _read_sidecar(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == SIDECAR_VERSION else {}


def _write_sidecar(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def _lance_index_uuid(index: VectorIndex) -> str:
    """The uuid of the table's vector index when it covers every row, else ''."""
    index.table.checkout_latest()  # another process may have built (or replaced) the index since this table was opened
    for config in index.table.list_indices():
        if list(config.columns) == ["vector"] and not getattr(config, "num_unindexed_rows", 0):
            return str(config.index_uuid)
    return ""


def current_ann_index(workspace: Workspace, index: VectorIndex, settings: AnnSettings) -> AnnIndex | None:
    """The table's ANN index when it was built with ``settings``' parameters on the table as it is now, else None."""
    record = _read_sidecar(sidecar_path(workspace, index.table.name)).get("index", {})
    wanted = settings.build_parameters(len(index.vectors), index.vectors.shape[1])
    if (not record or record.get("table_checksum") != index.checksum or any(record.get(k) != v for k, v in wanted.items())
            or record.get("index_uuid") != _lance_index_uuid(index)):
        return None
    return AnnIndex(index.table.name, index.checksum, wanted["kind"], wanted["partitions"], wanted["sub_vectors"],
                    record["index_uuid"], float(record.get("build_seconds", 0.0)), reused=True)


def build_ann_index(workspace: Workspace, index: VectorIndex, settings: AnnSettings, rebuild: bool = False) -> AnnIndex:
    """The ANN index ``settings`` asks for on ``index``'s table: reused when current, else built (replacing any other).

    A table holds one vector index; building another kind or other parameters replaces it and forgets the
    recall measured on the old one.
    """
    settings.check()
    if not index.checksum:
        raise IndexCorruptError(f"Vector table {index.table.name} has no checksum: rebuild it before adding an ANN index.")
    name = index.table.name
    with workspace.lock(f"ann__{name}"):
        found = None if rebuild else current_ann_index(workspace, index, settings)
        if found is not None:
            return found
        from lancedb.index import HnswSq, IvfFlat, IvfPq

        parameters = settings.build_parameters(len(index.vectors), index.vectors.shape[1])
        config = {"ivf_pq": lambda: IvfPq(distance_type="dot", num_partitions=parameters["partitions"],
                                          num_sub_vectors=parameters["sub_vectors"]),
                  "hnsw": lambda: HnswSq(distance_type="dot", num_partitions=parameters["partitions"]),
                  "ivf_flat": lambda: IvfFlat(distance_type="dot", num_partitions=parameters["partitions"])}[settings.kind]()
        started = time.perf_counter()
        index.table.create_index("vector", config=config, replace=True)
        seconds = time.perf_counter() - started
        uuid = _lance_index_uuid(index)
        if not uuid:
            raise IndexCorruptError(f"LanceDB built no index covering every row of {name}: build it again with --ann.")
        built = AnnIndex(name, index.checksum, parameters["kind"], parameters["partitions"], parameters["sub_vectors"],
                         uuid, seconds)
        _write_sidecar(sidecar_path(workspace, name), {
            "version": SIDECAR_VERSION, "recall": [],
            "index": {**built.parameters, "table_checksum": built.table_checksum, "index_uuid": uuid,
                      "build_seconds": seconds, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}})
    return built


# ---- search and recall -------------------------------------------------------------------------------------------

def ann_search(index: VectorIndex, query_vectors: np.ndarray, k: int, settings: AnnSettings) -> DenseHits:
    """Top ``k`` per query through the table's ANN index: ``refine`` x k candidates, ranked by their exact cosines.

    Scores and tie order are those of the exact search (``dot_scores``, lower row first); a query whose probed
    partitions hold fewer than k documents is searched exactly.
    """
    query_vectors = np.atleast_2d(np.asarray(query_vectors, dtype=np.float32))
    k = min(k, len(index.vectors))
    if k <= 0 or len(query_vectors) == 0:
        return top_k(np.zeros((len(query_vectors), 0), np.float32), 0)
    limit = min(len(index.vectors), settings.refine * k)
    rows, scores = np.empty((len(query_vectors), k), np.int64), np.empty((len(query_vectors), k), np.float32)
    for i, vector in enumerate(query_vectors):
        query = index.table.search(vector).distance_type("dot").limit(limit)
        query = query.ef(max(settings.ef, limit)) if settings.kind == "hnsw" else query
        # naming _distance keeps lance from warning on every query
        hits = query.nprobes(settings.nprobes).select(["row", "_distance"]).to_arrow()
        candidates = np.unique(hits["row"].to_numpy().astype(np.int64))  # sorted: ties go to the lower row, as in top_k
        if len(candidates) < k:
            best = exact_top_k(vector, index.vectors, k, index.max_norm)
            rows[i], scores[i] = best.rows[0], best.scores[0]
        else:
            best = top_k(dot_scores(vector, index.vectors[candidates]), k)
            rows[i], scores[i] = candidates[best.rows[0]], best.scores[0]
    return DenseHits(rows, scores)


def overlap_recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of the share of the exact rows that the approximate rows also hold."""
    shares = [len(set(a.tolist()) & set(e.tolist())) / len(e) for a, e in zip(found, exact) if len(e)]
    return float(np.mean(shares)) if shares else 1.0


def ann_recall(index: VectorIndex, query_vectors: np.ndarray, settings: AnnSettings, k: int = RECALL_DEPTH) -> float:
    """Recall@k of the table's ANN index (as it is now) against the exact search, for these query vectors.

    The notebook form of what every ANN run records; the index must have been built (``build_ann_index``).
    """
    exact = index.search(query_vectors, k).rows
    return overlap_recall(ann_search(index, query_vectors, k, settings).rows, exact)


def _recall_key(settings: AnnSettings, query_vectors: np.ndarray, depth: int) -> dict:
    digest = hashlib.blake2b(np.ascontiguousarray(query_vectors, dtype=np.float32).tobytes(), digest_size=16).hexdigest()
    return {**settings.search_parameters(), "depth": depth, "query_vectors": digest}


def measure_ann(workspace: Workspace, index: VectorIndex, settings: AnnSettings, query_vectors: np.ndarray,
                depth: int = RECALL_DEPTH, rebuild: bool = False) -> AnnRecall:
    """Build the ANN index ``settings`` asks for when it is missing, and its recall@depth against exact search on
    ``query_vectors`` (a dataset's judged queries), measured once per (index, search settings, queries) and kept
    in the sidecar."""
    built = build_ann_index(workspace, index, settings, rebuild)
    path = sidecar_path(workspace, index.table.name)
    key = _recall_key(settings, query_vectors, depth)
    with workspace.lock(f"ann__{index.table.name}"):
        data = _read_sidecar(path)
        for entry in data.get("recall", []):
            if entry.get("key") == key and data.get("index", {}).get("index_uuid") == built.index_uuid:
                return AnnRecall(built, settings, float(entry["recall"]), int(entry["queries"]), depth,
                                 float(entry.get("seconds", 0.0)), reused=True)
    started = time.perf_counter()
    recall = ann_recall(index, query_vectors, settings, depth) if len(query_vectors) else float("nan")
    seconds = time.perf_counter() - started
    measured = AnnRecall(built, settings, recall, len(query_vectors), depth, seconds)
    with workspace.lock(f"ann__{index.table.name}"):
        data = _read_sidecar(path)
        if data.get("index", {}).get("index_uuid") == built.index_uuid:  # not replaced meanwhile by another build
            data["recall"] = [e for e in data.get("recall", []) if e.get("key") != key] + [
                {"key": key, "recall": recall, "queries": len(query_vectors), "seconds": seconds,
                 "settings": asdict(settings), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}]
            _write_sidecar(path, data)
    return measured
