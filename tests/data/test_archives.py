"""Zip import/export: good archives load, hostile or broken ones are refused and change nothing on disk."""
from __future__ import annotations

import hashlib
import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from core.data.archives import export_zip, import_zip, import_zip_bytes
from core.data.datasets import Dataset, load_dataset, write_dataset
from core.errors import DatasetError, UnsafeArchiveError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "csn-python-code2doc"


@pytest.fixture(scope="module")
def csn_slice() -> Dataset:
    """20 judged queries of csn-python-code2doc, their positives and 30 other documents."""
    full = load_dataset(SHARED)
    queries = full.judged_queries[:20]
    positives = {doc_id for query in queries for doc_id in full.qrels.positives(query.id)}
    documents = tuple(d for d in full.documents if d.id in positives) + tuple(d for d in full.documents if d.id not in positives)[:30]
    return Dataset("csn-slice", documents, tuple(queries), full.subset([q.id for q in queries]).qrels)


@pytest.fixture
def source(tmp_path: Path, csn_slice: Dataset) -> Path:
    """A BEIR folder on disk, outside the workspace."""
    return write_dataset(csn_slice, tmp_path / "src" / "csn-slice")


@pytest.fixture
def datasets_dir(tmp_path: Path) -> Path:
    return tmp_path / "workspace" / "datasets"


def beir_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def zip_of(folder: Path, path: Path, prefix: str = "", extra: dict[str, bytes] | None = None) -> Path:
    return make_zip(path, {f"{prefix}{name}": data for name, data in beir_files(folder).items()} | (extra or {}))


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a hash of its bytes: the whole test's disk state."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_zip_with_files_at_the_top_level_imports_under_the_zip_name(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    archive = zip_of(source, tmp_path / "uploads" / "my-bench.zip")

    folder = import_zip(archive, datasets_dir)

    assert folder == datasets_dir / "my-bench"
    assert beir_files(folder) == beir_files(source)
    assert len(load_dataset(folder).judged_queries) == 20
    assert [p.name for p in datasets_dir.iterdir()] == ["my-bench"], "no staging folder is left behind"


