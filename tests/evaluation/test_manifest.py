"""Manifests: saved with every run, holding the data hashes and metrics; re-running one says whether every metric matches."""
from __future__ import annotations

import copy
import json

import pytest

from core.data.catalog import open_dataset
from core.evaluation.manifest import (ManifestError, import_trec_run, load_manifest, make_saved_run, qrels_hash, reproduce,
                                      run_manifest)
from core.evaluation.metrics import DEFAULT_METRICS, evaluate
from core.retrieval.engine import Engine
from core.retrieval.profiles import default_profiles
from core.retrieval.runs import load_run, write_trec


@pytest.fixture(scope="module")
def saved(session_workspace, csn_mini):
    engine = Engine(session_workspace, csn_mini, default_profiles())
    run = make_saved_run(engine, "hybrid-rrf", metrics=DEFAULT_METRICS)
    return load_run(session_workspace.runs_dir, run.run_id)


def test_a_saved_run_carries_a_manifest_of_its_data_profiles_metrics_and_cost(saved, csn_mini):
    manifest = run_manifest(saved)
    assert manifest["run"]["run_id"] == saved.run_id
    data = manifest["dataset"]
    assert (data["corpus_hash"], data["queries_hash"], data["qrels_hash"]) == (csn_mini.corpus_hash, csn_mini.queries_hash,
                                                                               qrels_hash(csn_mini))
    assert set(manifest["profiles"]) == {"hybrid-rrf", "bm25-code", "dense-minilm"}  # the members travel too
    assert manifest["models"] and all(len(fp) >= 16 for fp in manifest["models"].values())
    assert manifest["packages"]["numpy"] and manifest["machine"]["cpus"] >= 1
    expected = evaluate(csn_mini.qrels, saved, DEFAULT_METRICS).mean()
    assert manifest["metrics"] == pytest.approx(expected, abs=1e-12)
    assert manifest["cost"]["latency_ms_p95"] >= manifest["cost"]["latency_ms_p50"] > 0


def test_qrels_hash_changes_with_a_grade_and_not_with_order(csn_mini):
    import dataclasses

    from core.data.datasets import Qrels

    judgments = {q: dict(g) for q, g in csn_mini.qrels.judgments.items()}
    reordered = dataclasses.replace(csn_mini, qrels=Qrels(dict(reversed(list(judgments.items())))))
    assert qrels_hash(reordered) == qrels_hash(csn_mini)
    first = next(iter(judgments))
    judgments[first] = {d: 2 for d in judgments[first]}
    assert qrels_hash(dataclasses.replace(csn_mini, qrels=Qrels(judgments))) != qrels_hash(csn_mini)


def test_reproducing_a_manifest_matches_every_metric(session_workspace, saved):
    result = reproduce(session_workspace, run_manifest(saved))
    assert result.matches and len(result.checks) == len(DEFAULT_METRICS)
    assert not [d for d in result.differences if d.startswith("dataset")]


def test_a_changed_parameter_or_metric_is_reported_as_a_difference(session_workspace, saved):
    manifest = copy.deepcopy(run_manifest(saved))
    manifest["metrics"]["ndcg@10"] += 0.01
    result = reproduce(session_workspace, manifest)
    assert not result.matches
    assert [c.metric for c in result.checks if not c.matches] == ["ndcg@10"]
    manifest = copy.deepcopy(run_manifest(saved))
    manifest["profiles"]["hybrid-rrf"]["rrf_k"] = 1
    assert not reproduce(session_workspace, manifest).matches


def test_bad_manifests_and_imported_runs_get_clear_errors(session_workspace, csn_mini, tmp_path, csn_engine):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not a JSON manifest"):
        load_manifest(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ManifestError, match="not a run manifest"):
        load_manifest(tmp_path / "other.json")
    trec = write_trec(csn_engine.run("bm25-plain"), tmp_path / "r.trec")
    imported = import_trec_run(session_workspace, trec, csn_mini, name="outside")
    manifest = run_manifest(load_run(session_workspace.runs_dir, imported.run_id))
    assert manifest["run"]["kind"] == "imported" and manifest["dataset"]["corpus_hash"] == csn_mini.corpus_hash
    assert manifest["metrics"]["ndcg@10"] == pytest.approx(
        evaluate(csn_mini.qrels, csn_engine.run("bm25-plain"), ["ndcg@10"]).mean()["ndcg@10"], abs=1e-9)
    with pytest.raises(ManifestError, match="imported run"):
        reproduce(session_workspace, manifest)


def test_a_trec_file_of_another_dataset_is_refused_at_import(session_workspace, tmp_path):
    cosqa = open_dataset(session_workspace, "cosqa-mini")
    csn = open_dataset(session_workspace, "csn-mini")
    path = tmp_path / "cosqa.trec"
    path.write_text("".join(f"{q.id} Q0 {d.id} 1 1.0 x\n" for q, d in zip(cosqa.judged_queries, cosqa.documents)))
    overlap = {q.id for q in cosqa.judged_queries} & {q.id for q in csn.judged_queries}
    if overlap:
        pytest.skip("the two slices share query ids")
    with pytest.raises(ManifestError, match="another dataset"):
        import_trec_run(session_workspace, path, csn)
