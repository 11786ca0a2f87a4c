"""Part 8: scaling to 100k and 1M documents, each size in its own process so its peak memory is its own.

The corpus is synthetic: real docstrings of ``csn-python-code2doc`` repeated with variations (two
adjacent words swapped, a suffix phrase, a numbered identifier). Embedding a million documents with
the model is out of reach on a CPU (~100 docs/s), so the vector of a synthetic row is the real
docstring's embedding plus Gaussian noise, renormalised. ANN recall and latency on such vectors are
indicative, not a measurement on real embeddings; every result says so.

Run by ``bench/run_benchmarks.py``; by hand: ``python -m bench.scale --size 20000 --inputs DIR --out FILE``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from core.data.distractors import synthetic_texts  # the generator grow-corpus uses; re-exported for parts 13, 15
from bench.common import Measure, Target, current_rss_bytes, fmt_bytes, peak_rss_bytes, percentile

BASE_SET, QUERY_SET = "csn-python-code2doc", "cosqa"
NOISE = 0.03  # per-dimension sigma: a variant keeps cosine ~0.9 to the real embedding it came from
CHUNK = 65_536
DEPTH = 100
NPROBES = (20, 64, 128)
SYNTHETIC_NOTE = ("synthetic corpus: real csn-python-code2doc docstrings repeated with word swaps, suffixes and numbered "
                  "identifiers; vectors are real MiniLM embeddings + Gaussian noise (sigma 0.03/dim), renormalised, "
                  "not model embeddings of the synthetic text")


def part8_ann():
    """The ANN part 8 has always measured: IVF_FLAT, 20 probes, 2 x k candidates re-scored exactly (part 16: IVF_PQ, HNSW)."""
    from core.index.ann import AnnSettings

    return AnnSettings("ivf_flat", nprobes=20, refine=2)


def synthetic_vectors(base: np.ndarray, size: int, seed: int = 20261122) -> np.ndarray:
    """``size`` unit vectors: the base rows themselves first, then perturbed copies.

    Filled in chunks of float32, so making them costs little more memory than the matrix itself.
    """
    rng = np.random.default_rng(seed)
    vectors = np.empty((size, base.shape[1]), dtype=np.float32)
    for start in range(0, size, CHUNK):
        stop = min(size, start + CHUNK)
        rows = np.arange(start, stop)
        chunk = base[rows % len(base)].astype(np.float32)
        variants = rows >= len(base)
        chunk[variants] += NOISE * rng.standard_normal((int(variants.sum()), base.shape[1]), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        vectors[start:stop] = chunk
    return vectors


def _latencies(call, items: Sequence, repeats: int) -> list[float]:
    """Per item, the median of ``repeats`` timed calls (seconds)."""
    out = []
    for item in items:
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            call(item)
            seconds.append(time.perf_counter() - started)
        out.append(statistics.median(seconds))
    return out


def _recall(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of the exact top-k that the approximate top-k also holds."""
    return float(np.mean([len(set(a[:k]) & set(e[:k])) / len(e[:k]) for a, e in zip(found, exact)]))


def _memory(stages: dict, stage: str) -> None:
    stages[stage] = {"rss": current_rss_bytes(), "peak_rss": peak_rss_bytes()}


