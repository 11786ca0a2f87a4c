"""A run's cost: index size and build time of the indexes it reads, single-query latency, peak memory."""
from __future__ import annotations

import os

import numpy as np
import pytest

from core.data.catalog import open_dataset
from core.retrieval.cost import folder_bytes, index_keys, make_run, peak_memory
from core.retrieval.engine import Engine
from core.retrieval.profiles import default_profiles


def du(path) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def test_peak_memory_sees_a_200_mb_allocation():
    with peak_memory() as memory:
        block = np.ones(25_000_000)  # 200 MB of float64, touched
        block += 1
        del block
    assert (memory[1] - memory[0]) / 2**20 > 180


def test_hybrid_reads_the_indexes_of_both_members(csn_engine):
    assert set(index_keys(csn_engine, "hybrid-rrf")) == {("lexical", "code"), ("vectors", "minilm", "torch")}
    assert index_keys(csn_engine, "bm25-code") == [("lexical", "code")]


def test_cost_is_measured_when_the_run_is_made_and_build_time_survives_reuse(workspace):
    dataset = open_dataset(workspace, "csn-mini")
    engine = Engine(workspace, dataset, default_profiles())
    run = make_run(engine, "bm25-code", latency_queries=12)
    cost = run.meta["cost"]
    report, path = engine.index_files[("lexical", "code")]
    assert not report.reused
    assert cost["index_build_seconds"] == pytest.approx(report.seconds)
    assert cost["index_bytes"] == du(path) == folder_bytes(path) > 0
    assert cost["latency_queries"] == 12
    assert 0 < cost["latency_ms_p50"] <= cost["latency_ms_p95"]
    assert cost["peak_memory_mb"] >= 0
    assert run.rankings == engine.run("bm25-code").rankings  # measuring left the run as a plain run makes it
    again = make_run(Engine(workspace, dataset, default_profiles()), "bm25-code", latency_queries=3)
    assert again.meta["cost"]["index_build_seconds"] == pytest.approx(report.seconds)  # reused, still known


def test_dense_latency_includes_encoding_the_query(csn_engine):
    dense = csn_engine.latencies("dense-minilm", list(csn_engine.dataset.judged_queries)[:5])
    lexical = csn_engine.latencies("bm25-code", list(csn_engine.dataset.judged_queries)[:5])
    assert len(dense) == 5 and np.median(dense) > np.median(lexical)
