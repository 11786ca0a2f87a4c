"""Move datasets in and out of the workspace as .zip archives, refusing anything unsafe.

An uploaded zip is untrusted: every entry is checked (no absolute paths, ``..``, drive letters,
links or device files), unpacking is bounded against zip bombs, and only the BEIR files are
extracted, into a temp folder that must load as a dataset before it is renamed into place.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.data.datasets import (CORPUS_FILE, QRELS_DIR, QUERIES_FILE, check_dataset, is_beir_folder, load_json, read_at_most,
                                validate_name)
from core.errors import DatasetError, UnsafeArchiveError
from core.workspace import replace_folder, slug

META_FILE = "meta.json"
DEFAULT_MAX_TOTAL_BYTES = 2 * 1024**3
DEFAULT_MAX_FILES = 10_000
DEFAULT_MAX_RATIO = 200.0
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024**2
# Small files of repeated text compress far beyond any sane ratio: a member is held to max_ratio once it
# passes this size, and all members together once their sum does (so many small members cannot add up).
RATIO_FLOOR_BYTES = 1024**2
MAX_QRELS_FILES = 64  # splits kept from one archive; real BEIR sets have one to three
MAX_META_BYTES = 1024**2
_CHUNK_BYTES = 1024**2
_DRIVE = re.compile(r"^[A-Za-z]:")
_SPECIAL_TYPES = {stat.S_IFLNK: "a symbolic link", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
                  stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket"}
_JUNK_PREFIXES = ("__MACOSX/",)
_EOCD_SIGNATURE, _EOCD_SIZE = b"PK\x05\x06", 22
_ZIP64_LOCATOR_SIGNATURE, _ZIP64_LOCATOR_SIZE = b"PK\x06\x07", 20
_ZIP64_EOCD_SIGNATURE, _ZIP64_EOCD_SIZE = b"PK\x06\x06", 56
_CENTRAL_SIGNATURE, _CENTRAL_HEADER_SIZE = b"PK\x01\x02", 46
_RENAME_HINT = "--name NAME on the command line, the Name box on the Datasets page"


@dataclass(frozen=True)
class UnpackLimits:
    """How much an archive may unpack to: total bytes, entry count, per-member compression ratio."""

    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_files: int = DEFAULT_MAX_FILES
    max_ratio: float = DEFAULT_MAX_RATIO


@dataclass(frozen=True)
class _Member:
    """One zip entry to extract and the path (relative to the dataset folder) it becomes."""

    info: zipfile.ZipInfo
    target: str


def import_zip(zip_path: str | os.PathLike, datasets_dir: str | os.PathLike, name: str | None = None,
               max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES, max_files: int = DEFAULT_MAX_FILES,
               max_ratio: float = DEFAULT_MAX_RATIO, overwrite: bool = False,
               reserved: Mapping[str, str] | None = None) -> Path:
    """Unpack a BEIR dataset zip into ``datasets_dir/<name>`` and return that folder.

    The BEIR root may sit at the top of the zip or one folder down (``scifact/corpus.jsonl``); the
    name defaults to that folder, else the zip's stem. Nothing in ``datasets_dir`` changes unless
    the new dataset loads; an existing dataset of that name is replaced only with ``overwrite``.
    ``reserved`` maps names other sources hold (the data directory, the built-in set) to where they
    are: those names are refused even with ``overwrite``, since the catalog would keep opening the other one.
    """
    zip_path = Path(zip_path)
    limits = UnpackLimits(max_total_bytes, max_files, max_ratio)
    return _import(zip_path, zip_path.name, Path(datasets_dir), name, limits, overwrite, reserved or {})


def import_zip_bytes(data: bytes | BinaryIO, filename: str, datasets_dir: str | os.PathLike, name: str | None = None,
                     max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
                     max_files: int = DEFAULT_MAX_FILES, max_ratio: float = DEFAULT_MAX_RATIO,
                     overwrite: bool = False, reserved: Mapping[str, str] | None = None) -> Path:
    """Import an uploaded zip (bytes or a file object such as Streamlit's UploadedFile).

    Uploads over ``max_upload_bytes`` are refused before anything is written.
    """
    datasets_dir = Path(datasets_dir)
    declared = _upload_size(data)
    if declared is not None and declared > max_upload_bytes:
        raise DatasetError(_too_big_message(filename, declared, max_upload_bytes))
    datasets_dir.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=".upload-", suffix=".zip", dir=datasets_dir)
    temp_path = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            _copy_upload(data, out, filename, max_upload_bytes)
        limits = UnpackLimits(max_total_bytes, max_files, max_ratio)
        return _import(temp_path, filename, datasets_dir, name, limits, overwrite, reserved or {})
    finally:
        temp_path.unlink(missing_ok=True)


def export_zip(dataset_folder: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write a dataset folder as a zip (files under ``<dataset name>/``) that ``import_zip`` reads back."""
    folder = Path(dataset_folder)
    out_path = Path(out_path)
    if not is_beir_folder(folder):
        raise DatasetError(f"{folder} is not a BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/*.tsv); nothing to export.")
    files = [folder / CORPUS_FILE, folder / QUERIES_FILE, *sorted((folder / QRELS_DIR).glob("*.tsv"))]
    if (folder / META_FILE).is_file():
        files.append(folder / META_FILE)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(temp_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
        temp_path.replace(out_path)
    finally:
        temp_path.unlink(missing_ok=True)
    return out_path


def _import(zip_path: Path, archive_name: str, datasets_dir: Path, name: str | None, limits: UnpackLimits,
            overwrite: bool, reserved: Mapping[str, str]) -> Path:
    """Import ``zip_path``; messages call it ``archive_name``, the name the user knows (not a temp file's)."""
    entries = _count_entries(zip_path)
    if entries > limits.max_files:  # before zipfile parses the directory: it holds every entry in memory
        raise UnsafeArchiveError(f"{archive_name} holds {entries} entries, more than the limit of {limits.max_files}; "
                                 "zip only the dataset folder.")
    archive = _open_zip(zip_path, archive_name)
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_files:
            raise UnsafeArchiveError(f"{archive_name} holds {len(infos)} entries, more than the limit of {limits.max_files}; "
                                     "zip only the dataset folder.")
        for info in infos:
            _check_entry(info)
        root, members = _beir_members(infos, archive_name)
        _check_declared_sizes(members, limits)
        dataset_name = validate_name(name) if name else _default_name(root, Path(archive_name).stem)
        target = datasets_dir / dataset_name
        if dataset_name in reserved:
            raise DatasetError(f"A dataset named {dataset_name!r} already exists ({reserved[dataset_name]}); "
                               f"choose another name for the import ({_RENAME_HINT}).")
        if target.exists() and not overwrite:
            raise DatasetError(f"A dataset named {dataset_name!r} already exists in the workspace ({target}); choose "
                               f"another name ({_RENAME_HINT}) or replace it (--overwrite on the command line).")
        datasets_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".import-{dataset_name}-", dir=datasets_dir))
        try:
            _extract(archive, members, staging, limits)
            _check_meta(staging)
            check_dataset(staging, name=dataset_name)  # refuses a broken dataset before it replaces anything (streaming)
            return _move_into_place(staging, target, overwrite)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _count_entries(zip_path: Path) -> int:
    """Entries in the zip's central directory, counted by walking it on disk (in constant memory).

    zipfile.ZipFile builds an object per entry before anyone can look at the count (a 25 MB zip of
    300,000 empty entries took 162 MiB and 6 s), and it walks the directory by its size, not by the count
    the end record declares, so this walks it the same way. Returns 0 when the file is no zip it can
    read; zipfile then says why.
    """
    try:
        with zip_path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            tail_size = min(size, _EOCD_SIZE + 0xFFFF)
            handle.seek(size - tail_size)
            tail = handle.read(tail_size)
            at = tail.rfind(_EOCD_SIGNATURE)
            if at < 0 or len(tail) - at < _EOCD_SIZE:
                return 0
            end = size - tail_size + at
            directory_size = struct.unpack_from("<L", tail, at + 12)[0]
            if at >= _ZIP64_LOCATOR_SIZE and tail[at - _ZIP64_LOCATOR_SIZE:at - _ZIP64_LOCATOR_SIZE + 4] == _ZIP64_LOCATOR_SIGNATURE:
                end -= _ZIP64_LOCATOR_SIZE + _ZIP64_EOCD_SIZE  # zipfile reads the zip64 record just before the locator
                if end < 0:
                    return 0
                handle.seek(end)
                record = handle.read(_ZIP64_EOCD_SIZE)
                if len(record) < _ZIP64_EOCD_SIZE or record[:4] != _ZIP64_EOCD_SIGNATURE:
                    return 0
                directory_size = struct.unpack_from("<Q", record, 40)[0]
            position = end - directory_size
            if position < 0:
                return 0
            handle.seek(position)
            count = 0
            while position < end:
                header = handle.read(_CENTRAL_HEADER_SIZE)
                if len(header) < _CENTRAL_HEADER_SIZE or header[:4] != _CENTRAL_SIGNATURE:
                    break
                name_size, extra_size, comment_size = struct.unpack_from("<3H", header, 28)
                position = handle.seek(name_size + extra_size + comment_size, os.SEEK_CUR)
                count += 1
            return count
    except OSError:
        return 0


