"""Parts 3, 4 and 6: our retrieval and metrics against the libraries people would otherwise use.

Each ratio compares two timings taken in the same process, on the same data, one after the other.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from bench.common import Measure, Target, time_interleaved
from bench.context import EVALUATED_PROFILES, BenchContext
from core.index.analyzers import get_analyzer
from core.data.datasets import Qrels
from core.evaluation.metrics import evaluate
from core.retrieval.engine import DEFAULT_DEPTH, Engine
from core.retrieval.runs import Ranking, Run

RETRIEVAL_SETS = ("cosqa", "csn-python-code2doc")
BM25_PROFILES = ("bm25-code", "bm25-plain")
# our metric key -> ranx name, pytrec_eval measure (mrr@10 is recip_rank over rankings cut at 10)
METRICS = {"ndcg@10": ("ndcg@10", "ndcg_cut_10"), "hit@10": ("hit_rate@10", "success_10"),
           "recall@100": ("recall@100", "recall_100"), "mrr@10": ("mrr@10", "recip_rank"),
           "map@100": ("map@100", "map_cut_100"), "precision@10": ("precision@10", "P_10")}


def _rerun(engine: Engine, profile: str) -> Run:
    engine._results.clear()  # the Engine caches results per profile; a timed run must retrieve again
    return engine.run(profile)


def _bm25s_run(engine: Engine, name: str, documents: np.ndarray, scores: np.ndarray) -> Run:
    """bm25s results as a Run; zero-score padding (documents sharing no term with the query) is dropped."""
    ids = np.array([d.id for d in engine.dataset.documents], dtype=object)
    rankings = {}
    for query, rows, row_scores in zip(engine.dataset.judged_queries, documents, scores):
        matched = row_scores > 0
        rankings[query.id] = Ranking(tuple(ids[rows[matched]].tolist()), tuple(float(s) for s in row_scores[matched]))
    return Run(name, rankings, engine.dataset.name)


def bm25_versus_bm25s(context: BenchContext) -> list[Measure]:
    """Part 3: batch top-100 BM25, our Tantivy path against bm25s fed the very same tokens."""
    import bm25s

    measures = []
    for set_name in RETRIEVAL_SETS:
        engine = context.engine(set_name)
        queries = engine.dataset.judged_queries
        for profile_name in BM25_PROFILES:
            profile = engine.profile(profile_name)
            analyzer = get_analyzer(profile.analyzer)
            index = engine.lexical(profile.analyzer)

            started = time.perf_counter()
            retriever = bm25s.BM25(k1=profile.k1, b=profile.b, method="lucene")
            retriever.index([analyzer.tokenize(d.full_text) for d in engine.dataset.documents], show_progress=False)
            bm25s_build = time.perf_counter() - started

            def theirs():
                tokens = [analyzer.tokenize(q.text) for q in queries]  # tokenising is part of both timings
                return retriever.retrieve(tokens, k=DEFAULT_DEPTH, show_progress=False)

            theirs()  # numba compiles bm25s' scorer on the first call
            timed = time_interleaved({"engine": lambda: _rerun(engine, profile_name),
                                      "tantivy": lambda: [index.search(q.text, DEFAULT_DEPTH) for q in queries],
                                      "bm25s": theirs}, context.repeats)
            ours, tantivy, other = timed["engine"], timed["tantivy"], timed["bm25s"]
            ours_qps, tantivy_qps, bm25s_qps = (len(queries) / t.median for t in (ours, tantivy, other))
            ours_ndcg = evaluate(engine.dataset.qrels, ours.result, ["ndcg@10"]).mean()["ndcg@10"]
            exact_run = engine.run(_exact_lengths(engine, profile_name))
            exact_ndcg = evaluate(engine.dataset.qrels, exact_run, ["ndcg@10"]).mean()["ndcg@10"]
            bm25s_run = _bm25s_run(engine, f"bm25s-{profile.analyzer}", other.result.documents, other.result.scores)
            bm25s_ndcg = evaluate(engine.dataset.qrels, bm25s_run, ["ndcg@10"]).mean()["ndcg@10"]
            label = f"{set_name}, {profile.analyzer} analyzer"
            measures.append(Measure(
                3, f"BM25 top-100 throughput ours/bm25s, {label}", ours_qps / bm25s_qps, "x", Target(">=", 1.0),
                f"Engine run {ours_qps:,.0f} q/s (batch scorer; Tantivy one query per call {tantivy_qps:,.0f} q/s), "
                f"bm25s {bm25s_qps:,.0f} q/s (numba, one thread); {len(queries)} queries, query tokenising included in both",
                {"ours_seconds": ours.seconds, "tantivy_seconds": tantivy.seconds, "bm25s_seconds": other.seconds,
                 "bm25s_index_build_s": bm25s_build}))
            measures.append(Measure(
                3, f"BM25 nDCG@10 ours - bm25s, {label}", ours_ndcg - bm25s_ndcg, "", Target(">=", 0.0),
                f"ours {ours_ndcg:.4f}, bm25s {bm25s_ndcg:.4f} (same tokens, k1={profile.k1}, b={profile.b}; "
                f"Tantivy's one-byte length norms)", {"ours": ours_ndcg, "bm25s": bm25s_ndcg}))
            measures.append(Measure(
                3, f"BM25 nDCG@10 ours with exact lengths - bm25s, {label}", exact_ndcg - bm25s_ndcg, "", Target(">=", 0.0),
                f"length_norm=\"exact\" {exact_ndcg:.4f}, bm25s {bm25s_ndcg:.4f}: what is left of the gap above once "
                f"lengths are not quantised", {"ours_exact": exact_ndcg, "bm25s": bm25s_ndcg}))
    return measures


def _exact_lengths(engine: Engine, profile_name: str) -> str:
    """Register the profile's twin with exact document lengths on the engine and return its name."""
    name = f"{profile_name}-exact-lengths"
    engine.profiles[name] = replace(engine.profile(profile_name), name=name, length_norm="exact")
    return name


