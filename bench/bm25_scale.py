"""Part 15: BM25 at 100k and 1M documents, any k1/b: Tantivy against the batch scorer on 1,000-query runs.

Each size runs in its own process (its peak RSS is its own). The corpus is part 8's synthetic one (real
``csn-python-code2doc`` docstrings repeated with word swaps, suffixes and numbered identifiers), streamed into the
index build, never held. Two query sets, 1,000 queries each: cosqa's natural-language queries and
csn-python-code2doc's queries, which are code (~100 distinct terms); the sets hold 500 and 200 queries, so each is
cycled to 1,000. Every run asks for the top 100, through ``LexicalIndex.search_many`` (tokenising included).

Run by ``bench/run_benchmarks.py``; by hand: ``python -m bench.bm25_scale --size 20000 --inputs DIR --workdir DIR --out FILE``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import Measure, Target, current_rss_bytes, fmt_bytes, high_water_rss_bytes
from bench.scale import synthetic_texts

PART = 15
BASE_SET = "csn-python-code2doc"
QUERY_SETS = {"cosqa": "cosqa", "code": "csn-python-code2doc"}  # figure label -> dataset whose queries are asked
RUN_QUERIES = 1000
DEPTH = 100
SETTINGS = ((1.2, 0.75), (0.9, 0.4))
PASTED = 50  # single queries timed one by one, as the explorer asks them
SYNTHETIC_NOTE = ("part 15's corpus is part 8's synthetic one (csn-python-code2doc docstrings with word swaps, suffixes and "
                  "numbered identifiers), streamed into the build; query sets cycled to 1,000 queries")


@dataclass(frozen=True)
class SyntheticCorpus:
    """``size`` synthetic docstrings generated as the build reads them (``core.data.corpus_store.Corpus``)."""

    base: tuple[str, ...]
    size: int

    @property
    def name(self) -> str:
        return f"synthetic-{self.size}"

    @property
    def corpus_hash(self) -> str:
        return hashlib.sha256(json.dumps([self.size, *self.base]).encode()).hexdigest()

    @property
    def num_docs(self) -> int:
        return self.size

    def iter_documents(self) -> Iterator:
        from core.data.datasets import Document

        for row, text in enumerate(synthetic_texts(self.base, self.size)):
            yield Document(f"d{row}", text)


def cycled(texts: Sequence[str], count: int) -> list[str]:
    return [texts[i % len(texts)] for i in range(count)]


def same_up_to_ties(ours, theirs) -> bool:
    """Same documents above the last score (float32 rounding apart), as tests/index/test_bm25_batch.py checks."""
    if len(ours.rows) != len(theirs.rows):
        return False
    if not len(ours.rows):
        return True
    if not np.allclose(ours.scores, theirs.scores, rtol=2e-6, atol=2e-6):
        return False
    cut = min(ours.scores[-1], theirs.scores[-1]) + 1e-4
    return set(ours.rows[ours.scores > cut].tolist()) == set(theirs.rows[theirs.scores > cut].tolist())


def _timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def run_size(size: int, inputs: Path, workdir: Path) -> dict:
    """Build, open and run every scorer over ``size`` documents in this process; figures as a dict."""
    from numba import get_num_threads, set_num_threads

    from core.index.analyzers import get_analyzer
    from core.index.bm25_batch import MATRIX_FILES, TERMS_FILE
    from core.index.lexical import open_checked_index, open_lexical_index
    from core.workspace import Workspace

    base = tuple(json.loads((inputs / "base_texts.json").read_text()))
    queries = {label: cycled(json.loads((inputs / f"queries-{label}.json").read_text()), RUN_QUERIES) for label in QUERY_SETS}
    corpus = SyntheticCorpus(base, size)
    workspace = Workspace.open(workdir)
    figures: dict = {"size": size, "threads": get_num_threads(), "rss_start": current_rss_bytes()}

    figures["build_s"], (index, _) = _timed(lambda: open_lexical_index(workspace, corpus, "code", rebuild=True))
    figures["build_peak_rss"] = high_water_rss_bytes()
    figures["matrix_bytes"] = sum((index.path / name).stat().st_size for name in [*MATRIX_FILES.values(), TERMS_FILE])
    figures["index_bytes"] = sum(p.stat().st_size for p in index.path.iterdir() if p.is_file())
    figures["matrix_pairs"] = int(index.term_matrix.indptr[-1])
    figures["terms"] = len(index.term_matrix.vocabulary)
    path = index.path
    del index
    figures["open_s"], index = _timed(lambda: open_checked_index(path, get_analyzer("code"), corpus))
    figures["default_scorer"] = index.scorer()
    figures["runs"] = {}
    for label, texts in queries.items():
        index.search_many(texts[:5], DEPTH, scorer="tantivy")
        index.search_many(texts[:5], DEPTH, scorer="batch")  # numba's cached code loaded, matrix pages touched
        run = {}
        run["tantivy_s"], by_tantivy = _timed(lambda: index.search_many(texts, DEPTH, scorer="tantivy"))
        run["batch_s"], by_batch = _timed(lambda: index.search_many(texts, DEPTH, scorer="batch"))
        run["batch_other_s"], _ = _timed(lambda: index.search_many(texts, DEPTH, 0.9, 0.4, scorer="batch"))
        run["batch_exact_s"], _ = _timed(lambda: index.search_many(texts, DEPTH, 0.9, 0.4, length_norm="exact", scorer="batch"))
        threads = get_num_threads()
        set_num_threads(1)  # both scorers share numba's thread count
        run["tantivy_one_thread_s"], _ = _timed(lambda: index.search_many(texts, DEPTH, scorer="tantivy"))
        run["batch_one_thread_s"], _ = _timed(lambda: index.search_many(texts, DEPTH, scorer="batch"))
        set_num_threads(threads)
        run["identical"] = sum(a.rows.tolist() == b.rows.tolist() and a.scores.tolist() == b.scores.tolist()
                               for a, b in zip(by_batch, by_tantivy))
        run["same_rows"] = sum(a.rows.tolist() == b.rows.tolist() for a, b in zip(by_batch, by_tantivy))
        run["same_up_to_ties"] = sum(same_up_to_ties(a, b) for a, b in zip(by_batch, by_tantivy))
        run["pasted_ms"] = {scorer: statistics.median(1000 * _timed(lambda t=text: index.search_many([t], DEPTH, scorer=scorer))[0]
                                                      for text in texts[:PASTED])
                            for scorer in ("tantivy", "batch")}
        figures["runs"][label] = run
    figures["peak_rss"] = high_water_rss_bytes()
    return figures


def _measures(figures: dict) -> list[Measure]:
    size = figures["size"]
    label = f"bm25 {size:,} docs"
    threads = figures["threads"]
    measures = [
        Measure(PART, f"{label}: build (Tantivy + term matrix, streamed)", figures["build_s"], "s", None,
                f"{size / figures['build_s']:,.0f} docs/s; peak RSS {fmt_bytes(figures['build_peak_rss'])} "
                f"(process start {fmt_bytes(figures['rss_start'])})"),
        Measure(PART, f"{label}: build peak RSS", figures["build_peak_rss"] / 2**30, "GiB", Target("<=", 2.0),
                "VmHWM after the build, in a process that held nothing else"),
        Measure(PART, f"{label}: term matrix on disk", figures["matrix_bytes"] / 2**20, "MiB", None,
                f"{figures['matrix_pairs']:,} (document, term) pairs, {figures['terms']:,} terms; whole index "
                f"{fmt_bytes(figures['index_bytes'])}; reopening it checked (CRC-32 of every file) took {figures['open_s']:.1f} s"),
    ]
    for kind, run in figures["runs"].items():
        n = RUN_QUERIES
        what = f"{label}, {n:,} {kind} queries"
        measures += [
            Measure(PART, f"{what}: Tantivy run, k1=1.2 b=0.75", run["tantivy_s"], "s", Target("<=", 180.0),
                    f"{n / run['tantivy_s']:,.0f} q/s, one query per thread on {threads} threads ({run['tantivy_one_thread_s']:.1f} s "
                    f"on 1 thread); pasted query p50 {run['pasted_ms']['tantivy']:.1f} ms"),
            Measure(PART, f"{what}: batch scorer run, k1=1.2 b=0.75", run["batch_s"], "s", Target("<=", 180.0),
                    f"{n / run['batch_s']:,.0f} q/s on {threads} threads ({run['batch_one_thread_s']:.1f} s on 1 thread); "
                    f"pasted query p50 {run['pasted_ms']['batch']:.1f} ms"),
            Measure(PART, f"{what}: batch scorer run, k1=0.9 b=0.4", run["batch_other_s"], "s", Target("<=", 180.0),
                    f"{n / run['batch_other_s']:,.0f} q/s; with exact lengths {run['batch_exact_s']:.1f} s; Tantivy: n/a (k1/b fixed)"),
            Measure(PART, f"{what}: rankings the same, batch vs Tantivy", run["same_up_to_ties"], "queries", Target(">=", n),
                    f"the same documents with the same scores up to float32 rounding, ties at the cut apart (the tests' "
                    f"check); bit for bit (every row and score): {run['identical']:,}, the same rows in the same order: "
                    f"{run['same_rows']:,}"),
        ]
    measures.append(Measure(PART, f"{label}: default scorer at k1=1.2 b=0.75", None, "", None,
                            f"{figures['default_scorer']} (core.index.lexical.LexicalIndex.scorer); whole job peak RSS "
                            f"{fmt_bytes(figures['peak_rss'])}"))
    return measures


def bm25_at_scale(context, sizes: Sequence[int]) -> list[Measure]:
    """Part 15, parent side: hand base texts and query sets to one worker process per size, collect its figures."""
    context.note(SYNTHETIC_NOTE)
    inputs = Path(tempfile.mkdtemp(prefix="codeir-bench-bm25-inputs-"))
    measures = []
    try:
        (inputs / "base_texts.json").write_text(json.dumps([d.full_text for d in context.dataset(BASE_SET).documents]))
        for label, name in QUERY_SETS.items():
            (inputs / f"queries-{label}.json").write_text(json.dumps([q.text for q in context.dataset(name).queries]))
        for size in sizes:
            workdir = Path(tempfile.mkdtemp(prefix=f"codeir-bench-bm25-{size}-"))
            out = inputs / f"figures-{size}.json"
            command = [sys.executable, "-m", "bench.bm25_scale", "--size", str(size), "--inputs", str(inputs),
                       "--workdir", str(workdir), "--out", str(out)]
            try:
                finished = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            if finished.returncode != 0 or not out.is_file():
                tail = (finished.stderr or finished.stdout).strip().splitlines()[-3:]
                measures.append(Measure(PART, f"bm25 {size:,} docs", None, "", None,
                                        f"failed (exit {finished.returncode}): {' | '.join(tail)}"))
                continue
            measures.extend(_measures(json.loads(out.read_text())))
    finally:
        shutil.rmtree(inputs, ignore_errors=True)
    return measures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One size of the BM25-at-scale benchmark (run by run_benchmarks.py).")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(run_size(args.size, args.inputs, args.workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
