"""Shared fixtures: small real slices of the bundled benchmarks and one workspace per test session.

The slices keep every query's positives and add real distractors, so metrics stay meaningful while
embedding takes seconds on two cores. The session workspace is reused by every test that only reads,
so each index is built once per test run.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from core.data.datasets import Dataset, Qrels, load_dataset, write_dataset
from core.workspace import Workspace

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not SHARED.is_dir():
    SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def slice_dataset(source: Dataset, n_queries: int, n_documents: int, seed: int = 7, name: str | None = None) -> Dataset:
    """The first ``n_queries`` judged queries (seeded pick), their positives, and seeded distractors."""
    rng = random.Random(seed)
    queries = rng.sample(list(source.judged_queries), n_queries)
    keep = {d for q in queries for d in source.qrels.positives(q.id)}
    others = [d.id for d in source.documents if d.id not in keep]
    keep |= set(rng.sample(others, max(0, n_documents - len(keep))))
    documents = tuple(d for d in source.documents if d.id in keep)
    judgments = {q.id: dict(source.qrels.grades(q.id)) for q in queries}
    return Dataset(name or f"{source.name}-mini", documents, tuple(queries), Qrels(judgments), source.split)


def require_shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED


@pytest.fixture(scope="session")
def mini_data_dir(tmp_path_factory) -> Path:
    """A data directory holding two small real slices: csn-mini (code -> docstring) and cosqa-mini (text -> code)."""
    shared = require_shared()
    root = tmp_path_factory.mktemp("data")
    csn = load_dataset(shared / "csn-python-code2doc")
    cosqa = load_dataset(shared / "cosqa")
    write_dataset(slice_dataset(csn, 40, 400, name="csn-mini"), root / "csn-mini")
    write_dataset(slice_dataset(cosqa, 40, 300, name="cosqa-mini"), root / "cosqa-mini")
    return root


@pytest.fixture(scope="session")
def session_workspace(tmp_path_factory, mini_data_dir) -> Workspace:
    """One workspace for the whole test session (indexes built once, then reused)."""
    return Workspace.open(tmp_path_factory.mktemp("workspace"), mini_data_dir)


@pytest.fixture
def workspace(tmp_path, mini_data_dir) -> Workspace:
    """A fresh, empty workspace for tests that build, break or lock things."""
    return Workspace.open(tmp_path / "workspace", mini_data_dir)


@pytest.fixture(scope="session")
def csn_mini(session_workspace) -> Dataset:
    from core.data.catalog import open_dataset

    return open_dataset(session_workspace, "csn-mini")


@pytest.fixture(scope="session")
def cosqa_mini(session_workspace) -> Dataset:
    from core.data.catalog import open_dataset

    return open_dataset(session_workspace, "cosqa-mini")


@pytest.fixture(scope="session")
def csn_engine(session_workspace, csn_mini):
    from core.retrieval.profiles import default_profiles
    from core.retrieval.engine import Engine

    engine = Engine(session_workspace, csn_mini, default_profiles())
    engine.warm(list(engine.profiles))
    return engine


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray cluster of two CPUs (started on first use, shut down after the session)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
