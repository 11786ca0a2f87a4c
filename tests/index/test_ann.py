"""ANN indexes on request: built from the stored table, searched with exact re-scoring, their recall measured and kept."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from core.errors import OptionError, ProfileError
from core.index.ann import (AnnSettings, ann_recall, ann_search, build_ann_index, current_ann_index, measure_ann,
                            sidecar_path)
from core.index.encoders import load_encoder
from core.index.vectors import benchmark_query_vectors, dot_scores, open_vector_index
from core.retrieval.engine import Engine
from core.retrieval.profiles import DenseProfile, default_profiles, profile_from_dict
from core.workspace import Workspace

# csn-mini holds 400 real MiniLM vectors; a handful of partitions probed one at a time makes the search approximate
SMALL_IVF = dict(partitions=16, nprobes=1, refine=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory, session_workspace, csn_mini):
    """A workspace of its own (its table gets ANN indexes) with csn-mini's corpus and judged-query vectors."""
    workspace = Workspace.open(tmp_path_factory.mktemp("ann") / "ws", session_workspace.data_dir)
    encoder = load_encoder("minilm", workspace)
    index, _ = open_vector_index(workspace, csn_mini, encoder)
    rows, matrix, _ = benchmark_query_vectors(workspace, csn_mini, encoder)
    judged = np.stack([matrix[rows[q.id]] for q in csn_mini.judged_queries])
    return workspace, encoder, index, judged


def brute_force_overlap(index, queries: np.ndarray, settings: AnnSettings, k: int = 100) -> float:
    """What recall@k vs exact means, computed from scratch: float64 cosines over every row, then set overlap."""
    exact = np.argsort(-(queries.astype(np.float64) @ index.vectors.astype(np.float64).T), axis=1, kind="stable")[:, :k]
    found = ann_search(index, queries, k, settings).rows
    return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(found.tolist(), exact.tolist())]))


@pytest.mark.parametrize("kind", ["ivf_pq", "hnsw"])
def test_an_ann_index_built_on_request_reports_the_recall_a_brute_force_overlap_gives(built, kind):
    workspace, _, index, judged = built
    settings = AnnSettings(kind, **SMALL_IVF)
    assert current_ann_index(workspace, index, settings) is None  # nothing is built until asked
    measured = measure_ann(workspace, index, settings, judged)
    assert not measured.reused and measured.queries == len(judged) == 40 and measured.depth == 100
    assert measured.index.kind == kind and measured.index.partitions == 16
    assert measured.recall == pytest.approx(brute_force_overlap(index, judged, settings), abs=1e-12)
    assert measured.recall == ann_recall(index, judged, settings)  # the notebook function gives the same figure
    if kind == "ivf_pq":
        assert measured.recall < 1.0  # one probe of 16 lists misses documents: the figure measures something

    again = measure_ann(workspace, index, settings, judged)  # kept beside the table: not measured again
    assert again.reused and again.index.reused and again.recall == measured.recall
    stored = json.loads(sidecar_path(workspace, index.table.name).read_text())
    assert stored["index"]["table_checksum"] == index.checksum and stored["index"]["kind"] == kind
    meta = again.as_meta()
    assert meta["recall@100_vs_exact"] == measured.recall and meta["queries"] == 40 and meta["kind"] == kind


def test_ann_rankings_carry_the_exact_scores_of_the_documents_they_hold(built):
    workspace, _, index, judged = built
    settings = AnnSettings("ivf_pq", **SMALL_IVF)
    build_ann_index(workspace, index, settings)
    found = ann_search(index, judged, 10, settings)
    for rows, scores, query in zip(found.rows, found.scores, judged):
        np.testing.assert_array_equal(scores, dot_scores(query, index.vectors[rows])[0])
        assert np.all(np.diff(scores) <= 0)


