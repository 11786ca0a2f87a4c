"""Manifests: everything needed to make a saved run again, and a check that doing so gives the same metrics.

A manifest holds the dataset's content hashes (corpus, queries, qrels), the parameters of the profile
and of every profile it builds on, the model fingerprints, package versions, the machine, the seed,
the time, the run's cost and its metric means. ``make_saved_run`` attaches one to every run the
leaderboard or ``evaluate`` saves; ``reproduce`` re-runs a manifest and lists what differs.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from core.data.catalog import open_dataset
from core.data.datasets import Dataset, load_json, read_at_most
from core.errors import WorkbenchError
from core.evaluation.metrics import DEFAULT_METRICS, evaluate
from core.evaluation.significance import DEFAULT_SEED
from core.retrieval.cost import make_run
from core.retrieval.engine import DEFAULT_DEPTH, Engine
from core.retrieval.limits import check_number
from core.retrieval.profiles import HybridProfile, RerankProfile, profile_from_dict, profile_to_dict
from core.retrieval.runs import Run, save_run
from core.workspace import Workspace

MANIFEST_VERSION = 1
PACKAGES = ("numpy", "pandas", "scipy", "pyarrow", "tantivy", "lancedb", "numba", "torch", "sentence-transformers",
            "transformers", "onnxruntime", "streamlit")
TOLERANCE = 1e-9
MAX_MANIFEST_BYTES = 16 * 1024**2
MAX_MANIFEST_DEPTH = 32  # a manifest nests five levels (profiles -> name -> parameters -> members)


class ManifestError(WorkbenchError):
    """A manifest file cannot be read or re-run."""


def qrels_hash(dataset: Dataset) -> str:
    """SHA-256 of the judgments (query, document, grade), independent of file order."""
    rows = sorted((q, d, int(g)) for q, grades in dataset.qrels.judgments.items() for d, g in grades.items())
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine() -> dict[str, Any]:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        memory = None
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "processor": platform.processor(), "cpus": os.cpu_count(), "memory_gib": memory, "hostname": platform.node()}


def profile_closure(engine: Engine, name: str) -> dict[str, dict]:
    """The profile and every profile it builds on (hybrid members, a rerank's first stage), as parameters."""
    out: dict[str, dict] = {}
    pending = [name]
    while pending:
        current = pending.pop()
        if current in out:
            continue
        profile = engine.profile(current)
        out[current] = profile_to_dict(profile)
        if isinstance(profile, HybridProfile):
            pending.extend(profile.members)
        elif isinstance(profile, RerankProfile):
            pending.append(profile.first_stage)
    return out


def build_manifest(engine: Engine, run: Run, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, Any]:
    """The manifest of a profile's run made by ``engine`` (its metric means computed here)."""
    dataset = engine.dataset
    means = evaluate(dataset.qrels, run, metrics).mean()
    return {
        "manifest_version": MANIFEST_VERSION,
        "run": {"name": run.name, "kind": dict(run.profile).get("kind", ""), "depth": run.meta.get("depth", DEFAULT_DEPTH),
                "queries": len(run.rankings)},
        "dataset": {"name": dataset.name, "split": dataset.split, "documents": len(dataset.documents),
                    "queries": len(dataset.queries), "judged_queries": len(dataset.judged_queries),
                    "corpus_hash": dataset.corpus_hash, "queries_hash": dataset.queries_hash, "qrels_hash": qrels_hash(dataset)},
        "profile": dict(run.profile),
        "profiles": profile_closure(engine, run.name) if run.name in engine.profiles else {},
        "models": dict(run.meta.get("models", {})),
        "packages": package_versions(),
        "machine": machine(),
        "seed": DEFAULT_SEED,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cost": dict(run.meta.get("cost", {})),
        "metrics": {key: float(value) for key, value in means.items()},
    }


def imported_manifest(run: Run, dataset: Dataset, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, Any]:
    """A manifest for an imported TREC run: the data it was scored against and its metrics (it cannot be re-run)."""
    means = evaluate(dataset.qrels, run, metrics).mean()
    return {"manifest_version": MANIFEST_VERSION,
            "run": {"name": run.name, "kind": "imported", "depth": run.depth, "queries": len(run.rankings)},
            "dataset": {"name": dataset.name, "split": dataset.split, "documents": len(dataset.documents),
                        "queries": len(dataset.queries), "judged_queries": len(dataset.judged_queries),
                        "corpus_hash": dataset.corpus_hash, "queries_hash": dataset.queries_hash, "qrels_hash": qrels_hash(dataset)},
            "profile": dict(run.profile), "profiles": {}, "models": {}, "packages": package_versions(), "machine": machine(),
            "seed": DEFAULT_SEED, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cost": {},
            "metrics": {key: float(value) for key, value in means.items()}}


def make_saved_run(engine: Engine, name: str, depth: int = DEFAULT_DEPTH, metrics: Sequence[str] = DEFAULT_METRICS,
                   save: bool = True) -> Run:
    """Make a profile's run with its cost measured and its manifest attached, and save it (when asked)."""
    run = make_run(engine, name, depth)
    run = replace(run, meta={**run.meta, "manifest": build_manifest(engine, run, metrics)})
    return save_run(run, engine.workspace.runs_dir) if save else run


def run_manifest(run: Run) -> dict[str, Any] | None:
    """The manifest saved with a run, with its run id filled in; None for runs saved before manifests existed."""
    manifest = run.meta.get("manifest")
    if not isinstance(manifest, Mapping):
        return None
    return {**manifest, "run": {**manifest.get("run", {}), "run_id": run.run_id}}


def manifest_json(manifest: Mapping[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True, default=str)


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    saved: float
    now: float

    @property
    def matches(self) -> bool:
        return (math.isnan(self.saved) and math.isnan(self.now)) or abs(self.saved - self.now) <= TOLERANCE


@dataclass(frozen=True)
class Reproduction:
    """The outcome of re-running a manifest: every metric saved and now, and what else differs."""

    checks: tuple[MetricCheck, ...]
    differences: tuple[str, ...]  # data, models, packages, machine: reasons a metric may move

    @property
    def matches(self) -> bool:
        return all(check.matches for check in self.checks)


def load_manifest(path: Path) -> dict[str, Any]:
    """A manifest file, checked to be one: at most MAX_MANIFEST_BYTES, nested at most MAX_MANIFEST_DEPTH, its
    sections of the types ``reproduce`` reads (a byte-order mark before it is dropped)."""
    try:
        with Path(path).open("rb") as handle:
            data, cut = read_at_most(handle, MAX_MANIFEST_BYTES)
    except OSError as exc:
        raise ManifestError(f"Cannot read the manifest {path}: {exc.strerror or exc}.") from None
    if cut:  # read no further: a manifest is a few kilobytes, and a 300 MB file once took 909 MB to parse
        raise ManifestError(f"{path} is larger than {MAX_MANIFEST_BYTES // 1024**2} MiB, far more than a run manifest "
                            "(a few KB): is it the right file?")
    try:
        manifest = load_json(data, MAX_MANIFEST_DEPTH)
    except ValueError as exc:
        raise ManifestError(f"{path} is not a JSON manifest ({exc}).") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("metrics"), dict) or "dataset" not in manifest:
        raise ManifestError(f"{path} is not a run manifest: it lacks 'dataset' or 'metrics'. "
                            "Download one from the leaderboard or take it from a saved run.")
    wrong = [key for key in _SECTIONS if key in manifest and not isinstance(manifest[key], dict)]
    wrong += [f"metrics.{key}" for key, value in manifest["metrics"].items()
              if isinstance(value, bool) or not isinstance(value, (int, float))]
    if wrong:
        raise ManifestError(f"{path} is not a run manifest of this workbench: {', '.join(wrong[:5])} "
                            f"{'has' if len(wrong) == 1 else 'have'} the wrong type. Download it again from the leaderboard.")
    return manifest


_SECTIONS = ("dataset", "run", "profile", "profiles", "models", "packages", "machine", "cost", "metrics")


def _changed(section: str, saved: Mapping, now: Mapping) -> list[str]:
    return [f"{section} {key}: {saved.get(key)!r} then, {now.get(key)!r} now"
            for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key)]


