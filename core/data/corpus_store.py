"""A corpus stored once on disk as a Lance dataset, so corpora of millions are streamed and read by row, never held whole.

``open_corpus_store`` writes a BEIR ``corpus.jsonl`` into ``indexes/corpus/<dataset>/corpus.lance`` (columns
``id``, ``text``, ``title``, ``language``, ``row``), parsing and writing 64k rows at a time with the same
row checks as ``load_dataset`` (so its rows are exactly ``Dataset.documents``, in the same order, and its
``corpus_hash`` is the loaded dataset's), and reuses it until the source file changes. A stamp beside the
Lance folder records the source's size, modification time and SHA-256, the corpus hash, the row count and
every file's size and CRC-32; a store that fails that check on open is rebuilt, never served.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from core.data.datasets import (CORPUS_FILE, QRELS_DIR, QUERIES_FILE, CorpusHash, Dataset, Document, FirstProblems, OnProblem,
                                Qrels, check_usable, read_qrels, read_records, split_of, iter_records, validate_name)
from core.errors import DatasetProblem
from core.errors import DatasetError, IndexCorruptError
from core.progress import ItemProgress
from core.workspace import Workspace, replace_folder, slug

LANCE_DIR, STAMP_FILE = "corpus.lance", "codeir-corpus.json"
FORMAT_VERSION = 2  # 2: a BTREE index on id
BATCH_ROWS = 65_536  # rows parsed, written and read at a time: ~25 MB of text at code length, whatever the corpus size
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("title", pa.string()), ("language", pa.string()),
                    ("row", pa.int64())])
MAX_ROWS_PER_FILE = 1 << 20


class Corpus(Protocol):
    """What an index build reads: a corpus's name, content hash, size, and its documents streamed in row order.

    A loaded ``Dataset`` is one (its documents in memory), and so is a ``CorpusStore`` (read from disk in batches).
    """

    @property
    def name(self) -> str: ...

    @property
    def corpus_hash(self) -> str: ...

    @property
    def num_docs(self) -> int: ...

    def iter_documents(self) -> Iterator[Document]: ...


@dataclass(frozen=True)
class StoreReport:
    """What opening a store cost: reused or written, how long, and why the one on disk was replaced."""

    name: str
    reused: bool
    seconds: float
    documents: int
    skipped: int = 0  # corpus lines refused (bad JSON, duplicate id, ...), as load_dataset skips them
    damage: str = ""

    def __str__(self) -> str:
        what = f"corpus store for {self.name}"
        if self.reused:
            return f"{what}: reused ({self.documents:,} documents)"
        verb = "rebuilt" if self.damage else "written"
        done = f"{what}: {verb} in {self.seconds:.1f}s ({self.documents / max(self.seconds, 1e-9):,.0f} docs/s)"
        done += f", {self.skipped:,} corpus lines skipped" if self.skipped else ""
        return done + (f"; damage found: {self.damage}" if self.damage else "")


class CorpusStore:
    """An open corpus store: streamed in row order for index builds, read by row or id for pages."""

    def __init__(self, folder: Path, name: str, stamp: dict):
        import lance

        self.folder = folder
        self._name = name
        self.stamp = stamp
        self.dataset = lance.dataset(str(folder / LANCE_DIR))

    @property
    def name(self) -> str:
        return self._name

    @property
    def corpus_hash(self) -> str:
        return self.stamp["corpus_hash"]

    @property
    def num_docs(self) -> int:
        return int(self.stamp["num_docs"])

    @property
    def problems(self) -> list[str]:
        """The first corpus lines skipped when the store was written ("corpus.jsonl:12: bad JSON ...")."""
        return list(self.stamp.get("problems", []))

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[list[Document]]:
        """The documents in row order, ``batch_rows`` at a time; raises IndexCorruptError if rows come out of order."""
        expected = 0
        try:
            for batch in self.dataset.to_batches(batch_size=batch_rows, scan_in_order=True):
                rows = batch.column("row").to_numpy()
                if len(rows) and (rows[0] != expected or rows[-1] != expected + len(rows) - 1):
                    raise IndexCorruptError(f"Corpus store {self.folder} has rows out of order at row {expected}: "
                                            f"rebuild it with `python -m core store-corpus --dataset {self.name} --rebuild`.")
                expected += len(rows)
                yield _documents(batch)
        except (OSError, ValueError) as exc:  # Lance raises these on unreadable data pages
            raise IndexCorruptError(f"Corpus store {self.folder} cannot be read ({exc}): rebuild it with "
                                    f"`python -m core store-corpus --dataset {self.name} --rebuild`.") from exc
        if expected != self.num_docs:
            raise IndexCorruptError(f"Corpus store {self.folder} yielded {expected:,} rows, its stamp says {self.num_docs:,}.")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Lance's errors on missing or unreadable files (a store deleted or replaced under an open one) as IndexCorruptError."""
        try:
            yield
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise IndexCorruptError(f"Corpus store {self.folder} cannot be read ({exc}): store it again (Store for large "
                                    f"corpora, or `python -m core store-corpus --dataset {self.name}`).") from exc

    def iter_documents(self) -> Iterator[Document]:
        for batch in self.batches():
            yield from batch

    def take(self, rows: Sequence[int]) -> list[Document]:
        """The documents at these row numbers, in the order asked (what a page showing hits reads)."""
        rows = [int(row) for row in rows]
        if not rows:
            return []
        if min(rows) < 0 or max(rows) >= self.num_docs:
            raise IndexError(f"row out of range: the store holds rows 0..{self.num_docs - 1}")
        with self._reading():
            table = self.dataset.take(rows)
        if table.column("row").to_pylist() != rows:
            raise IndexCorruptError(f"Corpus store {self.folder} returned other rows than asked: rebuild it with "
                                    f"`python -m core store-corpus --dataset {self.name} --rebuild`.")
        return _documents(table)

    def lookup(self, ids: Sequence[str]) -> list[Document | None]:
        """The documents with these ids, in the order asked; None for an id the corpus lacks."""
        if not ids:
            return []
        with self._reading():
            table = self.dataset.to_table(filter=pc.field("id").isin(list(ids)))
        found = {doc.id: doc for doc in _documents(table)}
        return [found.get(doc_id) for doc_id in ids]

    def rows_of(self, ids: Sequence[str]) -> list[int | None]:
        """Row numbers of these ids (None where missing): how a run's document ids map onto index rows."""
        if not ids:
            return []
        with self._reading():
            table = self.dataset.to_table(columns=["id", "row"], filter=pc.field("id").isin(list(ids)))
        found = dict(zip(table.column("id").to_pylist(), table.column("row").to_pylist()))
        return [found.get(doc_id) for doc_id in ids]