def test_other_search_settings_are_measured_again_and_other_build_parameters_rebuild(built):
    workspace, _, index, judged = built
    first = measure_ann(workspace, index, AnnSettings("ivf_pq", **SMALL_IVF), judged)
    wider = measure_ann(workspace, index, AnnSettings("ivf_pq", partitions=16, nprobes=16, refine=4), judged)
    assert wider.index.reused and not wider.reused  # same index, new search settings: a new measurement
    assert wider.recall >= first.recall and wider.recall == pytest.approx(1.0, abs=0.02)
    rebuilt = measure_ann(workspace, index, AnnSettings("ivf_pq", partitions=8, nprobes=1, refine=1), judged)
    assert not rebuilt.index.reused and rebuilt.index.index_uuid != first.index.index_uuid
    assert current_ann_index(workspace, index, AnnSettings("ivf_pq", **SMALL_IVF)) is None  # one index per table


def test_an_index_built_for_other_vectors_is_not_taken_for_the_current_one(built):
    workspace, _, index, judged = built
    settings = AnnSettings("ivf_pq", **SMALL_IVF)
    build_ann_index(workspace, index, settings)
    changed = type(index)(index.table, index.vectors, checksum="00000000")  # the table as if its vectors had changed
    assert current_ann_index(workspace, changed, settings) is None


def test_an_exact_run_is_unchanged_when_an_ann_index_exists(tmp_path, session_workspace, csn_mini):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    before = Engine(workspace, csn_mini, default_profiles()).run("dense-minilm")
    engine = Engine(workspace, csn_mini, default_profiles())
    index = engine.vectors("minilm")
    build_ann_index(workspace, index, AnnSettings("ivf_pq", **SMALL_IVF))
    after = engine.run("dense-minilm")
    assert "ann" not in after.meta
    assert after.rankings == before.rankings  # ids and scores, to the bit


def test_a_dense_profile_searches_exactly_unless_it_asks_for_ann():
    assert DenseProfile("d").ann_settings() is None
    asked = profile_from_dict({"kind": "dense", "search": "ann", "ann_index": "hnsw", "nprobes": 8, "refine": 2}, "d-ann")
    assert asked.ann_settings() == AnnSettings("hnsw", nprobes=8, refine=2)
    for bad in ({"search": "fast"}, {"ann_index": "lsh"}, {"nprobes": 0}, {"refine": 0}):
        with pytest.raises(ProfileError):
            profile_from_dict({"kind": "dense", **bad}, "bad")
    with pytest.raises(OptionError):
        AnnSettings("ivf_pq", sub_vectors=7).build_parameters(1000, 384)  # 7 does not divide 384


def test_an_ann_run_records_its_index_and_recall_in_its_meta(tmp_path, session_workspace, csn_mini):
    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    profiles = {**default_profiles(), "dense-ann": replace(DenseProfile("dense-ann"), search="ann", ann_index="ivf_pq",
                                                           nprobes=1, refine=1)}
    engine = Engine(workspace, csn_mini, profiles)
    exact, approximate = engine.run("dense-minilm"), engine.run("dense-ann")
    record = approximate.meta["ann"]["dense-ann"]
    index = engine.vectors("minilm")
    judged = engine.query_vectors("minilm", "torch", list(csn_mini.judged_queries))
    assert record["recall@100_vs_exact"] == ann_recall(index, judged, profiles["dense-ann"].ann_settings())
    assert record["queries"] == len(csn_mini.judged_queries) and record["kind"] == "ivf_pq"
    assert "ann" not in exact.meta
    hybrid = engine.run("hybrid-rrf")
    assert "ann" not in hybrid.meta


def test_index_ann_builds_the_index_and_prints_its_recall_and_refuses_without_a_dense_profile(tmp_path, session_workspace,
                                                                                             capsys):
    from core.cli.main import main

    workspace = Workspace.open(tmp_path / "ws", session_workspace.data_dir)
    common = ["--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), "index", "--dataset", "csn-mini"]
    assert main(common + ["--profiles", "dense-minilm", "--ann", "ivf_pq"]) == 0
    out = capsys.readouterr().out
    assert "ANN index IVF_PQ" in out and "dense-minilm: IVF_PQ" in out and "recall@100 vs exact" in out
    assert len(list(workspace.vectors_dir.glob("*.ann.json"))) == 1
    assert main(common + ["--profiles", "bm25-code", "--ann", "hnsw"]) == 2
    assert "--ann builds an index for dense profiles" in capsys.readouterr().err
