"""The Ray engine's driver memory against corpus size: the same job at two sizes, the driver's peak RSS at each.

Each size gets a synthetic corpus (part 13's: real cosqa functions repeated with variations), written and imported
into its corpus store by one process; a second, fresh process opens the store (reused), starts a local Ray and runs
``embed_corpus`` on it, sampling its own RSS. That process is the driver: Ray's processes (GCS, raylet, the actors,
the read and write tasks) are not counted. The model is a stand-in built here, one 32-wide BERT layer with MiniLM's
tokenizer and random weights, so that a million documents embed in minutes on a CPU: what is measured is what the
driver holds while the corpus streams past it, which does not depend on the model (its vectors are 32 floats, not 384).

By hand: ``nice -n 10 python -m bench.ray_driver --sizes 100000 1000000 --out figures.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import current_rss_bytes, high_water_rss_bytes
from core.index.distributed import ROWS_PER_BLOCK

BASE_SET = "cosqa"


def build_stand_in_model(folder: Path) -> Path:
    """A sentence-transformers model of one 32-wide BERT layer (random weights, MiniLM's tokenizer); returns its folder."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    from core.index.encoders import resolve_model

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder / "bert")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (resolve_model("minilm") / name).is_file():
            shutil.copy(resolve_model("minilm") / name, folder / "bert" / name)
    SentenceTransformer(modules=[models.Transformer(str(folder / "bert"), max_seq_length=64), models.Pooling(32)]).save(
        str(folder / "model"))
    return folder / "model"


def prepare(workdir: Path, size: int, shared: Path) -> dict:
    """Write the corpus and import it into its store (this process is not the one measured)."""
    from bench.large_corpus import write_corpus
    from core.data.corpus_store import open_corpus_store
    from core.data.datasets import load_dataset
    from core.workspace import Workspace

    base = load_dataset(shared / BASE_SET)
    folder = workdir / "data" / f"synthetic-{size}"
    started = time.perf_counter()
    write_corpus(folder, [d.full_text for d in base.documents], size, [q.text for q in base.queries[:10]])
    store, _ = open_corpus_store(Workspace.open(workdir / "ws"), folder.name, folder)
    return {"documents": store.num_docs, "prepare_s": time.perf_counter() - started}


def measure(workdir: Path, size: int, model: Path, actors: int, cpus_per_actor: float, rows_per_block: int) -> dict:
    """Run the Ray job over the stored corpus in this process and report the driver's RSS (sampled and peak)."""
    import ray

    from core.data.corpus_store import open_corpus_store
    from core.index.distributed import RayOptions, embed_corpus
    from core.index.encoders import load_encoder
    from core.workspace import Workspace

    workspace = Workspace.open(workdir / "ws")
    folder = workdir / "data" / f"synthetic-{size}"
    store, report = open_corpus_store(workspace, folder.name, folder)
    encoder = load_encoder(str(model))
    encoder.encode(["warm up"])  # the model loaded here too: the driver reads its dimension and fingerprint
    figures = {"documents": store.num_docs, "store_reused": report.reused, "rss_before_ray": current_rss_bytes()}
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append((time.perf_counter(), current_rss_bytes()))

    ray.init(address="local", num_cpus=max(2, int(actors * cpus_per_actor) + 1), include_dashboard=False, log_to_driver=False)
    try:
        figures["rss_ray_started"] = current_rss_bytes()
        sampler = threading.Thread(target=sample, daemon=True)
        started = time.perf_counter()
        sampler.start()
        marks = {}

        def progress(fraction: float) -> None:
            if fraction >= 1.0 and "embedded" not in marks:
                marks["embedded"] = time.perf_counter()

        options = RayOptions(actors=actors, cpus_per_actor=cpus_per_actor, rows_per_block=rows_per_block)
        build = embed_corpus(workspace, store, encoder, options, rebuild=True, progress=progress)
        finished = time.perf_counter()
        done.set()
        sampler.join()
    finally:
        ray.shutdown()
    embedded = marks.get("embedded", finished)
    figures.update({
        "job_s": finished - started, "embed_s": embedded - started, "adopt_s": finished - embedded, "reused": build.reused,
        "rss_peak_during_job": max((rss for _, rss in samples), default=0),
        "rss_peak_while_embedding": max((rss for t, rss in samples if t <= embedded), default=0),
        "rss_peak_while_adopting": max((rss for t, rss in samples if t > embedded), default=0),
        "rss_after_job": current_rss_bytes(), "hwm": high_water_rss_bytes(), "samples": len(samples),
        "load_average": os.getloadavg(),
    })
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Driver RSS of the Ray embedding job at several corpus sizes.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument("--rows-per-block", type=int, default=ROWS_PER_BLOCK)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    parser.add_argument("--worker", choices=("prepare", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "prepare":
        args.out.write_text(json.dumps(prepare(args.workdir, args.sizes[0], args.shared)))
        return 0
    if args.worker == "measure":
        args.out.write_text(json.dumps(measure(args.workdir, args.sizes[0], args.model, args.actors, args.cpus_per_actor,
                                               args.rows_per_block)))
        return 0
    results = {}
    root = Path(tempfile.mkdtemp(prefix="codeir-bench-ray-driver-"))
    try:
        model = build_stand_in_model(root / "stand-in")
        for size in args.sizes:
            workdir = root / str(size)
            figures = {}
            for worker in ("prepare", "measure"):  # each in a fresh process: the measured one only opens the store
                out = workdir / f"{worker}.json"
                workdir.mkdir(parents=True, exist_ok=True)
                subprocess.run([sys.executable, "-m", "bench.ray_driver", "--worker", worker, "--workdir", str(workdir),
                                "--sizes", str(size), "--model", str(model), "--out", str(out), "--shared", str(args.shared),
                                "--actors", str(args.actors), "--cpus-per-actor", str(args.cpus_per_actor),
                                "--rows-per-block", str(args.rows_per_block)],
                               cwd=Path(__file__).resolve().parent.parent, check=True)
                figures[worker] = json.loads(out.read_text())
            results[size] = figures
            print(json.dumps({size: figures}), flush=True)
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    args.out.write_text(json.dumps({"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
