"""Part 11: the diagnosis figures — bootstrap intervals at leaderboard scale, and drawing a 10k-point embedding map."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.common import Measure, Target, time_repeated
from bench.context import BenchContext
from core.data.datasets import Dataset, Document, Qrels, Query
from core.evaluation.bootstrap import percentile_intervals
from core.evaluation.embedding_map import EmbeddingMap, map_points
from ui.charts import embedding_map_figure

PROFILES, QUERIES, METRICS, RESAMPLES = 6, 500, 4, 10_000
MAP_POINTS = 10_000
MAP_SET = "cosqa"


def bootstrap_scale(context: BenchContext) -> list[Measure]:
    """6 profiles x 500 queries x 4 metrics, 10,000 paired resamples, 95% percentile intervals."""
    rng = np.random.default_rng(0)
    # per-query values shaped like real metrics: hit (0/1) and graded values in [0, 1]; the cost does not depend on them
    values = np.where(rng.random((QUERIES, PROFILES * METRICS)) < 0.4, 0.0, rng.random((QUERIES, PROFILES * METRICS)))
    timing = time_repeated(lambda: percentile_intervals(values, RESAMPLES), max(context.repeats, 3))
    return [Measure(11, f"bootstrap CIs: {PROFILES} profiles x {QUERIES} queries x {METRICS} metrics x {RESAMPLES:,} resamples",
                    timing.median, "s", Target("<=", 0.5),
                    "core.evaluation.bootstrap.percentile_intervals; one shared resample-count matrix, one matrix product",
                    {"seconds": timing.seconds})]


def map_drawing(context: BenchContext) -> list[Measure]:
    """A cached 10k-point map (documents + queries) read from disk, coloured by a run and turned into the Plotly JSON sent to the browser."""
    source = context.dataset(MAP_SET)
    texts = [d.full_text for d in source.documents] or ["def f(): pass"]
    documents = tuple(Document(f"d{i}", texts[i % len(texts)], language="python") for i in range(MAP_POINTS - 1000))
    queries = tuple(Query(f"q{i}", f"query {i}: {texts[i % len(texts)][:60]}", "python") for i in range(1000))
    dataset = Dataset("map-bench", documents, queries, Qrels({q.id: {f"d{i}": 1} for i, q in enumerate(queries)}))
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "map.npz"
        np.savez(cache, doc_xy=rng.normal(size=(len(documents), 2)).astype(np.float32),
                 query_xy=rng.normal(size=(len(queries), 2)).astype(np.float32))

        def draw() -> int:
            with np.load(cache) as stored:
                projection = EmbeddingMap(dataset.name, "minilm", "pca", tuple(d.id for d in documents), stored["doc_xy"],
                                          tuple(q.id for q in queries), stored["query_xy"])
            points = map_points(projection, dataset)
            figure = embedding_map_figure(points, "rank", 10, selected="q0")
            return len(figure.to_json())

        timing = time_repeated(draw, max(context.repeats, 3))
    return [Measure(11, f"embedding map: {MAP_POINTS:,} points from the cache to Plotly JSON", timing.median, "s", Target("<=", 2.0),
                    f"read the cached projection, map_points (hover text from {MAP_SET}'s corpus), the WebGL figure and its "
                    f"JSON ({timing.result / 1e6:.1f} MB); the browser's WebGL drawing is not included",
                    {"seconds": timing.seconds, "json_bytes": timing.result})]


def diagnosis(context: BenchContext) -> list[Measure]:
    return [*bootstrap_scale(context), *map_drawing(context)]
