"""Part 16: dense search at 100k and 1M vectors: exact search (the reference), ANN indexes built on request with
their recall@100 against it, and the import of a corpus's vectors from a parquet file.

Vectors are part 8's synthetic ones (``bench.scale.synthetic_vectors``: real MiniLM embeddings of
csn-python-code2doc plus Gaussian noise, renormalised), queries cosqa's judged queries embedded by MiniLM. Each size
runs in its own process, so its peak memory is its own; everything is written under a temporary folder removed
afterwards. Every figure comes from the product's own calls: ``write_table`` and ``read_checked_table``
(core.index.vectors), ``build_ann_index``, ``measure_ann`` and ``ann_search`` (core.index.ann), ``import_vectors``
(core.index.imported_vectors).

Run by ``bench/run_benchmarks.py --only 16``; by hand (one size):
``python -m bench.dense_ann --size 100000 --inputs DIR --workdir DIR --out FILE``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import Measure, Target, current_rss_bytes, fmt_bytes, high_water_rss_bytes, percentile
from bench.scale import BASE_SET, QUERY_SET, SYNTHETIC_NOTE, synthetic_vectors

PART = 16
DEPTH = 100
HNSW_MAX_SIZE = 200_000  # IVF_HNSW_SQ took 13 min to build at 1M (part 8's first run): left out above this size
SWEEP = ((10, 4), (20, 4), (50, 4), (10, 10), (50, 10))  # (nprobes, refine) beside the defaults (20, 10)


class SyntheticCorpus:
    """The ids of a synthetic corpus, as ``import_vectors`` reads a Corpus (no text is needed to import vectors)."""

    def __init__(self, size: int):
        self.name = f"synthetic-{size}"
        self.corpus_hash = f"synthetic{size:012d}"
        self.num_docs = size
        self.doc_ids = [f"d{row}" for row in range(size)]

    def iter_documents(self):  # pragma: no cover - import_vectors reads doc_ids
        raise NotImplementedError


def _stage(stages: dict, name: str) -> None:
    stages[name] = {"rss": current_rss_bytes(), "peak_rss": high_water_rss_bytes()}


def _p50_ms(call, items) -> tuple[float, float]:
    seconds = []
    for item in items:
        started = time.perf_counter()
        call(item)
        seconds.append(time.perf_counter() - started)
    return percentile(seconds, 50) * 1000, percentile(seconds, 95) * 1000


def run_size(size: int, inputs: Path, workdir: Path, kinds: Sequence[str]) -> dict:
    """Write, open, search exactly, index, search approximately and import ``size`` vectors; figures as a dict."""
    import lancedb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.index.ann import AnnSettings, ann_search, build_ann_index, measure_ann, overlap_recall
    from core.index.vectors import VectorIndex, read_checked_table, table_checksum, write_table
    from core.workspace import Workspace

    workspace = Workspace.open(workdir / "ws")
    queries = np.load(inputs / "query_vectors.npy")
    figures: dict = {"size": size, "queries": len(queries), "stages": {}, "ann": {}}
    stages = figures["stages"]
    _stage(stages, "start")

    corpus = SyntheticCorpus(size)
    vectors = synthetic_vectors(np.load(inputs / "base_vectors.npy"), size)
    name = "docs__synthetic__ann"
    expected = {"fingerprint": "synthetic", "count": size, "dim": vectors.shape[1]}
    started = time.perf_counter()
    with workspace.lock(name):
        write_table(workspace, name, corpus.doc_ids, vectors, expected)  # the build path: writes, then checks by batches
    figures["write_s"] = time.perf_counter() - started
    _stage(stages, "table written (matrix held)")
    del vectors

    started = time.perf_counter()
    table, vectors, ids = read_checked_table(lancedb.connect(str(workspace.vectors_dir)), name, expected)  # what the engine does on open
    figures["open_s"] = time.perf_counter() - started
    index = VectorIndex(table, vectors, table_checksum(table, ids, vectors))
    del ids
    _stage(stages, "table opened (matrix held)")

    index.search(queries[:1], DEPTH)
    figures["exact_p50_ms"], figures["exact_p95_ms"] = _p50_ms(lambda q: index.search(q, DEPTH), queries)
    exact_rows = index.search(queries, DEPTH).rows
    _stage(stages, "exact searched")

    for kind in kinds:
        settings = AnnSettings(kind)
        built = build_ann_index(workspace, index, settings)
        _stage(stages, f"{kind} built")
        measured = measure_ann(workspace, index, settings, queries)
        ann_search(index, queries[:1], DEPTH, settings)
        p50, p95 = _p50_ms(lambda q: ann_search(index, q, DEPTH, settings), queries)
        sweep = {}
        for nprobes, refine in SWEEP:
            other = AnnSettings(kind, nprobes=nprobes, refine=refine)
            rows = ann_search(index, queries, DEPTH, other).rows
            sweep[f"nprobes {nprobes}, refine {refine}"] = {
                "recall": overlap_recall(rows, exact_rows),
                "p50_ms": _p50_ms(lambda q: ann_search(index, q, DEPTH, other), queries[:30])[0]}
        figures["ann"][kind] = {"index": built.describe(), "build_s": built.build_seconds, "recall": measured.recall,
                                "recall_seconds": measured.seconds, "p50_ms": p50, "p95_ms": p95,
                                "nprobes": settings.nprobes, "refine": settings.refine, "sweep": sweep}
        _stage(stages, f"{kind} searched")

    # the import: the same vectors exported to parquet (id, vector), then imported as a user would
    path = workdir / "vectors.parquet"
    dim = vectors.shape[1]
    with pq.ParquetWriter(path, pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32()))])) as writer:
        for start in range(0, size, 65_536):
            part = np.ascontiguousarray(vectors[start:start + 65_536])
            offsets = pa.array(np.arange(0, len(part) * dim + 1, dim, dtype=np.int32))
            writer.write_table(pa.table({"id": pa.array(corpus.doc_ids[start:start + len(part)], pa.string()),
                                         "vector": pa.ListArray.from_arrays(offsets, pa.array(part.reshape(-1)))}))
    figures["parquet_bytes"] = path.stat().st_size
    figures["peak_rss"] = high_water_rss_bytes()
    figures["disk_bytes"] = sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file())
    del index, vectors, table
    # the import runs in a fresh process, as `python -m core import-vectors` does: its memory is its own
    out = workdir / "import.json"
    finished = subprocess.run([sys.executable, "-m", "bench.dense_ann", "--size", str(size), "--inputs", str(inputs),
                               "--workdir", str(workdir), "--out", str(out), "--import-file", str(path)],
                              cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    if finished.returncode != 0 or not out.is_file():
        raise RuntimeError(f"the import worker failed: {(finished.stderr or finished.stdout).strip()[-500:]}")
    figures["import"] = json.loads(out.read_text())
    return figures


def run_import(size: int, path: Path, workdir: Path) -> dict:
    """Import ``path`` as the vectors of a synthetic corpus of ``size`` ids, in this (fresh) process."""
    from core.index.imported_vectors import import_vectors, resolve_imported_model
    from core.workspace import Workspace

    workspace = Workspace.open(workdir / "ws-import")
    corpus = SyntheticCorpus(size)
    figures: dict = {"stages": {}}
    _stage(figures["stages"], "start (corpus ids held)")
    started = time.perf_counter()
    model = resolve_imported_model(workspace, "minilm")  # loads the model to check the dimension: timed apart
    figures["model_load_s"] = time.perf_counter() - started
    _stage(figures["stages"], "model loaded")
    started = time.perf_counter()
    _, report = import_vectors(workspace, corpus, model, path)
    figures["import_s"] = time.perf_counter() - started
    figures["rows"] = report.rows
    _stage(figures["stages"], "imported (matrix held)")
    figures["peak_rss"] = high_water_rss_bytes()
    return figures


def _measures(figures: dict) -> list[Measure]:
    size = figures["size"]
    label = f"dense {size:,} vectors"
    out = [
        Measure(PART, f"{label}: table write (build path)", figures["write_s"], "s", None,
                "core.index.vectors.write_table: Arrow views the matrix, lance writes it, the table is read back by batches "
                "and compared (no second matrix)"),
        Measure(PART, f"{label}: open into memory", figures["open_s"], "s", None, "read_checked_table, batch by batch"),
        Measure(PART, f"{label}: exact query p50 (top-100)", figures["exact_p50_ms"], "ms", None,
                f"p95 {figures['exact_p95_ms']:.1f} ms; one query at a time, {figures['queries']} cosqa queries; "
                f"the reference every run uses"),
    ]
    for kind, ann in figures["ann"].items():
        out += [
            Measure(PART, f"{label}: {kind} build", ann["build_s"], "s", None, ann["index"]),
            Measure(PART, f"{label}: {kind} recall@100 vs exact", ann["recall"], "", None,
                    f"measure_ann over {figures['queries']} queries (nprobes {ann['nprobes']}, refine {ann['refine']}: "
                    f"{ann['refine']}x100 candidates re-scored exactly); other settings: "
                    + ", ".join(f"{n}: {v['recall']:.4f} (p50 {v['p50_ms']:.1f} ms)" for n, v in ann["sweep"].items()),
                    {"sweep": ann["sweep"]}),
            Measure(PART, f"{label}: {kind} query p50 (top-100)", ann["p50_ms"], "ms", None,
                    f"p95 {ann['p95_ms']:.1f} ms; exact p50 {figures['exact_p50_ms']:.1f} ms"),
        ]
    imported = figures["import"]
    out += [
        Measure(PART, f"{label}: peak RSS (write, open, exact and ANN search)", figures["peak_rss"] / 2**30, "GiB", Target("<=", 6.0),
                "; ".join(f"{stage}: {fmt_bytes(m['rss'])}" for stage, m in figures["stages"].items()),
                {"stages": figures["stages"], "disk_bytes": figures["disk_bytes"]}),
        Measure(PART, f"{label}: import of a parquet (id, vector)", imported["import_s"], "s", None,
                f"{imported['rows']:,} rows, {figures['parquet_bytes'] / 2**20:,.0f} MiB, in a fresh process: every check, "
                f"the SHA-256, the table write and its read-back; loading the model (for its dimension) took "
                f"{imported['model_load_s']:.1f} s before"),
        Measure(PART, f"{label}: import peak RSS", imported["peak_rss"] / 2**30, "GiB", Target("<=", 6.0),
                "; ".join(f"{stage}: {fmt_bytes(m['rss'])}" for stage, m in imported["stages"].items()),
                {"stages": imported["stages"]}),
    ]
    return out


def dense_ann(context, sizes: Sequence[int]) -> list[Measure]:
    """Part 16, parent side: real base and query embeddings to one worker process per size; its figures back."""
    base = context.engine(BASE_SET)
    queries = context.engine(QUERY_SET)
    judged = queries.dataset.judged_queries[: 50 if context.quick else 100]
    context.note(SYNTHETIC_NOTE)
    inputs = Path(tempfile.mkdtemp(prefix="codeir-bench-ann-inputs-"))
    measures = []
    try:
        np.save(inputs / "base_vectors.npy", base.vectors("minilm").vectors)
        np.save(inputs / "query_vectors.npy", queries.query_vectors("minilm", "torch", judged))
        for size in sizes:
            kinds = ["ivf_pq", "hnsw"] if size <= HNSW_MAX_SIZE else ["ivf_pq"]
            workdir = Path(tempfile.mkdtemp(prefix=f"codeir-bench-ann-{size}-"))
            out = inputs / f"figures-{size}.json"
            command = [sys.executable, "-m", "bench.dense_ann", "--size", str(size), "--inputs", str(inputs),
                       "--workdir", str(workdir), "--out", str(out), "--kinds", ",".join(kinds)]
            try:
                finished = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            if finished.returncode != 0 or not out.is_file():
                tail = (finished.stderr or finished.stdout).strip().splitlines()[-3:]
                measures.append(Measure(PART, f"dense {size:,} vectors", None, "", None,
                                        f"failed (exit {finished.returncode}): {' | '.join(tail)}"))
                continue
            measures.extend(_measures(json.loads(out.read_text())))
        if any(size > HNSW_MAX_SIZE for size in sizes):
            context.note(f"part {PART}: HNSW (IVF_HNSW_SQ) is measured up to {HNSW_MAX_SIZE:,} vectors only; at 1M it took "
                         f"13 min to build in part 8's first run")
    finally:
        shutil.rmtree(inputs, ignore_errors=True)
    return measures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One size of the dense ANN benchmark (run by run_benchmarks.py).")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kinds", default="ivf_pq,hnsw")
    parser.add_argument("--import-file", type=Path, help="only import this parquet file (the import worker)")
    args = parser.parse_args(argv)
    if args.import_file:
        figures = run_import(args.size, args.import_file, args.workdir)
    else:
        figures = run_size(args.size, args.inputs, args.workdir, [k for k in args.kinds.split(",") if k])
    args.out.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