def _open_zip(zip_path: Path, archive_name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(zip_path)
    except FileNotFoundError:
        raise DatasetError(f"Archive {str(zip_path)!r} does not exist.") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{archive_name} is not a readable .zip archive ({exc}); "
                           "zip the dataset folder (corpus.jsonl, queries.jsonl, qrels/) and upload it again.") from None


def _check_entry(info: zipfile.ZipInfo) -> None:
    """Refuse an entry that could write outside its folder or is not a plain file or folder."""
    name = info.filename
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")):
        raise UnsafeArchiveError(f"Archive entry {name!r} has an absolute path; refusing the whole archive.")
    if _DRIVE.match(name):
        raise UnsafeArchiveError(f"Archive entry {name!r} names a drive; refusing the whole archive.")
    if ".." in parts:
        raise UnsafeArchiveError(f"Archive entry {name!r} climbs out of its folder with '..'; refusing the whole archive.")
    kind = _SPECIAL_TYPES.get(stat.S_IFMT(info.external_attr >> 16))
    if kind:
        raise UnsafeArchiveError(f"Archive entry {name!r} is {kind}; only plain files are accepted, refusing the whole archive.")
    if info.flag_bits & 0x1:
        raise DatasetError(f"Archive entry {name!r} is encrypted; zip the dataset without a password.")


