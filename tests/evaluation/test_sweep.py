"""Parameter sweeps run real modified profiles and report what the same profile scores when run directly."""
from __future__ import annotations

from dataclasses import replace

import pytest

from core.errors import ProfileError
from core.evaluation.metrics import evaluate
from core.retrieval.profiles import HybridProfile
from core.retrieval.profiles import Bm25Profile
from core.evaluation.sweep import point_name, sweep_bm25, sweep_frame, sweep_hybrid_weight, sweep_rerank_pool


def direct_score(engine, name: str, metric: str = "ndcg@10") -> float:
    return evaluate(engine.dataset.qrels, engine.run(name), [metric]).mean()[metric]


def test_pool_sweep_point_equals_the_profile_with_that_pool_depth(csn_engine):
    base = csn_engine.profile("rerank-fusion")  # pool_depth 50
    points = sweep_rerank_pool(csn_engine, base, pool_depths=(1, 10, 50), metric="ndcg@10")
    assert [p.value for p in points] == [1, 10, 50]
    assert points[2].metric_value == pytest.approx(direct_score(csn_engine, "rerank-fusion"), abs=1e-12)
    # a pool of one document leaves the first stage's order untouched
    assert points[0].metric_value == pytest.approx(direct_score(csn_engine, "hybrid-rrf"), abs=1e-12)
    assert all(p.ms_per_query > 0 and p.param == "pool_depth" and p.metric == "ndcg@10" for p in points)


def test_weight_sweep_point_equals_the_weighted_hybrid(csn_engine):
    base = csn_engine.profile("hybrid-weighted")  # weights (0.3, 0.7), minmax; tuned per fold, which a sweep point is not
    points = sweep_hybrid_weight(csn_engine, base, weights=[0.0, 0.3, 1.0], metric="hit@10")
    assert [p.value for p in points] == [0.0, 0.3, 1.0]
    fixed = replace(base, name="hybrid-weighted-0.3", tune="none")
    untuned = replace(csn_engine, profiles={**csn_engine.profiles, fixed.name: fixed})
    assert points[1].metric_value == pytest.approx(direct_score(untuned, fixed.name, "hit@10"), abs=1e-12)
    assert points[0].metric_value == pytest.approx(direct_score(csn_engine, "dense-minilm", "hit@10"), abs=1e-12)


def test_a_sweep_leaves_the_engines_profiles_alone(csn_engine):
    before = dict(csn_engine.profiles)
    points = sweep_rerank_pool(csn_engine, csn_engine.profile("rerank-fusion"), pool_depths=(5,))
    assert csn_engine.profiles == before
    assert points[0].profile not in csn_engine.profiles


def test_point_names_differ_when_the_base_parameters_differ():
    base = HybridProfile("h", members=("bm25-code", "dense-minilm"), method="weighted")
    other = replace(base, normalization="zscore")
    assert point_name(base, "weight", 0.5) != point_name(other, "weight", 0.5)
    assert point_name(base, "weight", 0.5) != point_name(base, "weight", 0.6)


def test_sweeps_refuse_the_wrong_kind_of_profile(csn_engine):
    with pytest.raises(ProfileError, match="rerank profile"):
        sweep_rerank_pool(csn_engine, csn_engine.profile("hybrid-rrf"))
    with pytest.raises(ProfileError, match="hybrid profile"):
        sweep_hybrid_weight(csn_engine, csn_engine.profile("bm25-code"))
    three = HybridProfile("three", members=("bm25-code", "bm25-plain", "dense-minilm"))
    with pytest.raises(ProfileError, match="exactly two"):
        sweep_hybrid_weight(csn_engine, three)


def test_sweep_refuses_a_pool_depth_its_profile_rejects(csn_engine):
    with pytest.raises(ProfileError, match="pool_depth"):
        sweep_rerank_pool(csn_engine, csn_engine.profile("rerank-fusion"), pool_depths=(0,))


