"""Runs: what a retriever returned for every query, saved with what produced it.

A run persists as one parquet file (query_id, doc_id, rank, score) whose schema metadata holds the
profile, its parameters, the dataset and model content hashes and the timings, so any page can
reopen it. TREC run files (``qid Q0 docid rank score tag``) go in and out.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import DatasetError, DatasetProblem, RunNotFoundError


@dataclass(frozen=True)
class Ranking:
    """One query's ranked documents, best first."""

    doc_ids: tuple[str, ...]
    scores: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.doc_ids)

    def rank_of(self, doc_id: str) -> int | None:
        """1-based rank of a document, or None when it was not retrieved."""
        try:
            return self.doc_ids.index(doc_id) + 1
        except ValueError:
            return None

    def top(self, k: int) -> "Ranking":
        return Ranking(self.doc_ids[:k], self.scores[:k])


EMPTY_RANKING = Ranking((), ())


@dataclass(frozen=True)
class Run:
    """Query id -> ranking, plus the provenance a saved run needs to be trusted later."""

    name: str
    rankings: Mapping[str, Ranking]
    dataset: str = ""
    profile: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = ""

    def ranking(self, query_id: str) -> Ranking:
        return self.rankings.get(query_id, EMPTY_RANKING)

    @property
    def depth(self) -> int:
        return max((len(r) for r in self.rankings.values()), default=0)

    def with_id(self) -> "Run":
        """A copy carrying a fresh, sortable run id (time first, so listings sort by age)."""
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        return Run(self.name, self.rankings, self.dataset, self.profile, self.meta, run_id)


@dataclass(frozen=True)
class SavedRun:
    """A run file in the workspace, listed without reading its rankings."""

    run_id: str
    name: str
    dataset: str
    created: str
    path: Path
    meta: Mapping[str, Any]
    profile: Mapping[str, Any] = field(default_factory=dict)


def save_run(run: Run, runs_dir: Path) -> Run:
    """Write ``run`` as parquet (atomically) and return it with its run id."""
    if not run.run_id:
        run = run.with_id()
    query_ids, doc_ids, ranks, scores = [], [], [], []
    for query_id, ranking in run.rankings.items():
        for rank, (doc_id, score) in enumerate(zip(ranking.doc_ids, ranking.scores), start=1):
            query_ids.append(query_id)
            doc_ids.append(doc_id)
            ranks.append(rank)
            scores.append(float(score))
    table = pa.table({"query_id": pa.array(query_ids, pa.string()), "doc_id": pa.array(doc_ids, pa.string()),
                      "rank": pa.array(ranks, pa.int32()), "score": pa.array(scores, pa.float64())})
    header = {"name": run.name, "dataset": run.dataset, "profile": dict(run.profile), "meta": dict(run.meta),
              "run_id": run.run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "queries": list(run.rankings)}
    table = table.replace_schema_metadata({b"codeir.run": json.dumps(header, default=str).encode()})
    runs_dir.mkdir(parents=True, exist_ok=True)
    final = runs_dir / f"{run.run_id}.parquet"
    tmp = final.with_suffix(f".tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return run


def _header(path: Path) -> dict:
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(b"codeir.run", b"{}"))


def list_runs(runs_dir: Path, dataset: str | None = None) -> list[SavedRun]:
    """Saved runs, newest first; unreadable files are skipped, not fatal."""
    saved = []
    for path in sorted(runs_dir.glob("*.parquet"), reverse=True):
        try:
            header = _header(path)
        except Exception:  # a truncated file must not hide the others
            continue
        if dataset and header.get("dataset") != dataset:
            continue
        saved.append(SavedRun(header.get("run_id", path.stem), header.get("name", ""), header.get("dataset", ""),
                              header.get("created", ""), path, header.get("meta", {}),
                              header.get("profile", {})))
    return saved


def load_run(runs_dir: Path, run_id: str) -> Run:
    path = runs_dir / f"{Path(run_id).name}.parquet"
    if not path.is_file():
        raise RunNotFoundError(f"No saved run {run_id!r} in {runs_dir}. List runs with `python -m core runs`.")
    header = _header(path)
    table = pq.read_table(path).sort_by([("query_id", "ascending"), ("rank", "ascending")])
    columns = table.to_pydict()
    grouped: dict[str, tuple[list[str], list[float]]] = {q: ([], []) for q in header.get("queries", [])}
    for query_id, doc_id, score in zip(columns["query_id"], columns["doc_id"], columns["score"]):
        ids, scores = grouped.setdefault(query_id, ([], []))
        ids.append(doc_id)
        scores.append(score)
    rankings = {q: Ranking(tuple(ids), tuple(scores)) for q, (ids, scores) in grouped.items()}
    return Run(header.get("name", run_id), rankings, header.get("dataset", ""), header.get("profile", {}),
               header.get("meta", {}), header.get("run_id", run_id))


def write_trec(run: Run, path: Path, tag: str | None = None) -> Path:
    """Export as a TREC run file: ``qid Q0 docid rank score tag``."""
    tag = (tag or run.name or "run").replace(" ", "_")
    with Path(path).open("w", encoding="utf-8") as out:
        for query_id, ranking in run.rankings.items():
            for rank, (doc_id, score) in enumerate(zip(ranking.doc_ids, ranking.scores), start=1):
                out.write(f"{query_id} Q0 {doc_id} {rank} {score:.10g} {tag}\n")
    return Path(path)


def read_trec(path: Path, name: str | None = None, dataset: str = "") -> Run:
    """Import a TREC run file; rankings are re-sorted by score (ties: doc id descending, as trec_eval)."""
    per_query: dict[str, dict[str, float]] = {}
    problems = []
    tag = ""
    with Path(path).open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            cells = line.split()
            if not cells:
                continue
            if len(cells) != 6:
                problems.append(DatasetProblem(Path(path).name, number, f"expected 6 columns, got {len(cells)}"))
                continue
            try:
                score = float(cells[4])
            except ValueError:
                problems.append(DatasetProblem(Path(path).name, number, f"score {cells[4]!r} is not a number"))
                continue
            per_query.setdefault(cells[0], {})[cells[2]] = score
            tag = cells[5]
    if problems:
        raise DatasetError(f"{Path(path).name} is not a valid TREC run file.", tuple(problems))
    rankings = {}
    for query_id, scores in per_query.items():
        ordered = sorted(scores.items(), key=lambda item: (-item[1], _reverse_key(item[0])))
        rankings[query_id] = Ranking(tuple(d for d, _ in ordered), tuple(s for _, s in ordered))
    return Run(name or tag or Path(path).stem, rankings, dataset, {"kind": "imported", "file": Path(path).name})


def _reverse_key(text: str) -> tuple[int, ...]:
    """Sort key that orders strings descending when used ascending (trec_eval's tie rule)."""
    return tuple(-ord(c) for c in text) + (1,)
