"""MiniLM through int8 ONNX Runtime against torch: docs/s of both on the same texts, in one process, and their cosine.

Usage (from the repository root)::

    python bench/onnx_vs_torch.py [--dataset cosqa] [--count 2000] [--runs 3] [--batch-size 64] [--workspace DIR]

Each backend is warmed up first (the first ONNX use exports and quantises once, untimed); then runs
alternate torch and onnx, so both meet the same machine load, and the median run is reported.
A ratio is only meaningful within one run of this script. Besides wall-clock docs/s it prints docs per
CPU-second of this process, which other workers' load on shared cores distorts less.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the repository root
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.common import load_average, machine, time_repeated  # noqa: E402
from core.data.datasets import load_dataset  # noqa: E402
from core.index.encoders import load_encoder  # noqa: E402
from core.workspace import Workspace  # noqa: E402

WARM_UP_TEXTS = 128


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cosqa", help="a bundled set under the data directory")
    parser.add_argument("--count", type=int, default=2000, help="corpus texts to encode")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workspace", default=None, help="where the ONNX export is cached (default: the project's)")
    args = parser.parse_args(argv)

    workspace = Workspace.open(args.workspace)
    if workspace.data_dir is None:
        parser.error("no data directory: set CODEIR_DATA_DIR or place the sets in ../shared/datasets")
    texts = [doc.full_text for doc in load_dataset(workspace.data_dir / args.dataset).documents[: args.count]]
    encoders = {backend: load_encoder("minilm", workspace, backend) for backend in ("torch", "onnx")}
    for encoder in encoders.values():
        encoder.encode(texts[:WARM_UP_TEXTS], batch_size=args.batch_size)

    load_before = load_average()
    seconds: dict[str, list[float]] = {backend: [] for backend in encoders}
    cpu_seconds: dict[str, list[float]] = {backend: [] for backend in encoders}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.runs):
        for backend, encoder in encoders.items():
            cpu_started = time.process_time()
            timing = time_repeated(lambda: encoder.encode(texts, batch_size=args.batch_size), 1)
            cpu_seconds[backend].append(time.process_time() - cpu_started)
            seconds[backend].extend(timing.seconds)
            vectors[backend] = timing.result
    load_after = load_average()

    rates = {backend: len(texts) / statistics.median(times) for backend, times in seconds.items()}
    # CPU time of this process (all its threads) per text: less sensitive than wall time to other workers' load.
    cpu_rates = {backend: len(texts) / statistics.median(times) for backend, times in cpu_seconds.items()}
    cosines = np.sum(vectors["torch"] * vectors["onnx"], axis=1)
    facts = machine()
    print(f"{len(texts)} {args.dataset} corpus texts, batch {args.batch_size}, median of {args.runs} runs "
          f"on {facts['cpu']} ({facts['cores']} cores, {facts['cpu_flags']})")
    print(f"load average before {_load(load_before)}, after {_load(load_after)}")
    for backend, times in seconds.items():
        print(f"{backend:>5}: {rates[backend]:8.1f} docs/s wall, {cpu_rates[backend]:8.1f} docs per CPU-second   "
              f"runs (s wall): {', '.join(f'{t:.1f}' for t in times)}")
    print(f"ratio onnx-int8 / torch: {rates['onnx'] / rates['torch']:.2f}x wall, "
          f"{cpu_rates['onnx'] / cpu_rates['torch']:.2f}x CPU time")
    print(f"cosine torch~onnx: mean {cosines.mean():.4f}, min {cosines.min():.4f}")
    print(f"fingerprints: torch {encoders['torch'].fingerprint}, onnx {encoders['onnx'].fingerprint}")
    return 0


def _load(average: tuple[float, float, float] | None) -> str:
    return "unknown" if average is None else " / ".join(f"{value:.1f}" for value in average)


if __name__ == "__main__":
    raise SystemExit(main())