def _beir_members(infos: Sequence[zipfile.ZipInfo], archive_name: str) -> tuple[str, list[_Member]]:
    """Find the one BEIR root (top level or one folder down) and the entries that belong to it.

    Two file entries of one name (``a/corpus.jsonl`` twice, or as ``a\\corpus.jsonl`` or ``a/./corpus.jsonl``) refuse
    the archive: unzip tools disagree on which one wins, so the dataset imported would depend on the tool.
    """
    files: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.is_dir() or info.filename.startswith(_JUNK_PREFIXES):
            continue
        path = "/".join(part for part in re.split(r"[\\/]", info.filename) if part not in ("", "."))
        if path in files:
            raise UnsafeArchiveError(f"{archive_name} holds {path!r} twice ({files[path].filename!r} and "
                                     f"{info.filename!r}); zip the dataset folder again.")
        files[path] = info
    roots = sorted(path[: -len(CORPUS_FILE)] for path in files
                   if PurePosixPath(path).name == CORPUS_FILE and path.count("/") <= 1)
    roots = [root for root in roots if f"{root}{QUERIES_FILE}" in files]
    if not roots:
        raise DatasetError(f"{archive_name} holds no BEIR dataset: expected corpus.jsonl, queries.jsonl and "
                           "qrels/<split>.tsv at the top of the zip or inside one folder.")
    if len(roots) > 1:
        shown = ", ".join(root or "(top level)" for root in roots)
        raise DatasetError(f"{archive_name} holds several datasets ({shown}); upload one dataset per zip.")
    root = roots[0]
    members = [_Member(files[f"{root}{CORPUS_FILE}"], CORPUS_FILE), _Member(files[f"{root}{QUERIES_FILE}"], QUERIES_FILE)]
    for path in sorted(files):
        relative = path[len(root):]
        if path.startswith(root) and re.fullmatch(rf"{QRELS_DIR}/[^/.][^/]*\.tsv", relative):
            members.append(_Member(files[path], relative))
    if len(members) - 2 > MAX_QRELS_FILES:
        raise UnsafeArchiveError(f"{archive_name} holds {len(members) - 2} qrels files, more than the limit of "
                                 f"{MAX_QRELS_FILES}; keep only the splits you evaluate on.")
    if len(members) == 2:
        raise DatasetError(f"{archive_name} has no qrels: expected {root}{QRELS_DIR}/<split>.tsv (for example {QRELS_DIR}/test.tsv).")
    if f"{root}{META_FILE}" in files:
        members.append(_Member(files[f"{root}{META_FILE}"], META_FILE))
    return root, members


def _check_declared_sizes(members: Sequence[_Member], limits: UnpackLimits) -> None:
    declared = sum(member.info.file_size for member in members)
    if declared > limits.max_total_bytes:
        raise UnsafeArchiveError(f"The archive would unpack to {declared:,} bytes, more than the limit of "
                                 f"{limits.max_total_bytes:,}; refusing it.")
    for member in members:
        _check_ratio(member.info, member.info.file_size, limits)
    _check_total_ratio(declared, sum(member.info.compress_size for member in members), limits)


