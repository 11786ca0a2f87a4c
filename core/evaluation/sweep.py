"""Quality against latency: one profile parameter (rerank pool, hybrid weight, BM25 k1 or b) swept, each point run and evaluated.

Each point is the base profile with one parameter changed (``dataclasses.replace``) under a name of
its own, since an Engine caches results by profile name. The points run on a copy of the engine
whose profiles include them; the copy shares the engine's opened indexes, models and cached results,
so nothing is built twice and the engine's own profiles stay as they were.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from core.errors import ProfileError
from core.progress import StageCounter
from core.evaluation.metrics import evaluate, parse_metric
from core.retrieval.profiles import Bm25Profile, HybridProfile, Profile, RerankProfile, check_references, profile_to_dict
from core.retrieval.engine import DEFAULT_DEPTH, Engine

DEFAULT_POOL_DEPTHS = (5, 10, 20, 50, 100)
DEFAULT_WEIGHTS = tuple(float(w) for w in np.round(np.linspace(0, 1, 11), 10))
DEFAULT_BM25_VALUES = {"k1": (0.3, 0.6, 0.9, 1.2, 1.5, 2.0), "b": (0.0, 0.25, 0.5, 0.75, 1.0)}


@dataclass(frozen=True)
class SweepPoint:
    """One setting of the swept parameter: the metric it reached and what it cost per query."""

    param: str
    value: float
    metric: str
    metric_value: float
    ms_per_query: float
    profile: str


def point_name(base: Profile, param: str, value: object) -> str:
    """A name unique to the base profile's parameters and the swept value (the engine caches by name)."""
    digest = hashlib.sha1(json.dumps(profile_to_dict(base), sort_keys=True).encode()).hexdigest()[:6]
    return f"{base.name}~{param}={value}~{digest}"


def run_points(engine: Engine, param: str, variants: Sequence[tuple[float, Profile]], metric: str,
               depth: int = DEFAULT_DEPTH) -> list[SweepPoint]:
    """Run and evaluate each (value, profile) on the engine's dataset, in the order given."""
    metric = parse_metric(metric).key
    if not variants:
        return []
    warm_up = replace(variants[0][1], name=f"{variants[0][1].name}~warm-up")
    profiles = {**engine.profiles, **{profile.name: profile for _, profile in [*variants, (None, warm_up)]}}
    for _, profile in variants:
        profile.validate()
    check_references(profiles)
    sweeper = replace(engine, profiles=profiles)  # shares the engine's indexes, models and result cache
    # One untimed pass first: it fills the member caches and warms the code paths, so the first point is not
    # charged for them and the points compare fairly. Index building reports its own stages; then the
    # points are counted as one stage, without each point's "retrieving" steps.
    sweeper.warm([warm_up.name])
    counter = StageCounter(engine.progress, f"sweeping {param} of {variants[0][1].name.split('~')[0]}", len(variants), "settings")
    counter(0)
    sweeper.progress = None
    sweeper.run(warm_up.name, depth=depth)
    points = []
    for value, profile in variants:
        sweeper.warm([profile.name])  # opening indexes and loading models is not query time
        run = sweeper.run(profile.name, depth=depth)
        score = evaluate(engine.dataset.qrels, run, [metric]).mean()[metric]
        points.append(SweepPoint(param, value, metric, score, float(run.meta["ms_per_query"]), profile.name))
        counter(len(points))
    return points


def sweep_rerank_pool(engine: Engine, base_profile: RerankProfile, pool_depths: Sequence[int] = DEFAULT_POOL_DEPTHS,
                      metric: str = "ndcg@10", depth: int = DEFAULT_DEPTH) -> list[SweepPoint]:
    """The rerank profile with each pool depth: deeper pools find more positives and cost more."""
    if not isinstance(base_profile, RerankProfile):
        raise ProfileError(f"{base_profile.name!r} is a {base_profile.kind} profile: the pool depth sweep needs a rerank profile.")
    variants = [(int(d), replace(base_profile, name=point_name(base_profile, "pool_depth", int(d)), pool_depth=int(d)))
                for d in pool_depths]
    return run_points(engine, "pool_depth", variants, metric, depth)


