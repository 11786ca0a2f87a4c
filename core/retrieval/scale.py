"""The Ray engine at the retrieval layer: corpus embeddings for the profiles that need them, and runs split into Ray tasks.

``embed_with_ray`` is what ``index --engine ray`` and the Datasets page call. ``run_with_ray`` splits a run of
many queries into tasks; each task opens the indexes the driver built (Tantivy and the Lance table, read-only)
and ranks its share, so the merged run equals the single-process one.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from core.data.datasets import Dataset, Query
from core.errors import ClusterError
from core.index.distributed import RayOptions, check_address, check_capacity, connect, embed_corpus, import_ray
from core.index.encoders import THREADS_ENV
from core.index.lexical import BuildReport
from core.progress import fraction_reporter
from core.retrieval.engine import DEFAULT_DEPTH, Engine
from core.retrieval.profiles import DenseProfile, HybridProfile, Profile, RerankProfile
from core.retrieval.runs import Ranking, Run
from core.workspace import Workspace

ENGINES = ("local", "ray")


def dense_models(engine: Engine, names: Sequence[str]) -> list[tuple[str, str]]:
    """(model, backend) of every corpus embedding the named profiles read, in first-use order."""
    found: list[tuple[str, str]] = []

    def visit(name: str) -> None:
        profile = engine.profile(name)
        if isinstance(profile, DenseProfile):
            key = (profile.model, profile.backend)
        elif isinstance(profile, HybridProfile):
            for member in profile.members:
                visit(member)
            return
        elif isinstance(profile, RerankProfile):
            visit(profile.first_stage)
            if profile.reranker == "cross-encoder":
                return
            key = (profile.model, "torch")
        else:
            return
        if key not in found:
            found.append(key)

    for name in names:
        visit(name)
    return found


def embed_with_ray(engine: Engine, names: Sequence[str], options: RayOptions, rebuild: bool = False) -> list[BuildReport]:
    """Embed the corpus on Ray for every model the named profiles need; the engine then opens those tables as its own.

    A dataset opened from its corpus store is read by Ray's tasks from the store (``distributed.corpus_source``).
    """
    reports = []
    ray, started_here = connect(options)  # an unreachable address or too small a cluster is refused before a model loads
    try:
        check_capacity(ray, options)
        for model, backend in dense_models(engine, names):
            stage = f"embedding corpus on Ray ({model})"
            progress = fraction_reporter(engine.progress, stage, len(engine.dataset.documents))
            reports.append(embed_corpus(engine.workspace, engine.dataset, engine.encoder(model, backend), options, rebuild,
                                        progress))
    finally:
        if started_here:
            ray.shutdown()
    return reports


def build_indexes(engine: Engine, names: Sequence[str], options: RayOptions | None = None,
                  rebuild_embeddings: bool = False) -> list[BuildReport]:
    """Open or build every index the named profiles need, corpus embeddings on Ray when ``options`` are given.

    Returns the reports of this call only (indexes the engine had already opened are not listed again).
    """
    first = len(engine.reports)
    if options is not None:
        options.check()
        import_ray()
        check_address(options.address)  # at once, even when every table is current and Ray would not be asked
        engine.reports.extend(embed_with_ray(engine, names, options, rebuild=rebuild_embeddings))
    engine.warm(names)
    return engine.reports[first:]


def _rank_share(workspace: Workspace, dataset: Dataset, profiles: dict[str, Profile], name: str,
                query_ids: list[str], depth: int, threads: int) -> dict[str, Ranking]:
    """One Ray task: open the built indexes and rank a share of the queries (run in a Ray worker)."""
    os.environ[THREADS_ENV] = str(threads)
    engine = Engine(workspace, dataset, profiles)
    return dict(engine.run(name, [dataset.query(query_id) for query_id in query_ids], depth).rankings)


def run_with_ray(engine: Engine, name: str, options: RayOptions, queries: Sequence[Query] | None = None,
                 depth: int = DEFAULT_DEPTH, queries_per_task: int = 1000,
                 progress: Callable[[float], None] | None = None) -> Run:
    """The run of profile ``name`` (every judged query, or ``queries``) computed by Ray tasks of ``queries_per_task`` each.

    The indexes are opened (built when missing) here first, so tasks only read them; the rankings equal
    ``engine.run``'s, and the run's meta records the wall time and the number of tasks.
    """
    if queries_per_task < 1:
        raise ClusterError(f"Queries per task must be at least 1, got {queries_per_task}.")
    queries = list(queries) if queries is not None else list(engine.dataset.judged_queries)
    unknown = [q.id for q in queries if q.id not in engine.dataset.query_index or engine.dataset.query(q.id).text != q.text]
    if unknown:
        raise ClusterError(f"Runs on Ray take the dataset's own queries; {len(unknown)} are not among them (first: {unknown[0]!r}).")
    engine.warm([name])
    ray, started_here = connect(options)
    try:
        started = time.perf_counter()
        task = ray.remote(num_cpus=options.cpus_per_actor, max_retries=options.max_restarts)(_rank_share)
        shared = ray.put(engine.dataset), ray.put(dict(engine.profiles))
        shares = [[q.id for q in queries[start:start + queries_per_task]] for start in range(0, len(queries), queries_per_task)]
        pending = {task.remote(engine.workspace, *shared, name, ids, depth, max(1, int(options.cpus_per_actor))): len(ids)
                   for ids in shares}
        futures, rankings, done = list(pending), {}, 0
        while futures:
            ready, futures = ray.wait(futures, num_returns=1)
            rankings.update(ray.get(ready[0]))
            done += pending[ready[0]]
            if progress:
                progress(done / max(len(queries), 1))
        seconds = time.perf_counter() - started
    except ClusterError:
        raise
    except Exception as exc:
        raise ClusterError(f"The Ray run failed ({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}).") from exc
    finally:
        if started_here:
            ray.shutdown()
    single = engine.run(name, queries[:0], depth)  # the profile and provenance a run records, without ranking anything
    meta = {**single.meta, "seconds": seconds, "ms_per_query": 1000 * seconds / max(len(queries), 1), "queries": len(queries),
            "ray_tasks": len(shares)}
    return Run(name, {q.id: rankings[q.id] for q in queries}, single.dataset, single.profile, meta)