def numpy_flat_top_k(query_vectors: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The plain numpy baseline: inner products, argpartition, then sort the k best."""
    scores = query_vectors @ vectors.T
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    best_scores = np.take_along_axis(scores, best, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best, order, axis=1), np.take_along_axis(best_scores, order, axis=1)


def dense_versus_numpy(context: BenchContext) -> list[Measure]:
    """Part 4: our batch dense search against a numpy flat inner product over the same vectors."""
    measures = []
    for set_name in RETRIEVAL_SETS:
        engine = context.engine(set_name)
        index = engine.vectors("minilm")
        query_vectors = engine.query_vectors("minilm", "torch", engine.dataset.judged_queries)
        timed = time_interleaved({"ours": lambda: index.search(query_vectors, DEFAULT_DEPTH),
                                  "numpy": lambda: numpy_flat_top_k(query_vectors, index.vectors, DEFAULT_DEPTH)}, context.repeats)
        ours, flat = timed["ours"], timed["numpy"]
        rows, scores = flat.result
        same_order = np.all(ours.result.rows == rows, axis=1)
        # rows may only differ where scores tie: then the score sequences are still identical
        same_scores = np.all(np.isclose(ours.result.scores, scores, rtol=0, atol=1e-6), axis=1)
        differing = int((~same_order & ~same_scores).sum())
        measures.append(Measure(
            4, f"dense top-100 time ours/numpy, {set_name}", ours.median / flat.median, "x", Target("<=", 2.0),
            f"ours {ours.median * 1000:.1f} ms, numpy {flat.median * 1000:.1f} ms for {len(query_vectors)} queries x "
            f"{len(index.vectors)} docs", {"ours_seconds": ours.seconds, "numpy_seconds": flat.seconds}))
        measures.append(Measure(
            4, f"dense top-100 queries differing from numpy, {set_name}", differing, "queries", Target("<=", 0),
            f"{int((~same_order).sum())} differ in order only where scores tie" if (~same_order).any() else "identical rows and order"))
    return measures


def _as_dicts(run: Run, cut: int | None = None) -> dict[str, dict[str, float]]:
    return {query_id: dict(zip(ranking.doc_ids[:cut], ranking.scores[:cut])) for query_id, ranking in run.rankings.items()}


def _rank_scored(run: Run) -> dict[str, dict[str, float]]:
    """The run with scores replaced by len - rank: the Engine's (trec_eval's) order, with no ties left to break.

    ranx orders documents of equal score its own way; trec_eval, pytrec_eval and we order them by doc
    id, descending. Handing ranx tie-free scores compares the metric arithmetic, not tie order.
    """
    return {query_id: {doc_id: float(len(ranking) - rank) for rank, doc_id in enumerate(ranking.doc_ids)}
            for query_id, ranking in run.rankings.items()}


def _max_delta(ours: dict[str, dict[str, float]], theirs: dict[str, dict[str, float]]) -> float:
    """Largest |difference| over every (metric, query) pair; a query one side lacks counts as 0 there."""
    worst = 0.0
    for metric, values in ours.items():
        for query_id, value in values.items():
            worst = max(worst, abs(value - float(theirs.get(metric, {}).get(query_id, 0.0))))
    return worst


@dataclass(frozen=True)
class _RunsOfOneSet:
    """One set's qrels and runs, in our types and in the dict forms ranx and pytrec_eval read."""

    qrels: Qrels
    qrels_dict: dict[str, dict[str, int]]
    runs: tuple[Run, ...]
    run_dicts: tuple[dict, ...]       # raw scores
    cut_dicts: tuple[dict, ...]       # raw scores, top 10 (pytrec_eval's recip_rank has no cutoff)
    ranked_dicts: tuple[dict, ...]    # rank-derived scores, for ranx

    @staticmethod
    def of(engine: Engine) -> "_RunsOfOneSet":
        engine.warm(EVALUATED_PROFILES)
        runs = tuple(engine.run(name) for name in EVALUATED_PROFILES)
        return _RunsOfOneSet(engine.dataset.qrels, {q: dict(g) for q, g in engine.dataset.qrels.judgments.items()}, runs,
                             tuple(_as_dicts(r) for r in runs), tuple(_as_dicts(r, 10) for r in runs),
                             tuple(_rank_scored(r) for r in runs))


