"""Defective datasets and hostile uploads: every defect is located, nothing in the workspace is lost.

Each case starts from real rows of csn-mini written as a BEIR folder, breaks one thing, and checks
that ``load_dataset`` names the file and line (skip mode keeps every good row) and that strict mode
refuses the whole dataset. Uploads run against a workspace that already holds a dataset and an
index, hashed before and after.
"""
from __future__ import annotations

import hashlib
import io
import json
import stat
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from core.data.archives import DEFAULT_MAX_UPLOAD_BYTES, import_zip, import_zip_bytes
from core.data.datasets import Dataset, load_dataset, write_dataset
from core.errors import DatasetError, UnsafeArchiveError
from core.index.lexical import open_lexical_index
from core.workspace import Workspace

CORPUS, QUERIES, QRELS = "corpus.jsonl", "queries.jsonl", "qrels/test.tsv"


@pytest.fixture(scope="module")
def small_csn(csn_mini: Dataset) -> Dataset:
    """Ten judged csn-mini queries, their positives and a few distractors: real rows, quick to write."""
    return csn_mini.subset([q.id for q in csn_mini.judged_queries[:10]], name="csn-small")


@pytest.fixture
def source(tmp_path: Path, small_csn: Dataset) -> Path:
    documents = {d for q in small_csn.queries for d in small_csn.qrels.positives(q.id)}
    kept = tuple(d for d in small_csn.documents if d.id in documents) + small_csn.documents[:5]
    unique = tuple({d.id: d for d in kept}.values())
    return write_dataset(Dataset("csn-small", unique, small_csn.queries, small_csn.qrels), tmp_path / "src" / "csn-small")


def lines(folder: Path, name: str) -> list[bytes]:
    return (folder / name).read_bytes().splitlines(keepends=True)


def rewrite(folder: Path, name: str, new_lines: list[bytes]) -> None:
    (folder / name).write_bytes(b"".join(new_lines))


def problems_in(problems, file: str) -> dict[tuple[str, int], str]:
    return {(p.file, p.line): p.message for p in problems if p.file == file}


def assert_only_consequences_elsewhere(problems, file: str) -> None:
    """A row lost from the corpus or queries may orphan its judgments; nothing else may be reported."""
    for problem in problems:
        if problem.file != file:
            assert problem.file == QRELS and problem.message.startswith("unknown "), str(problem)


def corpus_row(doc_id: object, text: object) -> bytes:
    return json.dumps({"_id": doc_id, "title": "", "text": text}).encode() + b"\n"


