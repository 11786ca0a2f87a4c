"""Benchmarks in BEIR layout: read, validate, write, and find them on disk.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``, optional ``language``),
``queries.jsonl`` (``_id``, ``text``, optional ``language``) and ``qrels/<split>.tsv``
(``query-id<TAB>corpus-id<TAB>score``, header optional). Every defect is reported with its file and
line; a dataset is either refused whole or loaded with its bad rows listed in ``problems``. The bounded readers
here (lines in pieces, a byte-order mark dropped, JSON of bounded size and depth) serve every file a user hands in.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Literal

from core.errors import DatasetError, DatasetProblem
from core.workspace import replace_folder

OnProblem = Literal["skip", "raise"]

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_DIR = "qrels"
DEFAULT_SPLIT = "test"
# A corpus, queries or qrels line longer than this is a skipped row: reading it whole would hold it several times
# over in memory (bytes, text, parsed JSON), and one line of a 2 GiB archive could be all of it.
MAX_LINE_BYTES = 32 * 1024**2
_PIECE_BYTES = 1024**2
MAX_JSON_DEPTH = 64  # what load_json accepts by default; BEIR meta.json and manifests nest a few levels
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Document:
    """One retrievable item: a docstring, a function, a snippet."""

    id: str
    text: str
    title: str = ""
    language: str = ""

    @property
    def full_text(self) -> str:
        """What retrievers index: title and text joined, as BEIR does."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class Query:
    """One benchmark query: code or natural language."""

    id: str
    text: str
    language: str = ""


@dataclass(frozen=True)
class Qrels:
    """Relevance judgments: query id -> document id -> grade (grade > 0 means relevant)."""

    judgments: Mapping[str, Mapping[str, int]]

    @property
    def query_ids(self) -> list[str]:
        return list(self.judgments)

    def grades(self, query_id: str) -> Mapping[str, int]:
        return self.judgments.get(query_id, {})

    def positives(self, query_id: str) -> list[str]:
        """Relevant document ids of a query, most relevant first."""
        graded = self.judgments.get(query_id, {})
        return sorted((d for d, g in graded.items() if g > 0), key=lambda d: -graded[d])

    def is_graded(self) -> bool:
        """True when any judgment uses a grade other than 0 and 1."""
        return any(g not in (0, 1) for per in self.judgments.values() for g in per.values())

    def __len__(self) -> int:
        return len(self.judgments)


