"""Speed benchmarks of the workbench on the bundled datasets: prints a table, writes bench/results/<time>.json.

    python bench/run_benchmarks.py [--quick] [--only 1,2,3] [--repeats N] [--workspace DIR]
                                   [--skip-scale] [--scale-sizes 100000,1000000] [--build-repeats N] [--ray-docs N]
                                   [--large-sizes 1000000,5000000]
                                   [--real-sample N] [--bm25-sizes 100000,1000000] [--ann-sizes 100000,1000000]

Parts: 1 warm evaluation, 2 paste-to-results latency, 3 BM25 vs bm25s, 4 dense vs numpy, 5 ONNX int8 vs
torch, 6 metrics vs ranx/pytrec_eval, 7 cold builds, 8 scaling to 100k/1M synthetic documents, 9 peak memory
of importing a 1 GiB corpus zip, 10 the Ray engine vs one process (embedding, runs split into tasks), 11 diagnosis
(bootstrap intervals at leaderboard scale, a 10k-point embedding map from its cache), 12 fine-tuning memory per step,
13 a corpus of millions in bounded memory (Lance corpus store, streamed BM25 build, queries read by row).
14 a real corpus (every source tree on this machine pooled) stage by stage, 15 BM25 at 100k/1M documents: Tantivy
against the batch scorer on 1,000-query runs, at any k1/b, 16 dense at 100k/1M vectors: exact search, ANN indexes
built on request with their recall@100 against it, and importing a corpus's vectors from parquet, 17 the whole product
at 6k/100k/1M documents (open, evaluate, search-corpus, page click-to-render in Chromium, server RSS).
Each figure is the median of --repeats runs; each ratio compares two timings taken in this process.
Indexes and embeddings of the bundled sets are built on first use in the workspace and reused after.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repository root
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import Measure, load_average, machine  # noqa: E402
from bench.context import BenchContext  # noqa: E402
from core.errors import WorkbenchError  # noqa: E402
from core.workspace import Workspace  # noqa: E402

PARTS = {1: "warm evaluation", 2: "paste-to-results latency", 3: "BM25 vs bm25s", 4: "dense vs numpy",
         5: "ONNX int8 vs torch", 6: "metrics vs ranx / pytrec_eval", 7: "cold builds", 8: "scaling",
         9: "zip import memory", 10: "Ray engine vs one process", 11: "diagnosis: bootstrap intervals, embedding map",
         12: "fine-tuning memory", 13: "large corpus in bounded memory", 14: "real corpus: every source tree on this machine",
         15: "BM25 at scale", 16: "dense at 1M: ANN recall and imported vectors",
         17: "the whole product at 6k/100k/1M: open, evaluate, search-corpus, page clicks in Chromium"}
RESULTS_DIR = ROOT / "bench" / "results"


def _part_runner(part: int, args: argparse.Namespace) -> Callable[[BenchContext], list[Measure]]:
    from bench import (baselines, bm25_scale, building, dense_ann, diagnosis, distributed, end_to_end, finetuning, large_corpus,
                       product_scale, real_corpus, scale, zip_import)

    return {
        1: end_to_end.warm_evaluation,
        2: end_to_end.paste_latency,
        3: baselines.bm25_versus_bm25s,
        4: baselines.dense_versus_numpy,
        5: building.embedding_backends,
        6: baselines.metrics_versus_libraries,
        7: lambda context: building.cold_builds(context, args.build_repeats),
        8: lambda context: scale.scaling(context, args.scale_sizes),
        9: lambda context: zip_import.zip_import(context, 64 * 1024**2 if args.quick else 1024**3),
        10: lambda context: distributed.ray_versus_single_process(context, args.ray_docs),
        11: diagnosis.diagnosis,
        12: finetuning.training_memory,
        13: lambda context: large_corpus.large_corpus(context, args.large_sizes),
        14: lambda context: real_corpus.real_corpus(context, args.real_sample),
        15: lambda context: bm25_scale.bm25_at_scale(context, args.bm25_sizes),
        16: lambda context: dense_ann.dense_ann(context, args.ann_sizes),
        17: lambda context: product_scale.product_at_scale(context, args.product_sizes),
    }[part]


def _format_value(measure: Measure) -> str:
    value = measure.value
    if value is None:
        return "-"
    if measure.unit == "x":
        return f"{value:.2f}x"
    if measure.unit in ("", "GiB"):
        text = f"{value:.4f}"
    elif float(value).is_integer() or abs(value) >= 10:
        text = f"{value:,.0f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {measure.unit}".strip()


def table(measures: Sequence[Measure]) -> str:
    """A plain-text table: part, figure, value, target, pass/fail, and how the figure was taken."""
    rows = [("part", "figure", "value", "target", "ok", "note")]
    for m in measures:
        ok = "" if m.ok is None else ("yes" if m.ok else "NO")
        rows.append((str(m.part), m.name, _format_value(m), str(m.target) if m.target else "", ok, m.note))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for number, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths)) + "  " + row[5])
        if number == 0:
            lines.append("  ".join("-" * width for width in widths) + "  " + "-" * 4)
    return "\n".join(lines)


def _parse_parts(text: str) -> list[int]:
    try:
        parts = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--only takes part numbers like 1,2,3, not {text!r}") from None
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"the parts are {', '.join(map(str, PARTS))}; got {text!r}")
    return parts


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are document counts like 100000,1000000, not {text!r}") from None
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError("each size must be at least 1000 documents")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="subsets and fewer repeats: every part in a few minutes")
    parser.add_argument("--only", type=_parse_parts, default=sorted(PARTS), help="comma-separated part numbers (1-17)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per figure, median reported (default 5, --quick 2)")
    parser.add_argument("--build-repeats", type=int, default=1, help="runs of each cold embedding build in part 7 (default 1)")
    parser.add_argument("--workspace", type=Path, default=None, help="workspace folder (default: the project's workspace/)")
    parser.add_argument("--skip-scale", action="store_true", help="leave out part 8")
    parser.add_argument("--scale-sizes", type=_parse_sizes, default=None,
                        help="synthetic corpus sizes for part 8 (default 100000,1000000; --quick 20000)")
    parser.add_argument("--large-sizes", type=_parse_sizes, default=None,
                        help="synthetic corpus sizes for part 13 (default 1000000; --quick 20000); the target is set at 5000000")
    parser.add_argument("--bm25-sizes", type=_parse_sizes, default=None,
                        help="synthetic corpus sizes for part 15 (default 100000,1000000; --quick 20000)")
    parser.add_argument("--product-sizes", type=_parse_sizes, default=None,
                        help="corpus sizes for part 17 (default 6037,100000,1000000; --quick 6037,20000)")
    parser.add_argument("--ann-sizes", type=_parse_sizes, default=None,
                        help="synthetic vector counts for part 16 (default 100000,1000000; --quick 20000)")
    parser.add_argument("--ray-docs", type=int, default=None,
                        help="documents embedded in part 10 (default: all of csn-python-code2doc; --quick 1000)")
    parser.add_argument("--real-sample", type=int, default=None,
                        help="documents of part 14's real corpus embedded per engine (default 5000; --quick 1000)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes (default bench/results/)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 5)
    if args.repeats < 1 or args.build_repeats < 1:
        parser.error("--repeats and --build-repeats must be at least 1")
    args.ray_docs = args.ray_docs or (1000 if args.quick else None)
    args.real_sample = args.real_sample or (1000 if args.quick else 5000)
    args.scale_sizes = args.scale_sizes or ([20_000] if args.quick else [100_000, 1_000_000])
    args.large_sizes = args.large_sizes or ([20_000] if args.quick else [1_000_000])
    args.bm25_sizes = args.bm25_sizes or ([20_000] if args.quick else [100_000, 1_000_000])
    args.product_sizes = args.product_sizes or ([6037, 20_000] if args.quick else [6037, 100_000, 1_000_000])
    args.ann_sizes = args.ann_sizes or ([20_000] if args.quick else [100_000, 1_000_000])
    if args.skip_scale:
        args.only = [p for p in args.only if p != 8]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    context = BenchContext(Workspace.open(args.workspace), args.repeats, args.quick)
    if (load_average() or (0,))[0] > (os.cpu_count() or 1):
        context.note(f"the machine was loaded (load average {load_average()[0]:.1f} on {os.cpu_count()} cores) "
                     f"at the start: timings are pessimistic")
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(),
              "args": {"quick": args.quick, "only": args.only, "repeats": args.repeats, "build_repeats": args.build_repeats,
                       "workspace": str(context.workspace.root), "scale_sizes": args.scale_sizes,
                       "large_sizes": args.large_sizes, "bm25_sizes": args.bm25_sizes,
                       "ann_sizes": args.ann_sizes},
              "load_average": {"start": load_average()}, "parts": {}, "results": []}
    measures: list[Measure] = []
    for part in args.only:
        print(f"[{time.strftime('%H:%M:%S')}] part {part}: {PARTS[part]} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            found = _part_runner(part, args)(context)
        except WorkbenchError as exc:
            found = [Measure(part, PARTS[part], None, "", None, f"failed: {exc}")]
        seconds = time.perf_counter() - started
        report["parts"][str(part)] = {"name": PARTS[part], "seconds": seconds, "load_average_after": load_average()}
        print(f"[{time.strftime('%H:%M:%S')}] part {part} done in {seconds:.0f} s", file=sys.stderr, flush=True)
        measures.extend(found)
    report["load_average"]["end"] = load_average()
    report["notes"] = context.notes
    report["results"] = [m.as_dict() for m in measures]
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    info = report["machine"]
    print(f"\n{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; load average "
          f"{report['load_average']['start']} -> {report['load_average']['end']}; repeats {args.repeats}"
          f"{'; QUICK (subsets)' if args.quick else ''}\n")
    print(table(measures))
    for note in context.notes:
        print(f"\nnote: {note}")
    print(f"\nwritten: {out}")
    return 0 if all(m.ok is not False for m in measures) else 1


if __name__ == "__main__":
    sys.exit(main())