class StoredDocuments(Sequence[Document]):
    """A corpus store's documents as a read-only sequence: ``len``, rows by index, iteration in batches.

    What a ``Dataset`` opened from its store holds in place of a tuple of every document: pages read the rows
    they show (``take``, with a small cache of recent rows), index builds stream the batches, and only the ids
    (``ids``, read once from the id column) stay in memory.
    """

    def __init__(self, store: CorpusStore, cache_rows: int = 4096):
        self.store = store
        self._cache: OrderedDict[int, Document] = OrderedDict()
        self._cache_rows = cache_rows
        self._lock = threading.Lock()  # Streamlit sessions share one dataset across threads

    def __len__(self) -> int:
        return self.store.num_docs

    def __iter__(self) -> Iterator[Document]:
        return self.store.iter_documents()

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.take(range(*index.indices(len(self))))
        row = int(index)
        if row < 0:
            row += len(self)
        return self.take([row])[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredDocuments) and other.store.corpus_hash == self.store.corpus_hash

    def __hash__(self) -> int:
        return hash(self.store.corpus_hash)

    @property
    def corpus_hash(self) -> str:
        return self.store.corpus_hash

    def take(self, rows: Iterable[int]) -> list[Document]:
        """The documents at these rows, in the order asked; rows seen lately come from the cache."""
        rows = [int(row) for row in rows]
        with self._lock:  # the rows found now are kept here: reading the others may evict them from the cache
            found = {row: self._cache[row] for row in rows if row in self._cache}
        missing = sorted(set(rows) - found.keys())
        if missing:
            read = dict(zip(missing, self.store.take(missing)))
            found.update(read)
            with self._lock:
                for row, document in read.items():
                    self._cache[row] = document
                while len(self._cache) > self._cache_rows:
                    self._cache.popitem(last=False)
        return [found[row] for row in rows]

    def ids(self) -> list[str]:
        """Every document id in row order, read from the id column alone (the one column a large dataset keeps)."""
        ids: list[str] = []
        with self.store._reading():
            for batch in self.store.dataset.to_batches(columns=["id", "row"], batch_size=BATCH_ROWS, scan_in_order=True):
                rows = batch.column("row").to_numpy()
                if len(rows) and rows[0] != len(ids):
                    raise IndexCorruptError(f"Corpus store {self.store.folder} has rows out of order at row {len(ids)}: rebuild it "
                                            f"with `python -m core store-corpus --dataset {self.store.name} --rebuild`.")
                ids.extend(batch.column("id").to_pylist())
        if len(ids) != len(self):
            raise IndexCorruptError(f"Corpus store {self.store.folder} holds {len(ids):,} ids, its stamp says {len(self):,}.")
        return ids

    def language_counts(self) -> dict[str, int]:
        """Documents per language ('' for none), counted over the language column alone."""
        counts: dict[str, int] = {}
        with self.store._reading():
            for batch in self.store.dataset.to_batches(columns=["language"], batch_size=BATCH_ROWS):
                for value in pc.value_counts(batch.column("language")).to_pylist():
                    counts[value["values"] or ""] = counts.get(value["values"] or "", 0) + value["counts"]
        return counts