def sweep_hybrid_weight(engine: Engine, base: HybridProfile, weights: Sequence[float] = DEFAULT_WEIGHTS,
                        metric: str = "ndcg@10", depth: int = DEFAULT_DEPTH) -> list[SweepPoint]:
    """The two-member hybrid with the first member weighted w and the second 1 - w, for each w."""
    if not isinstance(base, HybridProfile):
        raise ProfileError(f"{base.name!r} is a {base.kind} profile: the weight sweep needs a hybrid profile.")
    if len(base.members) != 2:
        raise ProfileError(f"{base.name!r} fuses {len(base.members)} profiles: the weight sweep needs exactly two members.")
    variants = []
    for weight in weights:
        weight = round(float(weight), 10)
        if not 0.0 <= weight <= 1.0:
            raise ProfileError(f"Weight {weight} is outside [0, 1]: the first member gets w and the second 1 - w.")
        # tune="none": each point is scored with the weight it names, not with weights tuned per fold
        variants.append((weight, replace(base, name=point_name(base, "weight", weight), weights=(weight, round(1.0 - weight, 10)),
                                         tune="none")))
    return run_points(engine, "weight", variants, metric, depth)


def sweep_bm25(engine: Engine, base: Bm25Profile, param: str, values: Sequence[float] | None = None,
               metric: str = "ndcg@10", depth: int = DEFAULT_DEPTH) -> list[SweepPoint]:
    """The BM25 profile with k1 or b set to each value (the batch scorer scores every document at any k1/b)."""
    if not isinstance(base, Bm25Profile):
        raise ProfileError(f"{base.name!r} is a {base.kind} profile: the k1/b sweep needs a bm25 profile.")
    if param not in DEFAULT_BM25_VALUES:
        raise ProfileError(f"A BM25 sweep varies k1 or b, not {param!r}.")
    values = [round(float(v), 10) for v in (DEFAULT_BM25_VALUES[param] if values is None else values)]
    variants = [(v, replace(base, name=point_name(base, param, v), **{param: v})) for v in values]
    return run_points(engine, param, variants, metric, depth)


def sweep_frame(points: Sequence[SweepPoint]) -> pd.DataFrame:
    """The points as a table: param, value, metric, metric_value, ms_per_query, profile."""
    columns = ["param", "value", "metric", "metric_value", "ms_per_query", "profile"]
    return pd.DataFrame([[getattr(p, c) for c in columns] for p in points], columns=columns)


TIMING_NOISE_MS = 0.05  # differences in ms/query below this (or below 5% of the mean) are timer noise on this machine
TIMING_NOISE_SHARE = 0.05


@dataclass(frozen=True)
class LatencySpread:
    """The fastest and slowest ms/query of a sweep, and whether their gap is too small to mean anything."""

    low: float
    high: float

    @property
    def is_noise(self) -> bool:
        gap = self.high - self.low
        return gap < TIMING_NOISE_MS or gap < TIMING_NOISE_SHARE * (self.high + self.low) / 2


def latency_spread(points: Sequence[SweepPoint]) -> LatencySpread:
    """ms/query range over the points (a cheap second stage gives, e.g., 0.52-0.53 ms: noise, not cost)."""
    times = [p.ms_per_query for p in points]
    return LatencySpread(min(times, default=0.0), max(times, default=0.0))


def best_point(points: Sequence[SweepPoint]) -> SweepPoint:
    """The point with the highest metric value (ties: the faster, then the earlier)."""
    if not points:
        raise ProfileError("The sweep has no points yet: run it first.")
    return max(points, key=lambda p: (p.metric_value, -p.ms_per_query))


def point_profile(base: Profile, point: SweepPoint, name: str) -> Profile:
    """The base profile with the point's setting, under ``name``: what "save as profile" writes to profiles.toml."""
    if point.param == "pool_depth":
        return replace(base, name=name, pool_depth=int(point.value))
    if point.param == "weight":
        return replace(base, name=name, weights=(float(point.value), round(1.0 - float(point.value), 10)))
    if point.param in ("k1", "b"):
        return replace(base, name=name, **{point.param: float(point.value)})
    raise ProfileError(f"A sweep point of {point.param!r} cannot be saved as a profile.")
