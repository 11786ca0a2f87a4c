"""Part 12: fine-tuning memory and CPU per step, the default batch shape, whole-batch vs GradCache mini-batches.

Each setting runs in a process of its own (peak RSS is per process): ``finetune`` on real click
functions, batch 32 x (query + positive + 3 negatives), 128 tokens, for a few steps. A mini-batch
of 32 holds the whole batch's activations at once, as the loop before GradCache did; the default 8
holds a quarter of them. Run alone: ``python -m bench.finetuning --mini-batch 8 --steps 2``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Measure, Target

BATCH = 32
NEGATIVES = 3


def _examples(n: int):
    from core.data.source_benchmark import extract_functions
    from core.training.finetune import TrainingExample, package_roots

    functions = extract_functions(package_roots(["click"])[0], ["python"])
    random.Random(0).shuffle(functions)
    spare = [f.code_without_doc for f in functions[n:]]  # negatives that are no row's positive
    return [TrainingExample(f.docstring, f.code_without_doc, tuple(spare[(NEGATIVES * i + k) % len(spare)] for k in range(NEGATIVES)))
            for i, f in enumerate(functions[:n])]


def child(mini_batch: int, steps: int, threads: int | None) -> dict:
    from core.training.finetune import finetune
    from core.workspace import Workspace

    examples = _examples(BATCH * steps)
    with tempfile.TemporaryDirectory() as folder:
        workspace = Workspace.open(Path(folder) / "ws")
        cpu, wall, step_cpu = time.process_time(), time.perf_counter(), []

        def on_step(step) -> None:
            step_cpu.append(time.process_time())

        finetune(examples, workspace, output_name="bench-ft", batch_size=BATCH, max_examples=BATCH * steps, mini_batch_size=mini_batch,
                 progress=False, threads=threads, on_step=on_step)
    per_step = [b - a for a, b in zip([cpu, *step_cpu[:-1]], step_cpu)]
    return {"mini_batch": mini_batch, "steps": len(per_step), "cpu_s_per_step": per_step,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "wall_s": time.perf_counter() - wall}


def training_memory(context, steps: int = 2) -> list[Measure]:
    """Peak RSS and CPU seconds per step for the whole batch at once (mini-batch 32) and the default (8)."""
    measures = []
    for mini_batch in (BATCH, 8):
        out = subprocess.run([sys.executable, "-m", "bench.finetuning", "--mini-batch", str(mini_batch), "--steps", str(steps)],
                             capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
                             env=os.environ | {"HF_HUB_OFFLINE": "1"})
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        target = Target("<=", 3 * 1024) if mini_batch == 8 else None
        label = "whole batch at once" if mini_batch == BATCH else "GradCache mini-batch 8 (default)"
        measures.append(Measure(12, f"fine-tune peak RSS, {label}", round(figures["peak_rss_mb"]), "MB", target,
                                f"{figures['steps']} steps of 32 x 5 texts x 128 tokens", figures))
        measures.append(Measure(12, f"fine-tune CPU per step, {label}", round(min(figures["cpu_s_per_step"]), 1), "CPU s",
                                None, "fastest step; all threads' CPU time", figures))
    return measures


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mini-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    print(json.dumps(child(args.mini_batch, args.steps, args.threads)))