def run_size(size: int, inputs: Path, workdir: Path, repeats: int) -> dict:
    """Build and query BM25 and vector indexes over ``size`` synthetic documents; figures as a dict."""
    import lancedb

    from core.data.datasets import Dataset, Document, Qrels
    from core.index.bm25_batch import bm25_top_k
    from core.index.lexical import open_lexical_index
    from core.index.ann import ann_search, build_ann_index
    from core.index.vectors import VectorIndex, record_batches, read_checked_table, table_checksum, vectors_to_arrow, top_k
    from core.workspace import Workspace

    base_texts = json.loads((inputs / "base_texts.json").read_text())
    query_texts = json.loads((inputs / "query_texts.json").read_text())
    base_vectors = np.load(inputs / "base_vectors.npy")
    query_vectors = np.load(inputs / "query_vectors.npy")
    workspace = Workspace.open(workdir)
    figures: dict = {"size": size, "queries": len(query_texts), "stages": {}}
    memory = figures["stages"]
    _memory(memory, "inputs loaded")

    started = time.perf_counter()
    documents = tuple(Document(f"d{row}", text) for row, text in enumerate(synthetic_texts(base_texts, size)))
    dataset = Dataset(f"synthetic-{size}", documents, (), Qrels({}))
    figures["generate_texts_s"] = time.perf_counter() - started
    _memory(memory, "texts generated")

    started = time.perf_counter()
    lexical, _ = open_lexical_index(workspace, dataset, "code", rebuild=True)
    figures["bm25_build_s"] = time.perf_counter() - started
    _memory(memory, "BM25 index built")
    lexical.search(query_texts[0], DEPTH)
    figures["bm25_query_s"] = _latencies(lambda text: lexical.search(text, DEPTH), query_texts, repeats)
    figures["bm25_run_s"] = _latencies(lambda texts: lexical.search_many(texts, DEPTH), [query_texts], repeats)
    figures["bm25_run_path"] = "batch scorer" if size <= lexical.batch_max_docs else "Tantivy per query"
    figures["term_matrix"] = True  # written at every size since issue 26.2 (in bounded memory)
    if figures["term_matrix"]:
        started = time.perf_counter()
        matrix = lexical.term_matrix
        terms = [lexical.query_terms(text) for text in query_texts]
        bm25_top_k(matrix, terms[:2], DEPTH)  # compiles the scorer unless numba's cache has it
        figures["bm25_batch_open_s"] = time.perf_counter() - started
        figures["bm25_batch_s"] = _latencies(lambda batch: bm25_top_k(matrix, batch, DEPTH), [terms], repeats)
        _memory(memory, "BM25 batch scored")

    started = time.perf_counter()
    vectors = synthetic_vectors(base_vectors, size)
    figures["generate_vectors_s"] = time.perf_counter() - started
    expected = {"fingerprint": "synthetic", "count": size, "dim": base_vectors.shape[1]}
    db = lancedb.connect(str(workspace.vectors_dir))
    name = f"synthetic_{size}"
    started = time.perf_counter()  # the product's write path: one Arrow table (with its checksum), streamed to create_table
    table = db.create_table(name, record_batches(vectors_to_arrow([f"d{row}" for row in range(size)], vectors, expected)), mode="overwrite")
    figures["vector_write_s"] = time.perf_counter() - started
    del vectors
    _memory(memory, "vectors written")

    started = time.perf_counter()
    table, vectors, ids = read_checked_table(db, name, expected)  # what the product does on opening a vector index
    figures["vector_open_s"] = time.perf_counter() - started
    _memory(memory, "vectors opened (product read)")
    index = VectorIndex(table, vectors, table_checksum(table, ids, vectors))
    del ids

    started = time.perf_counter()
    ann = part8_ann()
    build_ann_index(workspace, index, ann)  # as a profile with search = "ann", ann_index = "ivf_flat" builds it
    figures["ann_build_s"] = time.perf_counter() - started
    _memory(memory, "ANN index built")

    exact_rows = np.concatenate([top_k(chunk @ vectors.T, DEPTH).rows  # chunks keep the score matrix small
                                 for chunk in np.array_split(query_vectors, max(1, len(query_vectors) // 10))])
    figures["exact_query_s"] = _latencies(lambda q: index.search(q, DEPTH), query_vectors, repeats)
    ann_search(index, query_vectors[0], DEPTH, ann)
    figures["ann_query_s"] = _latencies(lambda q: ann_search(index, q, DEPTH, ann), query_vectors, repeats)
    ann_rows = ann_search(index, query_vectors, DEPTH, ann).rows
    figures["ann_recall_at_10"] = _recall(ann_rows, exact_rows, 10)
    figures["ann_recall_at_100"] = _recall(ann_rows, exact_rows, DEPTH)
    figures["nprobes"] = {}  # the raw index, no re-scoring: what each nprobes gives on its own
    for nprobes in NPROBES:
        def probe(q, n=nprobes):
            return table.search(q).metric("dot").nprobes(n).limit(DEPTH).select(["row", "_distance"]).to_arrow()["row"].to_numpy()
        rows = np.array([probe(q) for q in query_vectors])
        figures["nprobes"][str(nprobes)] = {"recall_at_10": _recall(rows, exact_rows, 10),
                                            "p50_s": percentile(_latencies(probe, query_vectors, 1), 50)}
    _memory(memory, "searched")
    figures["peak_rss"] = peak_rss_bytes()
    figures["disk_bytes"] = sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file())
    return figures


def _measures(figures: dict) -> list[Measure]:
    ANN_INDEX_TYPE, ANN_OVERSAMPLE = "IVF_FLAT", part8_ann().refine

    size = figures["size"]
    label = f"{size:,} docs"
    bm25_p50 = percentile(figures["bm25_query_s"], 50) * 1000
    ann_p50 = percentile(figures["ann_query_s"], 50) * 1000
    exact_p50 = percentile(figures["exact_query_s"], 50) * 1000
    matrix = "+ term matrix"
    batch = Measure(8, f"scale {label}: BM25 batch scorer throughput (top-100)", figures["queries"] / percentile(figures["bm25_batch_s"], 50), "q/s", None,
                    f"core.index.bm25_batch on the same queries, tokenised beforehand (what runs at other k1/b); reading the term matrix "
                    f"and loading the scorer took {figures['bm25_batch_open_s']:.1f} s")
    return [
        Measure(8, f"scale {label}: BM25 index build", figures["bm25_build_s"], "s", None,
                f"{size / figures['bm25_build_s']:,.0f} docs/s (tokenise + Tantivy, one writer thread, {matrix})"),
        Measure(8, f"scale {label}: BM25 query p50 (top-100)", bm25_p50, "ms", None,
                f"p95 {percentile(figures['bm25_query_s'], 95) * 1000:.1f} ms over {figures['queries']} cosqa queries"),
        Measure(8, f"scale {label}: BM25 run throughput (top-100)", figures["queries"] / percentile(figures["bm25_run_s"], 50), "q/s", None,
                f"LexicalIndex.search_many over all {figures['queries']} queries (the evaluation path): {figures['bm25_run_path']}"),
        batch,
        Measure(8, f"scale {label}: vector table write", figures["vector_write_s"], "s", None,
                f"core.index.vectors' write path; generating the synthetic vectors took {figures['generate_vectors_s']:.1f} s more"),
        Measure(8, f"scale {label}: ANN index build ({ANN_INDEX_TYPE})", figures["ann_build_s"], "s", None,
                "core.index.ann.build_ann_index (sqrt(n) partitions); part 16 measures IVF_PQ and HNSW"),
        Measure(8, f"scale {label}: open vectors into memory", figures["vector_open_s"], "s", None, "core.index.vectors reads the table on open"),
        Measure(8, f"scale {label}: ANN query p50 (top-100)", ann_p50, "ms", None,
                f"p95 {percentile(figures['ann_query_s'], 95) * 1000:.1f} ms; exact flat p50 {exact_p50:.1f} ms "
                f"(every run searches exactly unless its profile asks for ANN)"),
        Measure(8, f"scale {label}: exact flat query p50 (top-100)", exact_p50, "ms", None, "one query vector x all docs"),
        Measure(8, f"scale {label}: ANN recall@10 vs exact", figures["ann_recall_at_10"], "", None,
                f"recall@100 {figures['ann_recall_at_100']:.3f} (product path: lance's default nprobes, "
                f"{ANN_OVERSAMPLE}x candidates re-scored exactly); raw index without re-scoring: "
                + ", ".join(f"nprobes {n}: recall@10 {v['recall_at_10']:.3f}, p50 {v['p50_s'] * 1000:.1f} ms"
                            for n, v in figures["nprobes"].items()), {"nprobes": figures["nprobes"]}),
        Measure(8, f"scale {label}: peak RSS", figures["peak_rss"] / 2**30, "GiB", Target("<=", 8.0),
                "; ".join(f"{stage}: {fmt_bytes(m['rss'])}" for stage, m in figures["stages"].items()),
                {"stages": figures["stages"], "disk_bytes": figures["disk_bytes"]}),
    ]


def scaling(context, sizes: Sequence[int]) -> list[Measure]:
    """Part 8, parent side: hand real texts and embeddings to one worker process per size, collect its figures."""
    base = context.engine(BASE_SET)
    queries = context.engine(QUERY_SET)
    judged = queries.dataset.judged_queries[: 50 if context.quick else 100]
    context.note(SYNTHETIC_NOTE)
    inputs = Path(tempfile.mkdtemp(prefix="codeir-bench-scale-inputs-"))
    measures = []
    try:
        np.save(inputs / "base_vectors.npy", base.vectors("minilm").vectors)
        np.save(inputs / "query_vectors.npy", queries.query_vectors("minilm", "torch", judged))
        (inputs / "base_texts.json").write_text(json.dumps([d.full_text for d in base.dataset.documents]))
        (inputs / "query_texts.json").write_text(json.dumps([q.text for q in judged]))
        for size in sizes:
            workdir = Path(tempfile.mkdtemp(prefix=f"codeir-bench-scale-{size}-"))
            out = inputs / f"figures-{size}.json"
            command = [sys.executable, "-m", "bench.scale", "--size", str(size), "--inputs", str(inputs),
                       "--workdir", str(workdir), "--out", str(out), "--repeats", str(min(context.repeats, 3))]
            started = time.perf_counter()
            try:
                finished = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            if finished.returncode != 0 or not out.is_file():
                tail = (finished.stderr or finished.stdout).strip().splitlines()[-3:]
                measures.append(Measure(8, f"scale {size:,} docs", None, "", None,
                                        f"failed (exit {finished.returncode}): {' | '.join(tail)}"))
                continue
            figures = json.loads(out.read_text())
            figures["wall_s"] = time.perf_counter() - started
            measures.extend(_measures(figures))
    finally:
        shutil.rmtree(inputs, ignore_errors=True)
    return measures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One size of the scaling benchmark (run by run_benchmarks.py).")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    figures = run_size(args.size, args.inputs, args.workdir, args.repeats)
    args.out.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