# Each case: (file, the defect as a function of the file's lines, the message expected, rows lost from that file)
def cut_last_line(rows: list[bytes]) -> list[bytes]:
    return rows[:-1] + [rows[-1][: len(rows[-1]) // 2]]  # an interrupted copy: no closing brace, no newline


DEFECTS = {
    "truncated last corpus line": (CORPUS, cut_last_line, "bad JSON", 1),
    "truncated last query line": (QUERIES, cut_last_line, "bad JSON", 1),
    "text is a number": (CORPUS, lambda rows: rows + [corpus_row("d-number", 5)], "field 'text' must be a string, got int", 0),
    "_id is null": (CORPUS, lambda rows: rows + [corpus_row(None, "def f(): pass")], "missing field '_id'", 0),
    "_id is a list": (CORPUS, lambda rows: rows + [corpus_row(["d1"], "x")], "field '_id' must be a string, got list", 0),
    "_id with whitespace": (CORPUS, lambda rows: rows + [corpus_row("d 1", "x")], "contains whitespace", 0),
    "duplicate document id": (CORPUS, lambda rows: rows + [rows[0]], "duplicate _id", 0),
    "duplicate query id": (QUERIES, lambda rows: rows + [rows[0]], "duplicate _id", 0),
    "line is a JSON list": (CORPUS, lambda rows: rows + [b'["d1", "text"]\n'], "expected a JSON object, got list", 0),
    "deeply nested JSON": (CORPUS, lambda rows: rows + [b'{"_id": "deep", "text": ' + b"[" * 100_000 + b"\n"], "nested too deeply", 0),
    "non-UTF-8 corpus bytes": (CORPUS, lambda rows: rows + [b'{"_id": "latin1", "text": "caf\xe9 cr\xe8me"}\n'], "not valid UTF-8", 0),
    "non-UTF-8 qrels bytes": (QRELS, lambda rows: rows + [b"q\xff\td1\t1\n"], "not valid UTF-8", 0),
    "qrels names an unknown document": (QRELS, lambda rows: rows + [rows[1].split(b"\t")[0] + b"\tno-such-doc\t1\n"],
                                        "unknown corpus id 'no-such-doc'", 0),
    "qrels names an unknown query": (QRELS, lambda rows: rows + [b"no-such-query\t" + rows[1].split(b"\t")[1] + b"\t1\n"],
                                     "unknown query id 'no-such-query'", 0),
    "qrels score is text": (QRELS, lambda rows: rows + [rows[1].rsplit(b"\t", 1)[0] + b"\thigh\n"], "score 'high' is not a number", 0),
    "qrels with two columns": (QRELS, lambda rows: rows + [b"q1\td1\n"], "expected 3 tab-separated columns, got 2", 0),
}


@pytest.mark.parametrize("case", DEFECTS, ids=list(DEFECTS))
def test_defect_is_reported_with_file_and_line_and_good_rows_are_kept(source: Path, case: str) -> None:
    file, defect, message, lost = DEFECTS[case]
    original = load_dataset(source)
    broken = defect(lines(source, file))
    rewrite(source, file, broken)

    dataset = load_dataset(source)

    located = problems_in(dataset.problems, file)
    assert list(located) == [(file, len(broken))], f"expected exactly one problem, on the last line: {located}"
    assert_only_consequences_elsewhere(dataset.problems, file)
    assert message in located[(file, len(broken))]
    shown = next(str(p) for p in dataset.problems if p.file == file)
    assert shown.startswith(f"{file}:{len(broken)}: ") and message in shown
    if file == CORPUS:
        assert len(dataset.documents) == len(original.documents) - lost
        assert dataset.documents[: len(dataset.documents)] == original.documents[: len(dataset.documents)]
    if file == QUERIES:
        assert len(dataset.queries) == len(original.queries) - lost
    assert dataset.qrels.judgments.keys() <= original.qrels.judgments.keys()


@pytest.mark.parametrize("case", DEFECTS, ids=list(DEFECTS))
def test_strict_loading_refuses_the_whole_dataset_naming_the_line(source: Path, case: str) -> None:
    file, defect, message, _ = DEFECTS[case]
    broken = defect(lines(source, file))
    rewrite(source, file, broken)

    with pytest.raises(DatasetError, match="defective rows; nothing was loaded") as caught:
        load_dataset(source, on_problem="raise")

    assert list(problems_in(caught.value.problems, file)) == [(file, len(broken))]
    assert_only_consequences_elsewhere(caught.value.problems, file)
    assert f"{file}:{len(broken)}: " in str(caught.value) and message in str(caught.value)


def test_byte_order_mark_and_crlf_line_ends_load_like_plain_utf8(source: Path) -> None:
    original = load_dataset(source)
    for name in (CORPUS, QUERIES, QRELS):
        data = (source / name).read_bytes().replace(b"\n", b"\r\n")
        (source / name).write_bytes(b"\xef\xbb\xbf" + data)  # as Notepad and Excel save UTF-8

    dataset = load_dataset(source, on_problem="raise")

    assert dataset.problems == ()
    assert dataset.corpus_hash == original.corpus_hash and dataset.queries_hash == original.queries_hash
    assert dataset.qrels.judgments == original.qrels.judgments


def test_every_defect_at_once_is_listed_in_file_order(source: Path) -> None:
    for file in (CORPUS, QUERIES, QRELS):
        rows = lines(source, file)
        for case, (target, defect, _, _) in DEFECTS.items():
            if target == file and "truncated" not in case:
                rows = defect(rows)
        rewrite(source, file, rows)

    dataset = load_dataset(source)

    expected = sum(1 for case, (_, _, _, _) in DEFECTS.items() if "truncated" not in case)
    assert len(dataset.problems) == expected
    order = {CORPUS: 0, QUERIES: 1, QRELS: 2}
    assert [(order[p.file], p.line) for p in dataset.problems] == sorted((order[p.file], p.line) for p in dataset.problems)


# ---- uploads ------------------------------------------------------------------------------------


@pytest.fixture
def filled_workspace(tmp_path: Path, mini_data_dir: Path, small_csn: Dataset) -> Workspace:
    """A workspace that already holds an imported dataset and a BM25 index: what an upload must not touch."""
    workspace = Workspace.open(tmp_path / "workspace", mini_data_dir)
    write_dataset(small_csn, workspace.datasets_dir / "csn-small")
    open_lexical_index(workspace, small_csn, "code")
    return workspace


def tree_hash(root: Path) -> dict[str, str]:
    """Every path under ``root`` (links not followed) with a hash of its bytes: the disk state to compare."""
    state = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[key] = "link:" + str(path.readlink())
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "dir"
    return state


def beir_entries(folder: Path, prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{p.relative_to(folder).as_posix()}": p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class SizedUpload(io.RawIOBase):
    """An upload that reports its size, as Streamlit's UploadedFile does, and must never be read."""

    def __init__(self, size: int):
        self.size = size
        self.reads = 0

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return 0 if whence == io.SEEK_SET else self.size

    def readinto(self, buffer) -> int:
        self.reads += 1
        raise AssertionError("the upload was read although its size is over the cap")


def test_upload_over_200_mb_is_refused_before_anything_is_written(tmp_path: Path, filled_workspace: Workspace) -> None:
    over = DEFAULT_MAX_UPLOAD_BYTES + 1
    sparse = tmp_path / "uploads" / "huge.zip"
    sparse.parent.mkdir()
    with sparse.open("wb") as out:
        out.truncate(over)  # a sparse file: 200 MB long, no blocks allocated
    upload = SizedUpload(over)
    before = tree_hash(filled_workspace.root)

    with pytest.raises(DatasetError, match=r"huge.zip is 200.0 MiB, over the upload limit of 200 MiB"):
        with sparse.open("rb") as handle:
            import_zip_bytes(handle, "huge.zip", filled_workspace.datasets_dir)
    with pytest.raises(DatasetError, match=r"over the upload limit of 200 MiB"):
        import_zip_bytes(upload, "huge.zip", filled_workspace.datasets_dir)

    assert upload.reads == 0
    assert tree_hash(filled_workspace.root) == before


def special_entry(name: str, file_type: int, data: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are the mode
    info.external_attr = (file_type | 0o777) << 16
    return info, data


ESCAPES = {
    "parent path": ("../../outside.txt", None),
    "parent path inside the dataset": ("csn-small/../../../outside.txt", None),
    "absolute path": ("/tmp/codeir-hardening-outside.txt", None),
    "symlink to a file outside": ("csn-small/corpus.jsonl", stat.S_IFLNK),
    "symlink folder": ("csn-small/qrels", stat.S_IFLNK),
    "workspace-relative climb": ("csn-small/qrels/../../../../indexes/evil", None),
}


@pytest.mark.parametrize("case", ESCAPES, ids=list(ESCAPES))
def test_zip_that_escapes_or_links_writes_nothing_anywhere(tmp_path: Path, source: Path, filled_workspace: Workspace,
                                                           case: str) -> None:
    entry, file_type = ESCAPES[case]
    archive = tmp_path / "uploads" / "evil.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in beir_entries(source, "csn-small/").items():
            if name != entry:
                out.writestr(name, data)
        if file_type is None:
            out.writestr(entry, b"pwned")
        else:
            out.writestr(*special_entry(entry, file_type, b"/etc/passwd"))
    before = tree_hash(tmp_path)

    with pytest.raises(UnsafeArchiveError):
        import_zip(archive, filled_workspace.datasets_dir, name="evil")
    with pytest.raises(UnsafeArchiveError):
        import_zip_bytes(archive.read_bytes(), "evil.zip", filled_workspace.datasets_dir, name="evil")

    assert tree_hash(tmp_path) == before
    assert not Path("/tmp/codeir-hardening-outside.txt").exists()


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A BEIR zip whose corpus.jsonl unpacks to 64 MiB of one repeated line, from well under 1 MiB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    line = b'{"_id": "d", "text": "' + b"a" * 1000 + b'"}\n'
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("queries.jsonl", b'{"_id": "q", "text": "a"}\n')
        archive.writestr("qrels/test.tsv", b"q\td\t1\n")
        with archive.open("corpus.jsonl", "w") as out:
            for _ in range(64 * 1024**2 // (len(line) * 1000)):
                out.write(line * 1000)
    return path


@pytest.mark.parametrize("limits", [{}, {"max_ratio": 1e9, "max_total_bytes": 16 * 1024**2}],
                         ids=["compression ratio", "unpacked total"])
def test_zip_bomb_is_refused_with_bounded_memory_and_disk(bomb: Path, filled_workspace: Workspace, limits: dict) -> None:
    archive = bomb
    assert archive.stat().st_size < 1024**2
    before = tree_hash(filled_workspace.root)

    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchiveError, match=r"expands more than 200 times \(a zip bomb\?\)|more than the limit of 16,777,216"):
            import_zip(archive, filled_workspace.datasets_dir, **limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 32 * 1024**2, f"unpacking held {peak / 1024**2:.0f} MiB in memory"
    assert tree_hash(filled_workspace.root) == before


def test_failed_import_over_an_existing_dataset_keeps_it_and_its_index(tmp_path: Path, source: Path,
                                                                      filled_workspace: Workspace) -> None:
    entries = beir_entries(source)
    entries["qrels/test.tsv"] = b"query-id\tcorpus-id\tscore\nghost\tnobody\t1\n"
    archive = tmp_path / "broken.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in entries.items():
            out.writestr(name, data)
    before = tree_hash(filled_workspace.root)

    with pytest.raises(DatasetError, match="no query has a relevant document"):
        import_zip(archive, filled_workspace.datasets_dir, name="csn-small", overwrite=True)

    assert tree_hash(filled_workspace.root) == before
    assert load_dataset(filled_workspace.datasets_dir / "csn-small").problems == ()