def _documents(batch: pa.RecordBatch | pa.Table) -> list[Document]:
    columns = [batch.column(name).to_pylist() for name in ("id", "text", "title", "language")]
    return [Document(doc_id, text, title, language) for doc_id, text, title, language in zip(*columns)]


def store_folder(workspace: Workspace, name: str) -> Path:
    return workspace.corpus_dir / slug(name)


def _source_facts(source: Path) -> dict:
    stat = source.stat()
    return {"source": str(source), "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns}


def _file_sha256_and_lines(path: Path) -> tuple[str, int]:
    digest, lines = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), lines


def _file_checksums(folder: Path) -> dict[str, list]:
    """Size and CRC-32 of every file under the Lance folder, by relative path."""
    checksums = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        crc = 0
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                crc = zlib.crc32(block, crc)
        checksums[file.relative_to(folder).as_posix()] = [file.stat().st_size, f"{crc:08x}"]
    return checksums


def _read_stamp(folder: Path) -> dict | None:
    try:
        stamp = json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def open_checked_store(folder: Path, name: str, source: Path) -> CorpusStore:
    """Open a store and check it against its stamp and its source; raise IndexCorruptError when damaged or stale."""
    stamp = _read_stamp(folder)
    if stamp is None or stamp.get("format") != FORMAT_VERSION:
        raise IndexCorruptError(f"Corpus store at {folder} is missing, incomplete or of an older format.")
    facts = _source_facts(source)
    if stamp.get("source_size") != facts["source_size"]:
        raise IndexCorruptError(f"Corpus store at {folder} is stale: {source} changed size.")
    if stamp.get("source_mtime_ns") != facts["source_mtime_ns"] and stamp.get("source_sha256") != _file_sha256_and_lines(source)[0]:
        raise IndexCorruptError(f"Corpus store at {folder} is stale: {source} changed.")  # touched but equal: still current
    if stamp.get("files") != _file_checksums(folder / LANCE_DIR):
        raise IndexCorruptError(f"Corpus store at {folder} has missing or damaged files.")
    try:
        store = CorpusStore(folder, name, stamp)
        if store.dataset.schema.names != SCHEMA.names or store.dataset.count_rows() != store.num_docs:
            raise IndexCorruptError(f"Corpus store at {folder} does not hold the {store.num_docs:,} rows its stamp records.")
        store.take([0, store.num_docs - 1])  # reads a page at either end
    except IndexCorruptError:
        raise
    except Exception as exc:  # Lance raises OSError/ValueError/RuntimeError on damaged manifests and pages
        raise IndexCorruptError(f"Corpus store at {folder} cannot be read ({exc}).") from exc
    return store