def test_zip_with_one_inner_folder_imports_under_the_folder_name_and_skips_other_files(
        tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    extra = {"csn-slice/README.md": b"notes", "__MACOSX/csn-slice/._corpus.jsonl": b"junk",
             "csn-slice/qrels/.hidden.tsv": b"x", "csn-slice/tools/convert.py": b"print()"}
    archive = zip_of(source, tmp_path / "uploads" / "download (1).zip", prefix="csn-slice/", extra=extra)

    folder = import_zip(archive, datasets_dir)

    assert folder == datasets_dir / "csn-slice"
    assert sorted(beir_files(folder)) == ["corpus.jsonl", "meta.json", "qrels/test.tsv", "queries.jsonl"]


def test_upload_name_is_made_path_safe_and_an_explicit_name_wins(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    data = zip_of(source, tmp_path / "upload.zip").read_bytes()
    already_read = io.BytesIO(data)
    already_read.read()  # Streamlit reruns hand back an UploadedFile whose position is at its end

    from_stem = import_zip_bytes(already_read, "my data (1).zip", datasets_dir)
    explicit = import_zip_bytes(data, "whatever.zip", datasets_dir, name="chosen")

    assert (from_stem.name, explicit.name) == ("my-data-1", "chosen")
    assert beir_files(from_stem) == beir_files(explicit) == beir_files(source)
    assert sorted(p.name for p in datasets_dir.iterdir()) == ["chosen", "my-data-1"], "the upload's temp file is removed"


def special_entry(name: str, file_type: int, data: bytes = b"target") -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    info.external_attr = (file_type | 0o777) << 16
    return info, data


UNSAFE = {
    "parent folder": ("../evil.txt", None),
    "nested parent folder": ("csn-slice/qrels/../../../evil.txt", None),
    "absolute path": ("/tmp/codeir-evil.txt", None),
    "windows drive": ("C:\\evil.txt", None),
    "backslash parent": ("..\\evil.txt", None),
    "symlink": ("csn-slice/qrels/test.tsv", stat.S_IFLNK),
    "character device": ("csn-slice/dev-null", stat.S_IFCHR),
    "named pipe": ("csn-slice/pipe", stat.S_IFIFO),
}


@pytest.mark.parametrize("case", UNSAFE, ids=list(UNSAFE))
def test_unsafe_entry_refuses_the_whole_archive_and_writes_nothing(tmp_path: Path, source: Path, datasets_dir: Path,
                                                                   case: str) -> None:
    entry_name, file_type = UNSAFE[case]
    archive_path = tmp_path / "uploads" / "evil.zip"
    archive_path.parent.mkdir()
    with zipfile.ZipFile(archive_path, "w") as archive:
        for name, data in beir_files(source).items():
            if f"csn-slice/{name}" != entry_name:
                archive.writestr(f"csn-slice/{name}", data)
        if file_type is None:
            archive.writestr(zipfile.ZipInfo(entry_name), b"pwned")
        else:
            archive.writestr(*special_entry(entry_name, file_type, b"/etc/passwd"))
    datasets_dir.mkdir(parents=True)
    before = snapshot(tmp_path)

    with pytest.raises(UnsafeArchiveError) as caught:
        import_zip(archive_path, datasets_dir)

    assert repr(entry_name) in str(caught.value)
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/codeir-evil.txt").exists()


def zeros_zip(path: Path, size: int) -> Path:
    """A small archive whose corpus.jsonl unpacks to ``size`` zero bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("queries.jsonl", b'{"_id": "q1", "text": "a"}\n')
        archive.writestr("qrels/test.tsv", b"q1\td1\t1\n")
        with archive.open("corpus.jsonl", "w") as out:
            chunk = bytes(1024**2)
            for _ in range(size // len(chunk)):
                out.write(chunk)
    return path


def test_zip_bomb_over_the_byte_limit_is_refused(tmp_path: Path, datasets_dir: Path) -> None:
    archive = zeros_zip(tmp_path / "uploads" / "bomb.zip", 50 * 1024**2)
    assert archive.stat().st_size < 200 * 1024
    before = snapshot(tmp_path)

    with pytest.raises(UnsafeArchiveError, match="more than the limit of 10,485,760"):
        import_zip(archive, datasets_dir, max_total_bytes=10 * 1024**2, max_ratio=1e9)

    assert snapshot(tmp_path) == before


def test_zip_bomb_over_the_compression_ratio_is_refused(tmp_path: Path, datasets_dir: Path) -> None:
    archive = zeros_zip(tmp_path / "uploads" / "bomb.zip", 50 * 1024**2)

    with pytest.raises(UnsafeArchiveError, match="'corpus.jsonl' expands more than 200 times"):
        import_zip(archive, datasets_dir)

    assert not datasets_dir.exists(), "declared sizes are checked before anything is created"


def test_zip_whose_header_understates_sizes_is_refused(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    archive = zip_of(source, tmp_path / "uploads" / "liar.zip")
    raw = bytearray(archive.read_bytes())
    for signature, size_offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # central and local headers
        at = raw.find(signature)
        while at != -1:
            struct.pack_into("<I", raw, at + size_offset, 10)  # every member claims to unpack to 10 bytes
            at = raw.find(signature, at + 4)
    archive.write_bytes(bytes(raw))

    with pytest.raises(DatasetError, match="damaged"):
        import_zip(archive, datasets_dir)

    assert list(datasets_dir.iterdir()) == []


def test_file_that_is_not_a_zip_is_refused_clearly(tmp_path: Path, datasets_dir: Path) -> None:
    fake = tmp_path / "uploads" / "dataset.zip"
    fake.parent.mkdir()
    fake.write_text('{"_id": "d1", "text": "I am a jsonl file"}\n')

    with pytest.raises(DatasetError, match="dataset.zip is not a readable .zip archive"):
        import_zip(fake, datasets_dir)
    assert not datasets_dir.exists()


def test_truncated_zip_upload_is_refused_and_its_temp_file_removed(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    data = zip_of(source, tmp_path / "uploads" / "whole.zip").read_bytes()

    with pytest.raises(DatasetError, match="cut.zip is not a readable .zip archive"):
        import_zip_bytes(data[: len(data) // 2], "cut.zip", datasets_dir)
    assert list(datasets_dir.iterdir()) == []


def test_truncated_corpus_line_is_imported_with_the_bad_row_listed(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    files = beir_files(source)
    lines = files["corpus.jsonl"].splitlines(keepends=True)
    lines[-1] = lines[-1][:25] + b"\n"  # cut mid-JSON, as an interrupted copy leaves it
    files["corpus.jsonl"] = b"".join(lines)
    archive = make_zip(tmp_path / "uploads" / "cut.zip", files)

    folder = import_zip(archive, datasets_dir)
    loaded = load_dataset(folder)

    assert [(p.file, p.line) for p in loaded.problems] == [("corpus.jsonl", len(lines))]
    assert "bad JSON" in loaded.problems[0].message
    assert len(loaded.documents) == len(lines) - 1


def test_failed_overwrite_leaves_the_existing_dataset_byte_identical(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    existing = import_zip(zip_of(source, tmp_path / "uploads" / "good.zip"), datasets_dir, name="bench")
    files = beir_files(source)
    files["qrels/test.tsv"] = b"query-id\tcorpus-id\tscore\nq-unknown\td-unknown\t1\n"
    broken = make_zip(tmp_path / "uploads" / "broken.zip", files)
    before = snapshot(tmp_path)

    with pytest.raises(DatasetError, match="no query has a relevant document"):
        import_zip(broken, datasets_dir, name="bench", overwrite=True)

    assert snapshot(tmp_path) == before
    assert beir_files(existing) == beir_files(source)


def test_existing_dataset_is_replaced_only_with_overwrite(tmp_path: Path, source: Path, csn_slice: Dataset,
                                                         datasets_dir: Path) -> None:
    import_zip(zip_of(source, tmp_path / "uploads" / "bench.zip"), datasets_dir)
    smaller = write_dataset(csn_slice.subset([q.id for q in csn_slice.queries[:5]]), tmp_path / "src2" / "bench")
    newer = zip_of(smaller, tmp_path / "uploads" / "newer" / "bench.zip")

    with pytest.raises(DatasetError, match="'bench' already exists"):
        import_zip(newer, datasets_dir)
    assert beir_files(datasets_dir / "bench") == beir_files(source)

    import_zip(newer, datasets_dir, overwrite=True)
    assert beir_files(datasets_dir / "bench") == beir_files(smaller)
    assert [p.name for p in datasets_dir.iterdir()] == ["bench"], "the replaced copy is removed"


def test_zip_without_a_beir_dataset_says_what_it_needs(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    deep = zip_of(source, tmp_path / "uploads" / "deep.zip", prefix="a/b/")
    no_qrels = make_zip(tmp_path / "uploads" / "no-qrels.zip", {k: v for k, v in beir_files(source).items() if "qrels" not in k})
    two = zip_of(source, tmp_path / "uploads" / "two.zip", prefix="one/",
                 extra={f"two/{k}": v for k, v in beir_files(source).items()})

    with pytest.raises(DatasetError, match="holds no BEIR dataset: expected corpus.jsonl, queries.jsonl"):
        import_zip(deep, datasets_dir)
    with pytest.raises(DatasetError, match=r"has no qrels: expected qrels/<split>.tsv"):
        import_zip(no_qrels, datasets_dir)
    with pytest.raises(DatasetError, match=r"several datasets \(one/, two/\); upload one dataset per zip"):
        import_zip(two, datasets_dir)
    assert not datasets_dir.exists() or list(datasets_dir.iterdir()) == []


def test_archive_with_too_many_entries_is_refused(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    archive = zip_of(source, tmp_path / "uploads" / "many.zip", extra={f"junk/{i}.txt": b"" for i in range(20)})

    with pytest.raises(UnsafeArchiveError, match="holds 24 entries, more than the limit of 10"):
        import_zip(archive, datasets_dir, max_files=10)


def test_name_that_is_not_path_safe_is_refused(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    archive = zip_of(source, tmp_path / "uploads" / "ok.zip")

    with pytest.raises(DatasetError, match="is not allowed"):
        import_zip(archive, datasets_dir, name="../outside")
    assert not (tmp_path / "workspace" / "outside").exists()


class OneWayStream:
    """An upload that can only be read forward, so its size is unknown until read."""

    def __init__(self, data: bytes):
        self._buffer = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._buffer.read(size)


@pytest.mark.parametrize("kind", ["bytes", "seekable file", "one-way stream"])
def test_upload_over_the_cap_is_refused_before_anything_is_written(tmp_path: Path, datasets_dir: Path, kind: str) -> None:
    data = bytes(3 * 1024**2)
    upload = {"bytes": data, "seekable file": io.BytesIO(data), "one-way stream": OneWayStream(data)}[kind]
    before = snapshot(tmp_path)

    with pytest.raises(DatasetError, match=r"big.zip is (at least )?[0-9.]+ MiB, over the upload limit of 2 MiB"):
        import_zip_bytes(upload, "big.zip", datasets_dir, max_upload_bytes=2 * 1024**2)

    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("workspace")} == before
    assert not datasets_dir.exists() or list(datasets_dir.iterdir()) == []


def test_exported_zip_imports_back_byte_identical(tmp_path: Path, source: Path, datasets_dir: Path) -> None:
    out = export_zip(source, tmp_path / "downloads" / "csn-slice.zip")

    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
    folder = import_zip(out, datasets_dir)

    assert names == ["csn-slice/corpus.jsonl", "csn-slice/meta.json", "csn-slice/qrels/test.tsv", "csn-slice/queries.jsonl"]
    assert folder.name == "csn-slice" and beir_files(folder) == beir_files(source)
    assert sorted(p.name for p in out.parent.iterdir()) == ["csn-slice.zip"]


def test_exporting_a_folder_that_is_not_a_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(DatasetError, match="is not a BEIR dataset folder"):
        export_zip(tmp_path / "empty", tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()
