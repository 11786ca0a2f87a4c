"""What a profile costs, measured while its run is made: index build time and size, query latency, peak memory.

``make_run`` wraps ``Engine.run``: it samples the process's resident memory every few milliseconds
while the run (and the indexes it opens or builds) is made, then times ``LATENCY_SAMPLE`` queries one
at a time, each as a fresh pasted query (its dense embedding computed, nothing cached), so p50/p95 are
what a user waits for one query. Build times are written beside the indexes when they are built
(``indexes/build-seconds.json``), so a run that reuses an index still reports what building it took.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.retrieval.engine import DEFAULT_DEPTH, Engine
from core.retrieval.profiles import Bm25Profile, DenseProfile, HybridProfile, Profile, RerankProfile
from core.retrieval.runs import Run
from core.workspace import Workspace, folder_bytes  # noqa: F401 (folder_bytes: imported from here too)

LATENCY_SAMPLE = 50
SAMPLE_SECONDS = 0.005
BUILD_TIMES_FILE = "build-seconds.json"
COST_KEYS = ("index_build_seconds", "index_bytes", "latency_ms_p50", "latency_ms_p95", "peak_memory_mb")


@dataclass(frozen=True)
class Cost:
    """A run's cost; None where it cannot be known (an index built before build times were recorded)."""

    index_build_seconds: float | None
    index_bytes: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_queries: int
    peak_memory_mb: float

    def to_dict(self) -> dict:
        return {"index_build_seconds": self.index_build_seconds, "index_bytes": self.index_bytes,
                "latency_ms_p50": self.latency_ms_p50, "latency_ms_p95": self.latency_ms_p95,
                "latency_queries": self.latency_queries, "peak_memory_mb": self.peak_memory_mb}


def _rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; elsewhere the peak so far, which only grows)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Samples RSS in a thread while the block runs; the yielded list ends up holding [start, peak] in bytes."""
    start = _rss_bytes()
    found = [start, start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            found[1] = max(found[1], _rss_bytes())
            stop.wait(SAMPLE_SECONDS)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()
        found[1] = max(found[1], _rss_bytes())


def index_keys(engine: Engine, name: str) -> list[tuple]:
    """The indexes a profile reads: ("lexical", analyzer) and ("vectors", model, backend), members included."""
    profile: Profile = engine.profile(name)
    if isinstance(profile, Bm25Profile):
        return [("lexical", profile.analyzer)]
    if isinstance(profile, DenseProfile):
        return [("vectors", profile.model, profile.backend)]
    if isinstance(profile, HybridProfile):
        return list(dict.fromkeys(key for member in profile.members for key in index_keys(engine, member)))
    if isinstance(profile, RerankProfile):
        own = [] if profile.reranker == "cross-encoder" else [("vectors", profile.model, "torch")]
        return list(dict.fromkeys([*index_keys(engine, profile.first_stage), *own]))
    return []


def _build_times(workspace: Workspace) -> Path:
    return workspace.root / "indexes" / BUILD_TIMES_FILE


def recorded_build_seconds(workspace: Workspace, path: Path, report) -> float | None:
    """Seconds building the index at ``path`` took: from this build, or as recorded when it was built."""
    file = _build_times(workspace)
    try:
        times = json.loads(file.read_text())
    except (OSError, ValueError):
        times = {}
    key = str(Path(path).relative_to(workspace.root)) if Path(path).is_relative_to(workspace.root) else str(path)
    if not report.reused:
        times[key] = report.seconds
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(times, indent=1, sort_keys=True))
        os.replace(tmp, file)
        return report.seconds
    value = times.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def make_run(engine: Engine, name: str, depth: int = DEFAULT_DEPTH, latency_queries: int = LATENCY_SAMPLE) -> Run:
    """``engine.run(name)`` with its cost measured and stored in ``run.meta["cost"]``."""
    with peak_memory() as memory:
        engine.warm([name])
        run = engine.run(name, depth=depth)
        sample = list(engine.dataset.judged_queries)[:max(0, latency_queries)]
        timings = engine.latencies(name, sample, depth) if sample else np.array([np.nan])
    keys = index_keys(engine, name)
    build, size = 0.0, 0
    for key in keys:
        report, path = engine.index_files[key]
        seconds = recorded_build_seconds(engine.workspace, path, report)
        build = None if build is None or seconds is None else build + seconds
        size += folder_bytes(path) if Path(path).exists() else 0
    cost = Cost(build if keys else 0.0, size, float(np.percentile(timings, 50)), float(np.percentile(timings, 95)),
                len(sample), (memory[1] - memory[0]) / 2**20)
    return replace(run, meta={**run.meta, "cost": cost.to_dict()})
