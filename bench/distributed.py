"""Part 10: the Ray engine on this machine against the single process: corpus embedding and runs split into tasks.

On one machine Ray can only add overhead (start-up, actors loading the model, object-store copies);
these figures are the per-stage rates docs/scale.md projects from, and the equality checks that the
Ray path returns what the single process does.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time

import numpy as np

from bench.common import Measure, Target, peak_rss_bytes
from bench.context import BenchContext, bench_profiles, corpus_subset
from core.index.distributed import RayOptions, embed_corpus
from core.index.encoders import load_encoder
from core.index.vectors import open_current_corpus_table, open_vector_index
from core.retrieval.engine import Engine
from core.retrieval.scale import run_with_ray
from core.workspace import Workspace

EMBED_SET = "csn-python-code2doc"
RUN_PROFILES = ("bm25-code", "dense-minilm")


def ray_versus_single_process(context: BenchContext, documents: int | None) -> list[Measure]:
    import ray

    dataset = context.dataset(EMBED_SET)
    if documents and documents < len(dataset.documents):
        dataset = corpus_subset(dataset, documents, len(dataset.judged_queries))
    count = len(dataset.documents)
    encoder = load_encoder("minilm", context.workspace, "torch")
    encoder.encode(["warm up"])  # loading the model here is not building
    cpus = os.cpu_count() or 1
    actors = max(1, cpus - 1)  # one CPU stays free for reading and writing (SCALE.md)
    root = tempfile.mkdtemp(prefix="codeir-bench-ray-")
    measures = []
    try:
        workspace = Workspace.open(root, context.workspace.data_dir)
        started = time.perf_counter()
        single, _ = open_vector_index(workspace, dataset, encoder, rebuild=True)
        single_seconds = time.perf_counter() - started
        started = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        init_seconds = time.perf_counter() - started
        try:
            started = time.perf_counter()
            embed_corpus(workspace, dataset, encoder, RayOptions(actors=actors), rebuild=True)
            on_ray = open_current_corpus_table(workspace, dataset, encoder)
            ray_seconds = time.perf_counter() - started
            cosines = (on_ray.vectors * single.vectors).sum(axis=1)
            query_vectors = encoder.encode([q.text for q in dataset.queries])
            same_top100 = bool(np.array_equal(on_ray.search(query_vectors, 100).rows, single.search(query_vectors, 100).rows))
            measures += [
                Measure(10, f"embeddings (minilm, torch), one process, {dataset.name}", count / single_seconds, "docs/s", None,
                        f"{single_seconds:.1f} s for {count} docs (resumable chunks, one LanceDB commit)"),
                Measure(10, f"embeddings on Ray Data, {actors} actor(s) x 1 CPU, {dataset.name}", count / ray_seconds, "docs/s",
                        None, f"{ray_seconds:.1f} s for {count} docs, actors loading the model included; Ray start "
                              f"{init_seconds:.1f} s not included", {"ray_init_seconds": init_seconds, "actors": actors}),
                Measure(10, "Ray table vs one-process table: min cosine", float(cosines.min()), "", Target(">=", 0.9999),
                        f"{count} vectors; top-100 of {len(dataset.queries)} queries identical: {same_top100}",
                        {"same_top100": same_top100}),
            ]
            engine = Engine(workspace, dataset, bench_profiles())  # over the table just built: no second embedding
            queries = len(engine.dataset.judged_queries)
            for profile in RUN_PROFILES:
                engine.warm([profile])
                started = time.perf_counter()
                local = engine.run(profile)
                local_seconds = time.perf_counter() - started
                per_task = math.ceil(queries / cpus)
                started = time.perf_counter()
                split = run_with_ray(engine, profile, RayOptions(), queries_per_task=per_task)
                split_seconds = time.perf_counter() - started
                equal = all(split.rankings[q] == r for q, r in local.rankings.items())
                measures.append(Measure(
                    9, f"run {profile} split into {split.meta['ray_tasks']} Ray tasks, {dataset.name}", queries / split_seconds,
                    "queries/s", None, f"{queries} queries in {split_seconds:.1f} s (tasks open the indexes: included) vs "
                                       f"{local_seconds:.2f} s in one warm process; rankings equal: {equal}",
                    {"local_seconds": local_seconds, "ray_seconds": split_seconds, "equal": equal}))
        finally:
            ray.shutdown()
        measures.append(Measure(10, "peak RSS of the driver process", peak_rss_bytes() / 2**30, "GiB", None,
                                "the Ray actors and tasks run in processes of their own, not counted here"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return measures