class CorpusHash:
    """The corpus content hash, fed a batch of documents at a time (so a streamed corpus hashes as a loaded one)."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, documents: Iterable[Document]) -> None:
        for doc in documents:
            for part in (doc.id, doc.title, doc.text):
                self._digest.update(part.encode("utf-8", "surrogatepass"))
                self._digest.update(b"\x1f")
            self._digest.update(b"\x1e")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """A loaded benchmark: documents in row order, queries, judgments, and what was skipped.

    ``documents`` is a tuple for a corpus read whole, or a ``StoredDocuments`` (core.data.corpus_store) for one
    opened from its corpus store above ``catalog.STORED_MIN_DOCS``: the same sequence of rows, read from disk as
    they are asked for, while the queries, the judgments and the document ids stay in memory.
    """

    name: str
    documents: Sequence[Document]
    queries: tuple[Query, ...]
    qrels: Qrels
    split: str = DEFAULT_SPLIT
    source: str = ""
    problems: tuple[DatasetProblem, ...] = field(default=(), compare=False)

    @property
    def is_stored(self) -> bool:
        """True when the documents are read by row from a corpus store, not held in memory."""
        return not isinstance(self.documents, tuple)

    @cached_property
    def doc_ids(self) -> list[str]:
        """Every document id in row order (a stored corpus reads its id column alone)."""
        ids = getattr(self.documents, "ids", None)
        return ids() if callable(ids) else [doc.id for doc in self.documents]

    @cached_property
    def doc_index(self) -> dict[str, int]:
        """Document id -> row number (the order indexes store documents in)."""
        return {doc_id: row for row, doc_id in enumerate(self.doc_ids)}

    def documents_at(self, rows: Iterable[int]) -> list[Document]:
        """The documents at these rows, in the order asked, read in one go from a stored corpus."""
        take = getattr(self.documents, "take", None)
        return take(rows) if callable(take) else [self.documents[row] for row in rows]

    def documents_for(self, doc_ids: Iterable[str]) -> dict[str, Document]:
        """The documents with these ids (unknown ids left out), read in one go: what a page showing many hits asks."""
        index = self.doc_index
        wanted = list(dict.fromkeys(d for d in doc_ids if d in index))
        return dict(zip(wanted, self.documents_at([index[d] for d in wanted])))

    @cached_property
    def query_index(self) -> dict[str, int]:
        return {query.id: row for row, query in enumerate(self.queries)}

    def document(self, doc_id: str) -> Document:
        return self.documents[self.doc_index[doc_id]]

    def query(self, query_id: str) -> Query:
        return self.queries[self.query_index[query_id]]

    @property
    def judged_queries(self) -> tuple[Query, ...]:
        """Queries with at least one relevant document: the ones metrics average over."""
        return tuple(q for q in self.queries if self.qrels.positives(q.id))

    @cached_property
    def corpus_hash(self) -> str:
        """Content hash of the corpus: indexes are rebuilt when it changes."""
        stored = getattr(self.documents, "corpus_hash", None)
        if isinstance(stored, str):  # a corpus store records the hash of the rows it wrote
            return stored
        digest = CorpusHash()
        digest.update(self.documents)
        return digest.hexdigest()

    @property
    def num_docs(self) -> int:
        return len(self.documents)

    def iter_documents(self) -> Iterator[Document]:
        """The documents in row order (what index builds read; a corpus store streams the same from disk)."""
        return iter(self.documents)

    @cached_property
    def queries_hash(self) -> str:
        digest = hashlib.sha256()
        for query in self.queries:
            digest.update(query.id.encode("utf-8", "surrogatepass") + b"\x1f")
            digest.update(query.text.encode("utf-8", "surrogatepass") + b"\x1e")
        return digest.hexdigest()

    @cached_property
    def languages(self) -> list[str]:
        return sorted(set(self.document_languages()) - {""} | {q.language for q in self.queries if q.language})

    def document_languages(self) -> dict[str, int]:
        """Documents per language ('' for none); a stored corpus counts its language column alone."""
        counts = getattr(self.documents, "language_counts", None)
        if callable(counts):
            return counts()
        found: dict[str, int] = {}
        for doc in self.documents:
            found[doc.language] = found.get(doc.language, 0) + 1
        return found

    def query_language(self, query_id: str) -> str:
        """The query's language, else that of its first positive, else 'unknown'."""
        query = self.query(query_id)
        if query.language:
            return query.language
        for doc_id in self.qrels.positives(query_id):
            if doc_id in self.doc_index and self.document(doc_id).language:
                return self.document(doc_id).language
        return "unknown"

    def subset(self, query_ids: Iterable[str], name: str | None = None) -> "Dataset":
        """The same corpus with only some queries (for quick looks and tests)."""
        keep = set(query_ids)
        queries = tuple(q for q in self.queries if q.id in keep)
        judgments = {q: dict(self.qrels.grades(q)) for q in keep if q in self.qrels.judgments}
        return Dataset(name or self.name, self.documents, queries, Qrels(judgments), self.split, self.source, self.problems)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset found on disk, before loading it."""

    name: str
    path: Path
    origin: str  # "data-dir", "workspace" or "builtin"


def validate_name(name: str) -> str:
    """A dataset name is used in paths and table names: letters, digits, '.', '_' and '-' only."""
    # fullmatch, not match: the pattern's "$" also matches before a trailing newline, letting "x\n" through
    if not isinstance(name, str) or not _NAME_OK.fullmatch(name) or ".." in name:
        raise DatasetError(f"Dataset name {name!r} is not allowed: use letters, digits, '.', '_' or '-' (at most 100).")
    return name


def bounded_lines(handle, name: str, problems: list[DatasetProblem]) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each line of ``handle``, read in 1 MiB pieces; a line past MAX_LINE_BYTES is
    read through and dropped (never held whole) and recorded as a problem."""
    number = 0
    while piece := handle.readline(_PIECE_BYTES):
        number += 1
        if piece.endswith(b"\n") or len(piece) < _PIECE_BYTES:
            yield number, piece
            continue
        pieces: list[bytes] | None = [piece]
        size = len(piece)
        while not piece.endswith(b"\n") and (piece := handle.readline(_PIECE_BYTES)):
            size += len(piece)
            if pieces is not None and size > MAX_LINE_BYTES:
                pieces = None  # keep counting, stop holding
            elif pieces is not None:
                pieces.append(piece)
        if pieces is None:
            problems.append(DatasetProblem(name, number, f"line of {size:,} bytes, longer than the limit of {MAX_LINE_BYTES:,}"))
            continue
        yield number, b"".join(pieces)