def _check_ratio(info: zipfile.ZipInfo, unpacked: int, limits: UnpackLimits) -> None:
    if unpacked > RATIO_FLOOR_BYTES and unpacked > limits.max_ratio * max(info.compress_size, 1):
        raise UnsafeArchiveError(f"Archive entry {info.filename!r} expands more than {limits.max_ratio:g} times "
                                 "(a zip bomb?); refusing the archive.")


def _check_total_ratio(unpacked: int, packed: int, limits: UnpackLimits) -> None:
    """All members together: many small members each under the floor must not add up to a bomb."""
    if unpacked > RATIO_FLOOR_BYTES and unpacked > limits.max_ratio * max(packed, 1):
        raise UnsafeArchiveError(f"The archive's members together expand more than {limits.max_ratio:g} times "
                                 "(a zip bomb?); refusing it.")


def _extract(archive: zipfile.ZipFile, members: Sequence[_Member], staging: Path, limits: UnpackLimits) -> None:
    """Copy each member in chunks, counting real bytes: declared sizes can lie."""
    total = 0
    packed = 0  # compressed bytes of the members opened so far: zipfile reads no more than that from each
    (staging / QRELS_DIR).mkdir()
    for member in members:
        written = 0
        packed += member.info.compress_size
        try:
            with archive.open(member.info) as source, (staging / member.target).open("xb") as out:
                while chunk := source.read(_CHUNK_BYTES):
                    written += len(chunk)
                    total += len(chunk)
                    if total > limits.max_total_bytes:
                        raise UnsafeArchiveError(f"The archive unpacks to more than {limits.max_total_bytes:,} bytes "
                                                 f"(stopped in {member.info.filename!r}); refusing it.")
                    _check_ratio(member.info, written, limits)
                    _check_total_ratio(total, packed, limits)
                    out.write(chunk)
        except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
            raise DatasetError(f"Archive entry {member.info.filename!r} is damaged or uses an unsupported compression "
                               f"({exc}); zip the dataset folder again.") from None


def _check_meta(staging: Path) -> None:
    meta = staging / META_FILE
    if not meta.exists():
        return
    with meta.open("rb") as handle:
        data, cut = read_at_most(handle, MAX_META_BYTES)
    if cut:
        raise DatasetError(f"meta.json in the archive is larger than {MAX_META_BYTES // 1024**2} MiB; "
                           "a dataset's description is a few lines: fix it or leave it out of the zip.")
    try:
        parsed = load_json(data)  # a byte-order mark is dropped; nesting is bounded before parsing
    except ValueError as exc:
        raise DatasetError(f"meta.json in the archive is not valid JSON ({exc}); fix it or leave it out of the zip.") from None
    if not isinstance(parsed, dict):
        raise DatasetError("meta.json in the archive must hold a JSON object; fix it or leave it out of the zip.")


def _default_name(root: str, fallback_name: str) -> str:
    """The inner folder's name, else the zip's stem, made path-safe (browsers add ' (1)' to names)."""
    return validate_name(slug(root.rstrip("/") or fallback_name, 100))


def _move_into_place(staging: Path, target: Path, overwrite: bool) -> Path:
    """Rename the staged folder to ``target``; an old dataset is renamed aside and restored on failure."""
    if target.exists() and not overwrite:
        raise DatasetError(f"A dataset named {target.name!r} already exists; choose another name or allow overwriting it.")
    return replace_folder(staging, target)


def _upload_size(data: bytes | BinaryIO) -> int | None:
    """The whole upload's size when it is known without reading it (bytes, UploadedFile.size, seekable files).

    Seekable uploads are rewound first: Streamlit hands back the same UploadedFile, already read, on a rerun.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    try:
        data.seek(0)
    except (AttributeError, OSError, ValueError):
        return None  # a one-way stream: its size shows while copying
    size = getattr(data, "size", None)
    if isinstance(size, int):
        return size
    end = data.seek(0, io.SEEK_END)
    data.seek(0)
    return end


def _copy_upload(data: bytes | BinaryIO, out: BinaryIO, filename: str, max_upload_bytes: int) -> None:
    """Write the upload, stopping at the cap for streams whose size was not known up front."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        out.write(data)
        return
    copied = 0
    while chunk := data.read(_CHUNK_BYTES):
        copied += len(chunk)
        if copied > max_upload_bytes:
            raise DatasetError(_too_big_message(filename, copied, max_upload_bytes, at_least=True))
        out.write(chunk)


def _too_big_message(filename: str, size: int, cap: int, at_least: bool = False) -> str:
    amount = f"at least {size / 1024**2:.1f}" if at_least else f"{size / 1024**2:.1f}"
    return (f"{filename} is {amount} MiB, over the upload limit of {cap / 1024**2:.0f} MiB; "
            "copy the dataset folder into the data directory instead, or raise the limit.")
