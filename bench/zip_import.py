"""Part 9: peak memory of importing a large corpus zip, validated by streaming (one process, so its peak is its own).

The corpus is synthetic: docstring-like lines of words drawn from a fixed vocabulary, so it compresses
about as real text does (well under the archive's ratio limit). Nothing is kept: the zip and the
imported dataset live in a temporary folder removed afterwards.

    python -m bench.zip_import --corpus-bytes 1073741824 --workdir DIR --out FILE   (run by run_benchmarks.py)
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from bench.common import Measure, Target, current_rss_bytes, fmt_bytes, high_water_rss_bytes

GIB = 1024**3
DOC_BYTES = 1024  # a docstring of about a kilobyte: a 1 GiB corpus holds about a million documents


def write_corpus_zip(path: Path, corpus_bytes: int, seed: int = 7) -> int:
    """A BEIR zip whose corpus.jsonl is about ``corpus_bytes`` long (streamed into the zip); returns its documents."""
    rng = random.Random(seed)
    vocabulary = [f"{rng.choice('abcdefghijklmnopqrstuvwxyz')}{word}" for word in range(20_000)]
    written = documents = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("big/corpus.jsonl", "w", force_zip64=True) as corpus:
            while written < corpus_bytes:
                words = " ".join(rng.choices(vocabulary, k=DOC_BYTES // 7))[: DOC_BYTES - 40]
                line = (json.dumps({"_id": f"d{documents}", "text": words}) + "\n").encode()
                corpus.write(line)
                written += len(line)
                documents += 1
        archive.writestr("big/queries.jsonl", "".join(json.dumps({"_id": f"q{i}", "text": vocabulary[i]}) + "\n" for i in range(100)))
        archive.writestr("big/qrels/test.tsv", "".join(f"q{i}\td{i}\t1\n" for i in range(100)))
    return documents


def zip_import(context, corpus_bytes: int = GIB) -> list[Measure]:
    """Generate the zip, then import it in a fresh process that reports its peak RSS."""
    workdir = Path(tempfile.mkdtemp(prefix="codeir-bench-zip-"))
    try:
        archive = workdir / "big.zip"
        started = time.perf_counter()
        documents = write_corpus_zip(archive, corpus_bytes)
        generated = time.perf_counter() - started
        out = workdir / "figures.json"
        command = [sys.executable, "-m", "bench.zip_import", "--zip", str(archive), "--workdir", str(workdir / "datasets"),
                   "--out", str(out)]
        finished = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
        if finished.returncode != 0 or not out.is_file():
            tail = (finished.stderr or finished.stdout).strip().splitlines()[-3:]
            return [Measure(9, "zip import", None, "", None, f"failed (exit {finished.returncode}): {' | '.join(tail)}")]
        figures = json.loads(out.read_text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    how = (f"{fmt_bytes(figures['corpus_bytes'])} corpus.jsonl, {documents:,} documents of ~{DOC_BYTES} bytes, zip of "
           f"{fmt_bytes(figures['zip_bytes'])} (generated in {generated:.0f} s); import_zip (unpack, then check_dataset "
           f"streaming) in a fresh process: {figures['seconds']:.0f} s; RSS before the import "
           f"{fmt_bytes(figures['rss_before'])}")
    label = f"zip import of a {fmt_bytes(corpus_bytes)} corpus"
    return [Measure(9, f"{label}: peak RSS", figures["peak_rss"] / GIB, "GiB", Target("<=", 1.0), how, figures),
            Measure(9, f"{label}: seconds", figures["seconds"], "s", None, how, figures)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Import one zip and report peak RSS (run by run_benchmarks.py).")
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from core.data.archives import import_zip

    rss_before = current_rss_bytes()
    started = time.perf_counter()
    folder = import_zip(args.zip, args.workdir)
    seconds = time.perf_counter() - started
    figures = {"peak_rss": high_water_rss_bytes(), "rss_before": rss_before, "seconds": seconds,
               "zip_bytes": args.zip.stat().st_size, "corpus_bytes": (folder / "corpus.jsonl").stat().st_size}
    args.out.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
