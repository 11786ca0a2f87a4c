"""Parts 5 and 7: what building costs, the embedding backends (torch against int8 ONNX) and cold index builds."""
from __future__ import annotations

import itertools
import shutil
import statistics
import tempfile
import time
from dataclasses import replace

import numpy as np

from bench.common import Measure, Target, time_repeated
from bench.context import ONNX_PROFILE, SETS, BenchContext, corpus_subset
from core.index.encoders import load_encoder
from core.errors import WorkbenchError
from core.index.lexical import open_lexical_index
from core.evaluation.metrics import evaluate
from core.index.vectors import open_vector_index
from core.workspace import Workspace

BACKEND_SETS = ("cosqa", "csn-python-code2doc")
QUICK_DOCUMENTS, QUICK_QUERIES = 500, 100


def _docs_per_second(encoder, texts: list[str]) -> tuple[float, float]:
    """Documents per wall-clock second, and per CPU-second of this process (less distorted by other workers' load)."""
    started, cpu = time.perf_counter(), time.process_time()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - started), len(texts) / max(time.process_time() - cpu, 1e-9)


def _quality_set(context: BenchContext, name: str) -> str:
    """The set itself, or with --quick a subset (own name, own tables) of it."""
    if not context.quick:
        return name
    return context.add_dataset(corpus_subset(context.dataset(name), QUICK_DOCUMENTS, QUICK_QUERIES))


def embedding_backends(context: BenchContext) -> list[Measure]:
    """Part 5: int8 ONNX against torch for MiniLM: throughput ratio, and nDCG@10 of both on both sets."""
    try:
        torch_encoder = load_encoder("minilm", context.workspace, "torch")
        onnx_encoder = load_encoder("minilm", context.workspace, "onnx")
        onnx_encoder.encode(["warm up"])  # the first use exports and quantises the model once; not timed
    except (ImportError, WorkbenchError) as exc:
        return [Measure(5, "embedding backends", None, "", None, f"skipped: ONNX backend unavailable ({exc})")]
    torch_encoder.encode(["warm up"])
    corpus = context.dataset("cosqa").documents
    texts = [d.full_text for d in corpus[: 128 if context.quick else 1024]]
    torch_rates, onnx_rates = [], []
    for _ in range(context.repeats):  # interleaved, so both backends meet the same machine load
        torch_rates.append(_docs_per_second(torch_encoder, texts))
        onnx_rates.append(_docs_per_second(onnx_encoder, texts))
    cosine = float(np.mean(np.sum(torch_encoder.encode(texts[:128]) * onnx_encoder.encode(texts[:128]), axis=1)))
    torch_rate, onnx_rate = (statistics.median(wall for wall, _ in rates) for rates in (torch_rates, onnx_rates))
    torch_cpu, onnx_cpu = (statistics.median(cpu for _, cpu in rates) for rates in (torch_rates, onnx_rates))
    measures = [Measure(
        5, "embedding docs/s onnx-int8/torch, minilm", onnx_rate / torch_rate, "x", Target(">=", 2.5),
        f"onnx {onnx_rate:,.0f} docs/s, torch {torch_rate:,.0f} docs/s on {len(texts)} cosqa functions "
        f"(per CPU-second: onnx {onnx_cpu:,.0f}, torch {torch_cpu:,.0f}, {onnx_cpu / torch_cpu:.2f}x); "
        f"mean cosine torch~onnx {cosine:.4f}",
        {"torch_docs_per_s_wall_cpu": torch_rates, "onnx_docs_per_s_wall_cpu": onnx_rates, "mean_cosine": cosine})]
    for set_name in BACKEND_SETS:
        engine = context.engine(_quality_set(context, set_name))
        scores = {}
        for profile in ("dense-minilm", ONNX_PROFILE):
            engine.warm([profile])
            scores[profile] = evaluate(engine.dataset.qrels, engine.run(profile), ["ndcg@10"]).mean()["ndcg@10"]
        builds = [str(r) for r in engine.reports if "embeddings" in r.what]
        delta = scores[ONNX_PROFILE] - scores["dense-minilm"]
        measures.append(Measure(
            5, f"|nDCG@10 onnx - torch|, {engine.dataset.name}", abs(delta), "", Target("<=", 0.005),
            f"torch {scores['dense-minilm']:.4f}, onnx {scores[ONNX_PROFILE]:.4f} (onnx - torch = {delta:+.4f}); "
            f"{len(engine.dataset.documents)} docs, {len(engine.dataset.judged_queries)} queries",
            {"ndcg@10": scores, "builds": builds, "delta": delta}))
    return measures


_TWINS = itertools.count()


def _twin_build(workspace: Workspace, dataset, encoder) -> int:
    """Open the corpus embeddings of a new dataset holding the same corpus; return how many texts were encoded."""
    _, report = open_vector_index(workspace, replace(dataset, name=f"{dataset.name}-twin{next(_TWINS)}"), encoder)
    return report.items - report.cached


def cold_builds(context: BenchContext, build_repeats: int) -> list[Measure]:
    """Part 7: BM25 index and corpus embeddings built from nothing, in a temporary workspace, per bundled set.

    Then the same corpus under another dataset name: its table is assembled from the embedding cache.
    """
    encoder = load_encoder("minilm", context.workspace, "torch")
    encoder.encode(["warm up"])  # loading the model is not building
    root = tempfile.mkdtemp(prefix="codeir-bench-cold-")
    measures = []
    try:
        workspace = Workspace.open(root, context.workspace.data_dir)
        for set_name in SETS:
            dataset = context.dataset(set_name)
            if context.quick:
                dataset = corpus_subset(dataset, QUICK_DOCUMENTS, 50)
            count = len(dataset.documents)
            bm25 = time_repeated(lambda: open_lexical_index(workspace, dataset, "code", rebuild=True), context.repeats)
            embed = time_repeated(lambda: open_vector_index(workspace, dataset, encoder, rebuild=True), build_repeats)
            measures.append(Measure(
                7, f"cold build BM25 (code analyzer), {dataset.name}", count / bm25.median, "docs/s", None,
                f"{bm25.median:.2f} s for {count} docs, median of {len(bm25.seconds)}", {"seconds": bm25.seconds}))
            measures.append(Measure(
                7, f"cold build embeddings (minilm, torch), {dataset.name}", count / embed.median, "docs/s", None,
                f"{embed.median:.1f} s for {count} docs, median of {len(embed.seconds)}", {"seconds": embed.seconds}))
            measures.append(Measure(
                7, f"cold build total, {dataset.name}", bm25.median + embed.median, "s", None,
                f"{count / (bm25.median + embed.median):,.0f} docs/s end to end"))
            twin = time_repeated(lambda: _twin_build(workspace, dataset, encoder), context.repeats)
            measures.append(Measure(
                7, f"embeddings of another dataset with the same corpus (embedding cache), {dataset.name}", twin.median, "s",
                None, f"{count} docs, {twin.result} encoded (cold: {embed.median:.1f} s), median of {len(twin.seconds)}",
                {"seconds": twin.seconds, "encoded": twin.result}))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return measures