def metrics_versus_libraries(context: BenchContext) -> list[Measure]:
    """Part 6: our metrics against ranx and pytrec_eval over the four profiles' runs on both sets."""
    import pytrec_eval
    import ranx

    sets = [_RunsOfOneSet.of(context.engine(name)) for name in RETRIEVAL_SETS]
    keys = list(METRICS)

    def ours():
        out = []
        for one in sets:
            for run in one.runs:
                frame = evaluate(one.qrels, run, keys).per_query
                out.append({key: frame[key].to_dict() for key in keys})
        return out

    def with_ranx(tie_free: bool = True):
        out = []
        for one in sets:
            ranx_qrels = ranx.Qrels(one.qrels_dict)
            for run_dict in one.ranked_dicts if tie_free else one.run_dicts:
                ranx_run = ranx.Run(run_dict)
                ranx.evaluate(ranx_qrels, ranx_run, [names[0] for names in METRICS.values()])
                out.append({key: dict(ranx_run.scores[names[0]]) for key, names in METRICS.items()})
        return out

    def with_pytrec_eval():
        out = []
        for one in sets:
            evaluator = pytrec_eval.RelevanceEvaluator(one.qrels_dict, {names[1] for key, names in METRICS.items() if key != "mrr@10"})
            reciprocal = pytrec_eval.RelevanceEvaluator(one.qrels_dict, {"recip_rank"})
            for run_dict, cut_dict in zip(one.run_dicts, one.cut_dicts):
                full, cut = evaluator.evaluate(run_dict), reciprocal.evaluate(cut_dict)
                out.append({key: {q: (cut if key == "mrr@10" else full)[q][names[1]] for q in full}
                            for key, names in METRICS.items()})
        return out

    with_ranx()  # numba compiles ranx's metrics on the first call
    timings = time_interleaved({"ours": ours, "ranx": with_ranx, "pytrec_eval": with_pytrec_eval}, context.repeats)
    count = sum(len(one.runs) for one in sets)
    raw_ranx = max(_max_delta(a, b) for a, b in zip(timings["ours"].result, with_ranx(tie_free=False)))
    measures = []
    for library in ("ranx", "pytrec_eval"):
        delta = max(_max_delta(a, b) for a, b in zip(timings["ours"].result, timings[library].result))
        how = "raw scores (trec_eval tie order)"
        if library == "ranx":  # metrics read only the order: equal on tie-free scores means raw differences are tie order
            how = (f"rank-derived scores; on raw scores max |delta| {raw_ranx:.4f}"
                   + (", only from ranx's own order of tied scores" if delta <= 1e-9 else ""))
        measures.append(Measure(6, f"metrics max |ours - {library}|", delta, "", Target("<=", 1e-9),
                                f"{len(METRICS)} metrics x every query x {count} runs; {how}", {"raw_scores_max_delta": raw_ranx}
                                if library == "ranx" else {}))
        measures.append(Measure(6, f"metrics time ours/{library}", timings["ours"].median / timings[library].median, "x", None,
                                f"ours {timings['ours'].median * 1000:.0f} ms, {library} {timings[library].median * 1000:.0f} ms "
                                f"for {count} runs ({', '.join(RETRIEVAL_SETS)}; its data structures built inside its timing)",
                                {name: t.seconds for name, t in timings.items()}))
    return measures