def _batched(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def write_store(folder: Path, source: Path, on_problem: OnProblem = "skip", progress: ItemProgress | None = None) -> dict:
    """Parse ``source`` (a BEIR corpus.jsonl) and write it into ``folder`` as a Lance dataset with its stamp; returns the stamp.

    Bounded memory: one batch of rows at a time, plus the ids seen so far (duplicates are refused as load_dataset
    refuses them). ``on_problem="raise"`` refuses a corpus with any defective line, in one line naming the first.
    """
    import lance

    problems = FirstProblems()
    digest = CorpusHash()
    facts = _source_facts(source)  # before reading: a file changed while it is read is stale on the next open
    source_sha256, lines = _file_sha256_and_lines(source)  # the line count is the progress bar's total (an upper bound)
    read = {"rows": 0}

    def record_batches() -> Iterator[pa.RecordBatch]:
        for batch in _batched(iter_records(source, problems, "document"), BATCH_ROWS):
            if problems and on_problem == "raise":
                break
            digest.update(batch)
            start = read["rows"]
            read["rows"] += len(batch)
            yield pa.record_batch([pa.array([d.id for d in batch], pa.string()), pa.array([d.text for d in batch], pa.string()),
                                   pa.array([d.title for d in batch], pa.string()), pa.array([d.language for d in batch], pa.string()),
                                   pa.array(range(start, start + len(batch)), pa.int64())], schema=SCHEMA)
            if progress:
                progress("store", read["rows"], max(lines, read["rows"]))

    folder.mkdir(parents=True)
    written = lance.write_dataset(pa.RecordBatchReader.from_batches(SCHEMA, record_batches()), str(folder / LANCE_DIR),
                                  max_rows_per_file=MAX_ROWS_PER_FILE)
    if problems and on_problem == "raise":
        raise DatasetError(f"{source} has defective rows (first: {problems[0]}); nothing was stored.")
    if not read["rows"]:
        first = f" (first problem: {problems[0]})" if problems else ""
        raise DatasetError(f"{source}: the corpus has no usable documents{first}.")
    written.create_scalar_index("id", "BTREE")  # lookup(ids) reads the index, not every id (179 ms a lookup at 1M without)
    stamp = {"format": FORMAT_VERSION, **facts, "source_sha256": source_sha256, "corpus_hash": digest.hexdigest(),
             "num_docs": read["rows"], "problem_count": problems.total, "problems": [str(p) for p in problems[:20]],
             "built": time.strftime("%Y-%m-%dT%H:%M:%S"), "files": _file_checksums(folder / LANCE_DIR)}
    (folder / STAMP_FILE).write_text(json.dumps(stamp), encoding="utf-8")
    return stamp


def open_corpus_store(workspace: Workspace, name: str, dataset_folder: str | os.PathLike, rebuild: bool = False,
                      on_problem: OnProblem = "skip", progress: ItemProgress | None = None) -> tuple[CorpusStore, StoreReport]:
    """Open the store of a dataset's corpus, writing it first when missing, stale or damaged.

    Atomic and locked as index builds are: written to a temporary folder, renamed into place under a lock.
    """
    validate_name(name)
    source = Path(dataset_folder) / CORPUS_FILE
    if not source.is_file():
        raise DatasetError(f"{name} has no {CORPUS_FILE} in {dataset_folder}: a BEIR dataset keeps its documents there.")
    folder = store_folder(workspace, name)
    started = time.perf_counter()
    damage = ""
    with workspace.lock(f"corpus-{name}"):
        if not rebuild:
            try:
                store = open_checked_store(folder, name, source)
                return store, StoreReport(name, True, time.perf_counter() - started, store.num_docs)
            except IndexCorruptError as exc:
                damage = str(exc) if folder.exists() else ""  # no folder: a first build, not a repair
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        for stale in [tmp, *folder.parent.glob(f".{folder.name}.tmp-*"), *folder.parent.glob(f".replaced-{folder.name}-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        try:
            stamp = write_store(tmp, source, on_problem, progress)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_folder(tmp, folder)
        store = open_checked_store(folder, name, source)
    return store, StoreReport(name, False, time.perf_counter() - started, store.num_docs, stamp["problem_count"], damage)


def load_stored_dataset(workspace: Workspace, folder: str | os.PathLike, split: str | None = None, name: str | None = None,
                        on_problem: OnProblem = "skip", progress: ItemProgress | None = None) -> Dataset:
    """A BEIR folder opened with its corpus in the store (written on first use, reused until corpus.jsonl changes).

    Queries and judgments are read as ``load_dataset`` reads them and stay in memory; the documents are a
    ``StoredDocuments``, read by row. The rows, their order, the skipped lines and the corpus hash are those
    ``load_dataset`` gives, so runs, indexes and metrics are the same whichever way a dataset was opened.
    """
    folder = Path(folder)
    split = split_of(folder, split)
    name = validate_name(name or folder.name)
    store, _ = open_corpus_store(workspace, name, folder, on_problem=on_problem, progress=progress)
    documents = StoredDocuments(store)
    problems: list[DatasetProblem] = [_stored_problem(text) for text in store.problems]
    hidden = int(store.stamp.get("problem_count", 0)) - len(problems)
    if hidden > 0:
        problems.append(DatasetProblem(CORPUS_FILE, 0, f"... and {hidden:,} more corpus lines skipped"))
    queries = read_records(folder / QUERIES_FILE, problems, "query")
    doc_index = {doc_id: row for row, doc_id in enumerate(documents.ids())}
    judgments = read_qrels(folder / QRELS_DIR / f"{split}.tsv", doc_index, {q.id for q in queries}, problems)
    check_usable(folder, split, len(documents), judgments, problems, on_problem)
    dataset = Dataset(name, documents, tuple(queries), Qrels(judgments), split, str(folder), tuple(problems))
    dataset.__dict__["doc_ids"] = list(doc_index)  # read once above; a frozen dataclass's cached_property slot
    dataset.__dict__["doc_index"] = doc_index
    return dataset


def _stored_problem(text: str) -> DatasetProblem:
    """A problem line the stamp kept ("corpus.jsonl:12: bad JSON") back as a DatasetProblem."""
    where, _, message = text.partition(": ")
    file, _, line = where.partition(":")
    return DatasetProblem(file, int(line), message) if line.isdigit() and message else DatasetProblem(CORPUS_FILE, 0, text)