def test_sweep_frame_has_one_row_per_point(csn_engine):
    points = sweep_rerank_pool(csn_engine, csn_engine.profile("rerank-fusion"), pool_depths=(5, 20))
    frame = sweep_frame(points)
    assert list(frame["value"]) == [5, 20]
    assert list(frame["metric_value"]) == [p.metric_value for p in points]


def test_an_empty_sweep_runs_nothing(csn_engine):
    assert sweep_rerank_pool(csn_engine, csn_engine.profile("rerank-fusion"), pool_depths=()) == []


def test_bm25_sweep_points_equal_profiles_run_directly(csn_engine):
    base = csn_engine.profile("bm25-code")  # k1 1.2, b 0.75
    points = sweep_bm25(csn_engine, base, "b", (0.0, 0.75), "ndcg@10")
    assert [p.value for p in points] == [0.0, 0.75] and all(p.param == "b" for p in points)
    assert points[1].metric_value == pytest.approx(direct_score(csn_engine, "bm25-code"), abs=1e-12)
    no_norm = replace(base, name="bm25-code-b0", b=0.0)
    engine = replace(csn_engine, profiles={**csn_engine.profiles, no_norm.name: no_norm})
    assert points[0].metric_value == pytest.approx(direct_score(engine, no_norm.name), abs=1e-12)
    assert points[0].metric_value != points[1].metric_value
    assert [p.value for p in sweep_bm25(csn_engine, base, "k1", None)] == [0.3, 0.6, 0.9, 1.2, 1.5, 2.0]


def test_bm25_sweep_refuses_other_parameters_and_values_out_of_range(csn_engine):
    with pytest.raises(ProfileError, match="k1 or b"):
        sweep_bm25(csn_engine, csn_engine.profile("bm25-code"), "analyzer", (1,))
    with pytest.raises(ProfileError, match="k1 must lie"):
        sweep_bm25(csn_engine, Bm25Profile("bm25-x"), "k1", (11.0,))
    with pytest.raises(ProfileError, match="bm25 profile"):
        sweep_bm25(csn_engine, csn_engine.profile("dense-minilm"), "k1", (1.0,))


def test_a_latency_spread_of_hundredths_of_a_millisecond_is_called_noise():
    from core.evaluation.sweep import SweepPoint, latency_spread

    def point(ms: float) -> SweepPoint:
        return SweepPoint("pool_depth", 10, "ndcg@10", 0.5, ms, "p")

    assert latency_spread([point(0.52), point(0.53), point(0.525)]).is_noise  # the cheap rerank
    assert not latency_spread([point(0.5), point(2.0)]).is_noise
    assert not latency_spread([point(10.0), point(12.0)]).is_noise
    assert latency_spread([point(10.0), point(10.3)]).is_noise  # 3 % of the mean


def test_the_best_point_of_a_sweep_is_saved_as_a_profile_that_reproduces_its_score(csn_engine, tmp_path):
    from core.evaluation.metrics import evaluate
    from core.evaluation.sweep import best_point, point_profile, sweep_bm25
    from core.retrieval.engine import Engine
    from core.retrieval.profiles import load_profiles, upsert_profile

    base = csn_engine.profile("bm25-code")
    points = sweep_bm25(csn_engine, base, "k1", [0.3, 1.2, 2.0], "ndcg@10")
    best = best_point(points)
    assert best.metric_value == max(p.metric_value for p in points)
    path = tmp_path / "profiles.toml"
    upsert_profile(path, point_profile(base, best, "bm25-best-k1"))
    saved = load_profiles(path)["bm25-best-k1"]
    assert saved.k1 == best.value and saved.b == base.b and saved.analyzer == base.analyzer
    engine = Engine(csn_engine.workspace, csn_engine.dataset, load_profiles(path))
    score = evaluate(csn_engine.dataset.qrels, engine.run("bm25-best-k1"), ["ndcg@10"]).mean()["ndcg@10"]
    assert score == pytest.approx(best.metric_value, abs=1e-12)
