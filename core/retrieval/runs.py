"""Runs: what a retriever returned for every query, saved with what produced it.

A run persists as one parquet file (query_id, doc_id, rank, score) whose schema metadata holds the
profile, its parameters, the dataset and model content hashes and the timings, so any page can
reopen it. TREC run files (``qid Q0 docid rank score tag``) go in and out.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import DatasetError, DatasetProblem, OutputError, RunCorruptError, RunNotFoundError

HEADER_KEY = b"codeir.run"
CHECKSUM_KEY = b"codeir.checksum"  # CRC-32 of the header and every column, as indexes carry theirs


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
    damage: str = ""  # why the file failed its check; a damaged run is listed, never scored

    @property
    def damaged(self) -> bool:
        return bool(self.damage)


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
    header_bytes = json.dumps(header, default=str).encode()
    table = table.replace_schema_metadata({HEADER_KEY: header_bytes, CHECKSUM_KEY: _checksum(header_bytes, table).encode()})
    runs_dir.mkdir(parents=True, exist_ok=True)
    final = runs_dir / f"{run.run_id}.parquet"
    tmp = final.with_suffix(f".tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return run


def _checksum(header_bytes: bytes, table: pa.Table) -> str:
    """CRC-32 over the header and the four columns' values (not parquet's bytes, which a rewrite may change)."""
    crc = zlib.crc32(header_bytes)
    for column in ("query_id", "doc_id"):
        crc = zlib.crc32("\x1f".join(table.column(column).to_pylist()).encode("utf-8", "surrogatepass"), crc)
    crc = zlib.crc32(table.column("rank").to_numpy().astype("<i4").tobytes(), crc)
    crc = zlib.crc32(table.column("score").to_numpy().astype("<f8").tobytes(), crc)
    return f"{crc:08x}"


_HEADER_TYPES = {"name": str, "dataset": str, "run_id": str, "created": str, "meta": dict, "profile": dict, "queries": list}


def _wrong_header_fields(header: dict) -> str:
    """The first header field whose value has the wrong type ('' when none): readers index ``meta`` and ``profile``
    as dicts and format ``ms_per_query`` as a number."""
    for key, kind in _HEADER_TYPES.items():
        if key in header and not isinstance(header[key], kind):
            return repr(key)
    number = header.get("meta", {}).get("ms_per_query")
    if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))):
        return "'meta.ms_per_query'"
    return ""


def _header(path: Path) -> dict:
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(HEADER_KEY, b"{}"))


def _damaged(path: Path, why: str) -> RunCorruptError:
    return RunCorruptError(f"Saved run {path.stem} is damaged ({why}); it is not scored. Delete {path} and run the "
                           "profile again (`python -m core evaluate`, or Evaluate on the leaderboard).")


def _read_checked(path: Path) -> tuple[dict, pa.Table]:
    """The run file's header and table, after its checksum; RunCorruptError when either cannot be trusted."""
    try:
        table = pq.read_table(path)
        metadata = table.schema.metadata or {}
        header = json.loads(metadata[HEADER_KEY])
    except Exception as exc:  # pyarrow raises OSError, ArrowInvalid, ...; a flipped header byte bad JSON or bad UTF-8
        raise _damaged(path, f"unreadable: {type(exc).__name__}") from None
    if not isinstance(header, dict) or set(table.column_names) != {"query_id", "doc_id", "rank", "score"}:
        raise _damaged(path, "not a run file of this workbench")
    if wrong := _wrong_header_fields(header):  # a run saved before checksums has nothing else to vouch for its header
        raise _damaged(path, f"header field {wrong} of the wrong type")
    stored = metadata.get(CHECKSUM_KEY)
    if stored is None:
        return header, table  # runs saved before checksums existed carry none and are accepted as they are
    try:
        actual = _checksum(metadata[HEADER_KEY], table)
    except Exception as exc:  # e.g. a string column whose bytes are no longer UTF-8
        raise _damaged(path, f"unreadable: {type(exc).__name__}") from None
    if stored.decode("ascii", "replace") != actual:
        raise _damaged(path, "checksum mismatch")
    return header, table


@functools.lru_cache(maxsize=256)
def _verified(path: str, size: int, modified_ns: int, changed_ns: int) -> tuple[dict, str]:
    """Header and damage of a run file, checked once per version of the file (size and times are the key)."""
    try:
        header, _ = _read_checked(Path(path))
        return header, ""
    except RunCorruptError as exc:
        try:
            header = _header(Path(path))
        except Exception:
            header = {}
        return header if isinstance(header, dict) else {}, str(exc)


