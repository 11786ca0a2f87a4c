"""Part 14: a real large corpus, every source tree on this machine pooled into one benchmark, docs/s per stage.

The corpus is what ``python -m core build-benchmark --all-sources`` builds: the documented functions of
every installed Python package and of Debian's Go, JavaScript, Ruby, PHP (and Java) trees, as a code2doc
benchmark (the corpus holds the docstrings). Extraction, the benchmark's build and the BM25 index cover the
whole corpus. Embedding the whole corpus on a few shared CPU cores would take an hour or more, so the
embedding rates (torch and int8 ONNX in one process, torch on Ray Data) are measured on a fixed, seeded
sample of it; the output says so. The IVF index is built at the corpus's full size from the sample's real
vectors repeated with noise (as part 8 does), since only the sample is embedded. Where a CUDA GPU is at hand,
the whole corpus is embedded on it and indexed, against the goal of 1M docstrings in 3 minutes; nothing
else here, nor in the product, needs one.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from dataclasses import replace

import numpy as np

from bench.common import Measure, Target, load_average, peak_rss_bytes
from bench.context import BenchContext
from bench.scale import synthetic_vectors
from core.data.datasets import Dataset, Qrels, write_dataset
from core.data.source_benchmark import DEFAULT_SEED, benchmark_meta, build_benchmark, extract_functions_from_trees
from core.data.source_trees import DEBIAN_TREES, locate_tree, machine_source_trees
from core.errors import WorkbenchError
from core.index.distributed import RayOptions, embed_corpus
from core.index.encoders import load_encoder
from core.index.lexical import open_lexical_index
from core.index.vectors import open_vector_index, record_batches, vectors_to_arrow
from core.workspace import Workspace

NAME = "all-sources-code2doc"
SAMPLE_SEED = 20261201
GPU_GOAL_DOCS, GPU_GOAL_SECONDS = 1_000_000, 180
MIN_CORPUS = 200_000  # functions issue 18 asks of the real corpus
ANN_INDEX_TYPE = "IVF_FLAT"  # the index part 14 times (core.index.ann's ivf_flat; runs use one only when a profile asks)


def embedding_sample(dataset: Dataset, size: int, seed: int = SAMPLE_SEED) -> Dataset:
    """``size`` documents of the corpus drawn with ``random.Random(seed)``, in corpus order, without queries."""
    rows = sorted(random.Random(seed).sample(range(len(dataset.documents)), min(size, len(dataset.documents))))
    return replace(dataset, name=f"{dataset.name}-sample{len(rows)}", documents=tuple(dataset.documents[r] for r in rows),
                   queries=(), qrels=Qrels({}))


def _load() -> str:
    found = load_average()
    return "n/a" if found is None else f"{found[0]:.1f}"


def real_corpus(context: BenchContext, sample_size: int) -> list[Measure]:
    """Build the pooled benchmark in a temporary workspace and time each stage over it."""
    root = tempfile.mkdtemp(prefix="codeir-bench-real-")
    try:
        workspace = Workspace.open(root, context.workspace.data_dir)
        return _stages(context, workspace, sample_size)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stages(context: BenchContext, workspace: Workspace, sample_size: int) -> list[Measure]:
    if context.quick:  # the Debian trees alone: a minute or two (most of it the JDK), not the minutes every installed package takes
        trees = [(path, tree.origin) for tree in DEBIAN_TREES if (path := locate_tree(tree, workspace)) is not None]
        missing = [tree for tree in DEBIAN_TREES if locate_tree(tree, workspace) is None]
    else:
        trees, missing = machine_source_trees(workspace)
    roots = [path for path, _ in trees]
    if missing:
        context.note("source trees not on this machine, so not in part 14's corpus: "
                     + ", ".join(f"{tree.pattern} ({tree.origin})" for tree in missing))
    measures: list[Measure] = []
    loads = {"start": _load()}

    started = time.perf_counter()
    functions = extract_functions_from_trees(roots)
    extract_seconds = time.perf_counter() - started
    loads["extracted"] = _load()
    languages = sorted({f.language for f in functions})
    measures.append(Measure(14, f"extraction: documented functions of {len(roots)} source trees", len(functions) / extract_seconds,
                            "functions/s", None, f"{len(functions):,} functions ({', '.join(languages)}) in {extract_seconds:.0f} s, "
                                                 f"one process (tree-sitter); load average {loads['extracted']}",
                            {"functions": len(functions), "seconds": extract_seconds, "roots": [str(r) for r in roots],
                             "per_language": {lang: sum(f.language == lang for f in functions) for lang in languages}}))
    started = time.perf_counter()
    dataset = build_benchmark(functions, NAME, "code2doc", source=os.pathsep.join(map(str, roots)))
    write_dataset(dataset, workspace.datasets_dir / NAME,
                  benchmark_meta(roots[0], "code2doc", functions, dataset, DEFAULT_SEED, False,
                                 source_roots=[str(r) for r in roots]))
    build_seconds = time.perf_counter() - started
    count = len(dataset.documents)
    del functions
    measures.append(Measure(14, "corpus size: documented functions kept", count, "docs", Target(">=", MIN_CORPUS),
                            f"{len(roots)} trees: " + ", ".join(f"{path.name} ({origin})" for path, origin in trees),
                            {"documents": count}))
    measures.append(Measure(14, f"benchmark build ({NAME}, {len(dataset.queries)} queries)", count / build_seconds, "docs/s",
                            None, f"{build_seconds:.1f} s: drawing the queries, writing the BEIR files"))

    started = time.perf_counter()
    open_lexical_index(workspace, dataset, "code", rebuild=True)
    bm25_seconds = time.perf_counter() - started
    loads["bm25"] = _load()
    measures.append(Measure(14, f"BM25 index (code analyzer), all {count:,} docstrings", count / bm25_seconds, "docs/s", None,
                            f"{bm25_seconds:.1f} s: tokenise + Tantivy + term matrix, one process; load average {loads['bm25']}"))

    sample = embedding_sample(dataset, sample_size)
    measures += _embedding_rates(context, workspace, sample, loads)
    measures += _ann_build(workspace, sample, count, loads)
    measures += _gpu(context, workspace, dataset, loads)
    measures.append(Measure(14, "peak RSS of the benchmark process", peak_rss_bytes() / 2**30, "GiB", None,
                            "Ray actors run in processes of their own, not counted here", {"load_average": loads}))
    torch_rate = next(m.value for m in measures if m.name.startswith("embeddings (minilm, torch), one process"))
    context.note(f"part 14 embeds a seeded sample of {len(sample.documents):,} of the {count:,} docstrings "
                 f"(random.Random({SAMPLE_SEED})): all of them at the one-process torch rate measured would take "
                 f"{count / torch_rate / 60:.0f} minutes; extraction, benchmark build and BM25 cover the whole corpus"
                 + ("; --quick pools only the Debian trees" if context.quick else ""))
    return measures


def _embedding_rates(context: BenchContext, workspace: Workspace, sample: Dataset, loads: dict) -> list[Measure]:
    """torch and int8 ONNX in this process, then torch on a local Ray of every core with cores - 1 actors."""
    import ray

    count = len(sample.documents)
    measures = []
    for backend in ("torch", "onnx"):
        encoder = load_encoder("minilm", context.workspace, backend)  # model files (and the ONNX export) live in the main workspace
        encoder.encode(["warm up"])
        started = time.perf_counter()
        open_vector_index(workspace, sample, encoder, rebuild=True)
        seconds = time.perf_counter() - started
        loads[f"embed_{backend}"] = _load()
        measures.append(Measure(14, f"embeddings (minilm, {backend}), one process, sample of {count:,}", count / seconds, "docs/s",
                                None, f"{seconds:.1f} s, LanceDB table written, every core's threads; "
                                      f"load average {loads[f'embed_{backend}']}"))
    encoder = load_encoder("minilm", context.workspace, "torch")
    cpus = os.cpu_count() or 1
    actors = max(1, cpus - 1)  # SCALE.md: actors x CPUs per actor <= CPUs - 1
    name = f"embeddings (minilm, torch) on Ray Data, {actors} actor(s) x 1 CPU, sample of {count:,}"
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    init_seconds = time.perf_counter() - started
    try:
        started = time.perf_counter()
        embed_corpus(workspace, sample, encoder, RayOptions(actors=actors), rebuild=True)
        seconds = time.perf_counter() - started
    except WorkbenchError as exc:  # the other stages' figures still stand
        return measures + [Measure(14, name, None, "docs/s", None, f"failed: {exc}")]
    finally:
        ray.shutdown()
    loads["embed_ray"] = _load()
    measures.append(Measure(14, name, count / seconds, "docs/s", None,
                            f"{seconds:.1f} s, the actor loading the model included, Ray start ({init_seconds:.1f} s) not; "
                            f"load average {loads['embed_ray']}", {"ray_init_seconds": init_seconds, "actors": actors}))
    return measures


def _ann_build(workspace: Workspace, sample: Dataset, size: int, loads: dict) -> list[Measure]:
    """The IVF index at the corpus's size, over the sample's real vectors repeated with noise (only the sample is embedded)."""
    import lancedb

    encoder = load_encoder("minilm", workspace, "torch")
    index, _ = open_vector_index(workspace, sample, encoder)  # the table the Ray job just wrote: read, not encoded again
    vectors = synthetic_vectors(index.vectors, size)
    expected = {"fingerprint": "sample-repeated", "count": size, "dim": vectors.shape[1]}
    db = lancedb.connect(str(workspace.vectors_dir))
    started = time.perf_counter()
    table = db.create_table("ann_full_size", record_batches(vectors_to_arrow([f"d{r}" for r in range(size)], vectors, expected)))
    write_seconds = time.perf_counter() - started
    started = time.perf_counter()
    table.create_index(metric="dot", vector_column_name="vector", index_type=ANN_INDEX_TYPE)
    index_seconds = time.perf_counter() - started
    loads["ann"] = _load()
    return [Measure(14, f"ANN index ({ANN_INDEX_TYPE}) at {size:,} vectors", size / index_seconds, "docs/s", None,
                    f"{index_seconds:.1f} s (+ {write_seconds:.1f} s writing the table); vectors: the sample's MiniLM "
                    f"embeddings repeated with noise, as in part 8; load average {loads['ann']}")]


def _gpu(context: BenchContext, workspace: Workspace, dataset: Dataset, loads: dict) -> list[Measure]:
    """The whole corpus embedded and indexed on one CUDA GPU, where there is one; otherwise a line that says none was."""
    import torch

    if not torch.cuda.is_available():
        return [Measure(14, "GPU: whole corpus embedded and indexed", None, "docs/s", None,
                        "not measured: no CUDA GPU in this process (torch.cuda.is_available() is False)")]
    encoder = load_encoder("minilm", context.workspace, "torch", "cuda")
    encoder.encode(["warm up"])
    count = len(dataset.documents)
    started = time.perf_counter()
    index, _ = open_vector_index(workspace, replace(dataset, name=f"{dataset.name}-gpu"), encoder, rebuild=True)
    embed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    index.table.create_index(metric="dot", vector_column_name="vector", index_type=ANN_INDEX_TYPE)
    index_seconds = time.perf_counter() - started
    loads["gpu"] = _load()
    rate = count / (embed_seconds + index_seconds)
    goal = GPU_GOAL_DOCS / GPU_GOAL_SECONDS
    return [Measure(14, f"GPU ({torch.cuda.get_device_name(0)}): all {count:,} docstrings embedded + IVF index", rate,
                    "docs/s", Target(">=", round(goal)),
                    f"embedding {embed_seconds:.1f} s, index {index_seconds:.1f} s; the goal, 1M in {GPU_GOAL_SECONDS} s, "
                    f"needs {goal:,.0f} docs/s; at this rate 1M takes {GPU_GOAL_DOCS / rate:.0f} s")]