def reproduce(workspace: Workspace, manifest: Mapping[str, Any], progress=None) -> Reproduction:
    """Re-run the manifest's profile on its dataset and compare every metric (to 1e-9) with the saved one."""
    data = manifest["dataset"]
    if manifest.get("run", {}).get("kind") == "imported" or not manifest.get("profiles"):
        raise ManifestError("This manifest is of an imported run: there is no profile to re-run. "
                            "Import the same TREC file again to re-evaluate it.")
    dataset = open_dataset(workspace, str(data.get("name", "")))
    if data.get("split") and data["split"] != dataset.split:
        raise ManifestError(f"The manifest was made on split {data['split']!r}; {dataset.name!r} opens split {dataset.split!r}.")
    name = str(manifest.get("run", {}).get("name", ""))
    try:
        profiles = {n: profile_from_dict(d, n) for n, d in manifest["profiles"].items()}
    except (WorkbenchError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ManifestError(f"The manifest's profile parameters cannot be read: {exc}") from None
    if name not in profiles:
        raise ManifestError(f"The manifest names run {name!r} but holds no profile of that name.")
    now_data = {"corpus_hash": dataset.corpus_hash, "queries_hash": dataset.queries_hash, "qrels_hash": qrels_hash(dataset)}
    differences = _changed("dataset", {k: data.get(k) for k in now_data}, now_data)
    engine = Engine(workspace, dataset, profiles, progress=progress)
    run = engine.run(name, depth=check_number("depth", manifest.get("run", {}).get("depth", DEFAULT_DEPTH), "the manifest's run depth"))
    saved_metrics = manifest["metrics"]
    means = evaluate(dataset.qrels, run, list(saved_metrics)).mean()
    checks = tuple(MetricCheck(key, float(saved_metrics[key]), float(means[key])) for key in saved_metrics)
    differences += _changed("model", manifest.get("models", {}), run.meta.get("models", {}))
    differences += _changed("package", manifest.get("packages", {}), package_versions())
    return Reproduction(checks, tuple(differences))


def import_trec_run(workspace: Workspace, path: Path, dataset: Dataset, name: str | None = None) -> Run:
    """Read a TREC run file for ``dataset``, refuse it when it knows none of its judged queries, save it with a manifest."""
    from core.retrieval.runs import read_trec

    run = read_trec(Path(path), name=name, dataset=dataset.name)
    judged = {q.id for q in dataset.judged_queries}
    if judged and not judged & set(run.rankings):
        raise ManifestError(f"{Path(path).name} ranks none of the {len(judged)} judged queries of {dataset.name!r} "
                            f"(its query ids look like {', '.join(list(run.rankings)[:3]) or 'nothing'}): "
                            "is it a run of another dataset?")
    run = replace(run, meta={"corpus_hash": dataset.corpus_hash, "queries_hash": dataset.queries_hash,
                             "split": dataset.split, "queries": len(run.rankings), "depth": run.depth})
    run = replace(run, meta={**run.meta, "manifest": imported_manifest(run, dataset)})
    return save_run(run, workspace.runs_dir)
