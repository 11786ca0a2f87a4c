"""What every benchmark part shares: the result record, timing, percentiles, memory and machine facts."""
from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPERATORS: dict[str, Callable[[float, float], bool]] = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


@dataclass(frozen=True)
class Target:
    """A bound a figure must meet, as in ``<= 2 s``."""

    operator: str
    bound: float

    def met(self, value: float | None) -> bool | None:
        return None if value is None else OPERATORS[self.operator](value, self.bound)

    def __str__(self) -> str:
        return f"{self.operator} {self.bound:g}"


@dataclass(frozen=True)
class Measure:
    """One figure of one benchmark part, with its unit, its target (if any) and how it was taken."""

    part: int
    name: str
    value: float | None
    unit: str
    target: Target | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool | None:
        return self.target.met(self.value) if self.target else None

    def as_dict(self) -> dict[str, Any]:
        return {"part": self.part, "name": self.name, "value": self.value, "unit": self.unit,
                "target": str(self.target) if self.target else None, "ok": self.ok, "note": self.note,
                "details": self.details}


@dataclass(frozen=True)
class Timing:
    """Seconds of each repetition of one timed call, and what the last call returned."""

    seconds: tuple[float, ...]
    result: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_repeated(call: Callable[[], Any], repeats: int) -> Timing:
    """Run ``call`` ``repeats`` times and keep each wall-clock duration (median is the figure reported)."""
    seconds, result = [], None
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return Timing(tuple(seconds), result)


def time_interleaved(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, Timing]:
    """Time several calls in turn, one of each per round, so a burst of load from other processes hits all alike.

    This is how every ratio is taken: its two timings come from the same rounds of the same process.
    """
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    results: dict[str, Any] = {}
    for _ in range(max(1, repeats)):
        for name, call in calls.items():
            started = time.perf_counter()
            results[name] = call()
            seconds[name].append(time.perf_counter() - started)
    return {name: Timing(tuple(seconds[name]), results[name]) for name in calls}


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def high_water_rss_bytes(pid: int | str = "self") -> int:
    """Peak RSS of a process image (VmHWM; this one by default): unlike ru_maxrss, it does not carry over the parent's
    size from fork."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no VmHWM in /proc/{pid}/status (Linux only)")


def current_rss_bytes() -> int:
    """Resident memory of this process now, from /proc (0 where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and software versions: what a reader needs to compare figures."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f" {f}" in text)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory / 2**30, 1), "cpu_flags": flags,
            "python": platform.python_version(), "platform": platform.platform(), "versions": _versions()}


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for package in ("tantivy", "lancedb", "numpy", "torch", "sentence-transformers", "onnxruntime", "bm25s", "ranx",
                    "pytrec_eval-terrier", "numba"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def fmt_bytes(count: float) -> str:
    return f"{count / 2**30:.2f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"