def list_runs(runs_dir: Path, dataset: str | None = None) -> list[SavedRun]:
    """Saved runs, newest first, each checked: a damaged one is listed with ``damage`` set (and a run of
    unreadable header under any dataset), so that it is reported rather than hidden or scored."""
    saved = []
    for path in sorted(runs_dir.glob("*.parquet"), reverse=True):
        try:
            info = path.stat()
        except OSError:
            continue
        header, damage = _verified(str(path), info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if dataset and header.get("dataset", dataset) != dataset:
            continue
        saved.append(SavedRun(str(header.get("run_id", path.stem)), str(header.get("name", "")), str(header.get("dataset", "")),
                              str(header.get("created", "")), path, header.get("meta", {}) if not damage else {},
                              header.get("profile", {}) if not damage else {}, damage))
    return saved


def load_run(runs_dir: Path, run_id: str) -> Run:
    """A saved run, after its checksum (RunCorruptError when the file is damaged)."""
    path = runs_dir / f"{Path(run_id).name}.parquet"
    if not path.is_file():
        raise RunNotFoundError(f"No saved run {run_id!r} in {runs_dir}. List runs with `python -m core runs`.")
    header, table = _read_checked(path)
    table = table.sort_by([("query_id", "ascending"), ("rank", "ascending")])
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
    try:
        with Path(path).open("w", encoding="utf-8") as out:
            for query_id, ranking in run.rankings.items():
                for rank, (doc_id, score) in enumerate(zip(ranking.doc_ids, ranking.scores), start=1):
                    out.write(f"{query_id} Q0 {doc_id} {rank} {score:.10g} {tag}\n")
    except OSError as exc:
        raise OutputError(f"Cannot write {str(path)!r}: {exc.strerror or exc}. Check that its folder exists and is writable.") from None
    return Path(path)


def read_trec(path: Path, name: str | None = None, dataset: str = "") -> Run:
    """Import a TREC run file; rankings are re-sorted by score (ties: doc id descending, as trec_eval).

    A file that lists one document twice for a query is refused, naming each repeated line, whatever the two scores:
    keeping either line would make the metrics depend on a rule the file's author never chose (the last line won
    before, so the same lines in another order scored differently), and trec_eval refuses such runs too. A
    byte-order mark opening the file is dropped, and a line longer than MAX_LINE_BYTES is a refused line.
    """
    from core.data.datasets import FirstProblems, bounded_lines, decode_line

    file = Path(path).name
    per_query: dict[str, dict[str, tuple[float, int]]] = {}  # query -> document -> (score, line number)
    problems = FirstProblems()  # a run of millions of bad lines keeps the first 1,000 reports and counts the rest
    repeated = 0
    tag = ""
    try:
        handle = Path(path).open("rb")
    except FileNotFoundError:
        raise DatasetError(f"Run file {str(path)!r} does not exist.") from None
    except OSError as exc:
        raise DatasetError(f"Cannot read run file {str(path)!r}: {exc.strerror or exc}.") from None
    with handle:
        for number, raw in bounded_lines(handle, file, problems):
            cells = decode_line(raw, number, errors="replace").split()
            if not cells:
                continue
            if len(cells) != 6:
                problems.append(DatasetProblem(file, number, f"expected 6 columns, got {len(cells)}"))
                continue
            try:
                score = float(cells[4])
            except ValueError:
                score = math.nan
            if math.isnan(score):  # NaN orders nowhere: the ranking, and every metric, would depend on line order
                problems.append(DatasetProblem(file, number, f"score {cells[4]!r} is not a number"))
                continue
            query_id, doc_id = cells[0], cells[2]
            _, first = per_query.setdefault(query_id, {}).setdefault(doc_id, (score, number))
            if first != number:
                repeated += 1
                problems.append(DatasetProblem(file, number, f"document {doc_id!r} is listed again for query {query_id!r} "
                                                             f"(first on line {first})"))
                continue
            tag = cells[5]
    if problems:
        why = (f" {repeated:,} {'line repeats' if repeated == 1 else 'lines repeat'} a (query, document) pair: list each "
               "document once per query (trec_eval refuses such runs too)." if repeated else "")
        more = f" ({problems.total:,} defective lines in all)" if problems.total > len(problems) else ""
        raise DatasetError(f"{file} is not a valid TREC run file.{why}{more}", tuple(problems))
    rankings = {}
    for query_id, scored in per_query.items():
        ordered = sorted(((d, score) for d, (score, _) in scored.items()), key=lambda item: (-item[1], reverse_key(item[0])))
        rankings[query_id] = Ranking(tuple(d for d, _ in ordered), tuple(s for _, s in ordered))
    return Run(name or tag or Path(path).stem, rankings, dataset, {"kind": "imported", "file": file})


def reverse_key(text: str) -> tuple[int, ...]:
    """Sort key that orders strings descending when used ascending (trec_eval's tie rule)."""
    return tuple(-ord(c) for c in text) + (1,)