def decode_line(raw: bytes, number: int, errors: str = "strict") -> str:
    """The text of line ``number`` (1-based) of a UTF-8 file; a byte-order mark opening the file is dropped.

    Every text reader (corpus, queries, qrels, TREC runs) decodes through this: editors on Windows start files
    with a mark, and kept, it would become part of the first id (``\ufeffq1``, a query nothing judges).
    """
    return raw.decode("utf-8-sig" if number == 1 else "utf-8", errors)


def read_at_most(stream: BinaryIO, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of a buffered ``stream`` and whether it held more (one byte past the limit is read to know)."""
    data = stream.read(limit)
    return data, len(data) == limit and bool(stream.read(1))


# A JSON string literal, unrolled so that matching takes linear time on any input.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest, counting brackets outside strings (without parsing it)."""
    import numpy as np

    # UTF-8 bytes of brackets never occur inside a multi-byte character, so the bytes can be counted directly
    codes = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    if not codes.size:
        return 0
    steps = np.zeros(256, dtype=np.int8)
    steps[[ord("["), ord("{")]], steps[[ord("]"), ord("}")]] = 1, -1
    return max(int(np.cumsum(steps[codes], dtype=np.int32).max()), 0)


def load_json(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of ``data`` (a UTF-8 byte-order mark skipped) after checking its depth.

    Raises ValueError, never RecursionError: bad UTF-8, bad JSON, or nesting past ``max_depth`` (checked first, so
    a file of 200,000 opening brackets is refused before the parser recurses into it).
    """
    text = data.decode("utf-8-sig") if isinstance(data, (bytes, bytearray)) else data.removeprefix("\ufeff")
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"nested {depth:,} levels deep, more than the {max_depth} this file may hold")
    return json.loads(text)


def _read_jsonl(path: Path, problems: list[DatasetProblem]) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each good line; record a problem for each bad one."""
    with path.open("rb") as handle:
        for number, raw in bounded_lines(handle, path.name, problems):
            if not raw.strip():
                continue
            try:
                line = decode_line(raw, number)
            except UnicodeDecodeError as exc:
                problems.append(DatasetProblem(path.name, number, f"not valid UTF-8 (byte {exc.start}): {raw[max(0, exc.start - 10):exc.start + 10]!r}"))
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(DatasetProblem(path.name, number, f"bad JSON: {exc.msg} at column {exc.colno}"))
                continue
            except RecursionError:  # json raises this, not JSONDecodeError, on thousands of nested brackets
                problems.append(DatasetProblem(path.name, number, "bad JSON: nested too deeply"))
                continue
            if not isinstance(obj, dict):
                problems.append(DatasetProblem(path.name, number, f"expected a JSON object, got {type(obj).__name__}"))
                continue
            yield number, obj


def _field_str(obj: dict, key: str, file: str, line: int, problems: list[DatasetProblem], required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            problems.append(DatasetProblem(file, line, f"missing field '{key}'"))
            return None
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "_id":
        return str(value)  # numeric ids are common in BEIR exports
    if not isinstance(value, str):
        problems.append(DatasetProblem(file, line, f"field '{key}' must be a string, got {type(value).__name__}"))
        return None
    return value


def _without_lone_surrogates(text: str) -> str:
    """``text`` with lone surrogates (a JSON escape such as ``\\ud800``) replaced by '?', as pasted queries are.

    Such text is not valid Unicode: tokenizers raise TypeError on it and terminals UnicodeEncodeError.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def read_records(path: Path, problems: list[DatasetProblem], kind: str) -> list[Document] | list[Query]:
    return list(iter_records(path, problems, kind))


def iter_records(path: Path, problems: list[DatasetProblem], kind: str) -> Iterator[Document | Query]:
    """Each good row of a corpus or queries file, in order; bad rows go to ``problems``."""
    seen: dict[str, int] = {}
    for line, obj in _read_jsonl(path, problems):
        record_id = _field_str(obj, "_id", path.name, line, problems, required=True)
        text = _field_str(obj, "text", path.name, line, problems, required=True)
        language = _field_str(obj, "language", path.name, line, problems, required=False)
        title = _field_str(obj, "title", path.name, line, problems, required=False) if kind == "document" else ""
        if record_id is None or text is None or language is None or title is None:
            continue
        if not record_id.strip():
            problems.append(DatasetProblem(path.name, line, "empty '_id'"))
            continue
        if any(c.isspace() or not c.isprintable() for c in record_id):
            # TREC run and qrels files separate columns by whitespace: such an id could not be exported or judged
            problems.append(DatasetProblem(path.name, line, f"_id {record_id!r} contains whitespace or control characters"))
            continue
        if record_id in seen:
            problems.append(DatasetProblem(path.name, line, f"duplicate _id {record_id!r} (first on line {seen[record_id]})"))
            continue
        if not (text.strip() or title.strip()):
            problems.append(DatasetProblem(path.name, line, f"empty text for _id {record_id!r}"))
            continue
        if "\x00" in text:
            text = text.replace("\x00", "")  # NUL bytes break tokenizers and terminals; drop them, keep the row
        text, title, language = (_without_lone_surrogates(value) for value in (text, title, language))
        seen[record_id] = line
        if kind == "document":
            yield Document(record_id, text, title, language)
        else:
            yield Query(record_id, text, language)


def read_qrels(path: Path, doc_ids: Container[str], query_ids: Container[str], problems: list[DatasetProblem]) -> dict[str, dict[str, int]]:
    judgments: dict[str, dict[str, int]] = {}
    with path.open("rb") as handle:
        for number, raw in bounded_lines(handle, f"{QRELS_DIR}/{path.name}", problems):
            name = f"{QRELS_DIR}/{path.name}"
            try:
                line = decode_line(raw, number).rstrip("\r\n")
            except UnicodeDecodeError:
                problems.append(DatasetProblem(name, number, "not valid UTF-8"))
                continue
            if not line.strip():
                continue
            cells = line.split("\t") if "\t" in line else line.split()
            if number == 1 and cells and cells[0].strip().lower() in {"query-id", "query_id", "qid", "query"}:
                continue
            if len(cells) == 4:  # TREC qrels: qid iter docid grade
                cells = [cells[0], cells[2], cells[3]]
            if len(cells) != 3:
                problems.append(DatasetProblem(name, number, f"expected 3 tab-separated columns, got {len(cells)}"))
                continue
            query_id, doc_id, grade_text = (c.strip() for c in cells)
            try:
                grade = int(float(grade_text))
            except (ValueError, OverflowError):  # OverflowError: "inf" or "1e400" is a float but no int
                problems.append(DatasetProblem(name, number, f"score {grade_text!r} is not a number"))
                continue
            if query_id not in query_ids:
                problems.append(DatasetProblem(name, number, f"unknown query id {query_id!r}"))
                continue
            if doc_id not in doc_ids:
                problems.append(DatasetProblem(name, number, f"unknown corpus id {doc_id!r}"))
                continue
            judgments.setdefault(query_id, {})[doc_id] = grade
    return judgments


def available_splits(folder: Path) -> list[str]:
    qrels_dir = Path(folder) / QRELS_DIR
    return sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []


def split_of(folder: Path, split: str | None) -> str:
    """The split to read (``test`` when present), after checking the folder has the three BEIR parts."""
    if not folder.is_dir():
        raise DatasetError(f"Dataset folder {str(folder)!r} does not exist.")
    missing = [f for f in (CORPUS_FILE, QUERIES_FILE) if not (folder / f).is_file()]
    splits = available_splits(folder)
    if not splits:
        missing.append(f"{QRELS_DIR}/<split>.tsv")
    if missing:
        raise DatasetError(f"{folder.name} is not a BEIR dataset: missing {', '.join(missing)}.",
                           tuple(DatasetProblem(m, 0, "file missing") for m in missing))
    if split is None:
        return DEFAULT_SPLIT if DEFAULT_SPLIT in splits else splits[0]
    if split not in splits:
        raise DatasetError(f"{folder.name} has no qrels split {split!r}; it has {', '.join(splits)}.")
    return split


def check_usable(folder: Path, split: str, documents: int, judgments: Mapping[str, Mapping[str, int]],
                  problems: list[DatasetProblem], on_problem: OnProblem) -> None:
    if problems and on_problem == "raise":
        raise DatasetError(f"{folder.name} has {len(problems)} defective rows; nothing was loaded.", tuple(problems))
    if not documents:
        raise DatasetError(f"{folder.name}: the corpus has no usable documents.", tuple(problems))
    if not any(g > 0 for grades in judgments.values() for g in grades.values()):
        raise DatasetError(f"{folder.name}: no query has a relevant document in qrels/{split}.tsv.", tuple(problems))


def load_dataset(folder: str | os.PathLike, split: str | None = None, name: str | None = None, on_problem: OnProblem = "skip") -> Dataset:
    """Read a BEIR folder.

    ``on_problem="skip"`` loads the good rows and lists the bad ones in ``Dataset.problems``;
    ``"raise"`` refuses the whole dataset at the first defective file. Missing files and a dataset
    with nothing left to evaluate are always refused.
    """
    folder = Path(folder)
    split = split_of(folder, split)
    problems: list[DatasetProblem] = []
    documents = read_records(folder / CORPUS_FILE, problems, "document")
    queries = read_records(folder / QUERIES_FILE, problems, "query")
    judgments = read_qrels(folder / QRELS_DIR / f"{split}.tsv", {d.id for d in documents}, {q.id for q in queries}, problems)
    check_usable(folder, split, len(documents), judgments, problems, on_problem)
    return Dataset(validate_name(name or folder.name), tuple(documents), tuple(queries), Qrels(judgments), split, str(folder), tuple(problems))


class FirstProblems(list):
    """A problem list that keeps the first 1,000 and counts the rest (a corpus of bad lines must not fill memory with reports)."""

    total = 0

    def append(self, problem: DatasetProblem) -> None:
        self.total += 1
        if len(self) < 1000:
            super().append(problem)


def check_dataset(folder: str | os.PathLike, name: str | None = None) -> None:
    """Refuse, as ``load_dataset`` would, a folder that does not load, holding only ids in memory.

    Imports check an unpacked archive with this: memory grows with the number of rows, not the size of
    the text (one line is held at a time, and a line past MAX_LINE_BYTES is skipped without being held) (validating a 1 GB corpus this way is measured in docs/benchmarks.md).
    """
    folder = Path(folder)
    split = split_of(folder, None)
    problems: list[DatasetProblem] = FirstProblems()
    doc_ids = {record.id for record in iter_records(folder / CORPUS_FILE, problems, "document")}
    query_ids = {record.id for record in iter_records(folder / QUERIES_FILE, problems, "query")}
    judgments = read_qrels(folder / QRELS_DIR / f"{split}.tsv", doc_ids, query_ids, problems)
    check_usable(folder, split, len(doc_ids), judgments, problems, "skip")
    validate_name(name or folder.name)


def write_dataset(dataset: Dataset, folder: str | os.PathLike, meta: Mapping[str, object] | None = None) -> Path:
    """Write a dataset as a BEIR folder (atomically: a temp folder renamed into place)."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    (tmp / QRELS_DIR).mkdir(parents=True, exist_ok=True)
    with (tmp / CORPUS_FILE).open("w", encoding="utf-8") as out:
        for doc in dataset.documents:
            out.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text, "language": doc.language}, ensure_ascii=False) + "\n")
    with (tmp / QUERIES_FILE).open("w", encoding="utf-8") as out:
        for query in dataset.queries:
            out.write(json.dumps({"_id": query.id, "text": query.text, "language": query.language}, ensure_ascii=False) + "\n")
    with (tmp / QRELS_DIR / f"{dataset.split}.tsv").open("w", encoding="utf-8") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for query_id, grades in dataset.qrels.judgments.items():
            for doc_id, grade in grades.items():
                out.write(f"{query_id}\t{doc_id}\t{grade}\n")
    info = {"queries": len(dataset.queries), "documents": len(dataset.documents), "qrels": sum(len(g) for g in dataset.qrels.judgments.values())}
    info.update(meta or {})
    (tmp / "meta.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return replace_folder(tmp, folder)


def is_beir_folder(folder: Path) -> bool:
    return (folder / CORPUS_FILE).is_file() and (folder / QUERIES_FILE).is_file() and bool(available_splits(folder))


def discover_datasets(*roots: tuple[Path, str]) -> list[DatasetInfo]:
    """BEIR folders directly under each (root, origin) pair, first root winning on a name clash."""
    found: dict[str, DatasetInfo] = {}
    for root, origin in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if child.name.startswith(".") or not child.is_dir() or not is_beir_folder(child):
                continue
            found.setdefault(child.name, DatasetInfo(child.name, child, origin))
    return list(found.values())
