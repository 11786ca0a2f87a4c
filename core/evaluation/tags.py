"""Failure tags: a person's verdict on why a query failed, kept in the workspace's ``tags.json``.

A tag is keyed by (dataset, profile, query id) and holds a reason (one of ``REASONS`` or the user's
own words), a free-text note and when it was saved. Writes take ``workspace.lock("tags")``, re-read
the file, and replace it atomically, so two sessions tagging at once keep each other's tags. A
damaged file is never overwritten silently: reading reports what could not be read, and the first
write after that copies the damaged file to ``tags.json.<hash>.bak`` before replacing it.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from filelock import Timeout

from core.errors import WorkbenchError
from core.workspace import Workspace

REASONS = ("generic summary", "identifier overlap", "near-duplicate", "wrong qrel", "other")
MAX_REASON_CHARS = 80
MAX_NOTE_CHARS = 4000
LOCK_SECONDS = 30
_FIELDS = ("dataset", "profile", "query_id", "reason", "note", "time")


class TagError(WorkbenchError):
    """A tag cannot be saved as given, or the tags file cannot be written."""


@dataclass(frozen=True)
class Tag:
    """Why one query failed under one profile on one dataset, in a person's words."""

    dataset: str
    profile: str
    query_id: str
    reason: str
    note: str = ""
    time: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.profile, self.query_id)


@dataclass(frozen=True)
class TagBook:
    """The tags read from ``tags.json``, and what could not be read (empty when the file is sound)."""

    tags: tuple[Tag, ...]
    problems: tuple[str, ...] = ()
    backup: Path | None = None  # where the damaged file was copied, once a write needed to replace it

    def find(self, dataset: str, profile: str, query_id: str) -> Tag | None:
        return next((tag for tag in self.tags if tag.key == (dataset, profile, query_id)), None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _parse(raw: bytes, name: str) -> tuple[list[Tag], list[str]]:
    """Tags in the file's bytes, and one problem line per thing that could not be read."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [], [f"{name} is not valid JSON ({exc}); none of its tags could be read."]
    entries = data.get("tags") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [f"{name} has no list under \"tags\"; none of its tags could be read."]
    tags, problems = [], []
    for number, entry in enumerate(entries, start=1):
        required = [entry.get(f) for f in _FIELDS[:4]] if isinstance(entry, dict) else [None]
        if not all(isinstance(value, str) and value for value in required):
            problems.append(f"{name}: tag #{number} lacks a dataset, profile, query_id or reason and was skipped.")
            continue
        tags.append(Tag(*(str(entry.get(f) or "") for f in _FIELDS)))
    return tags, problems


def load_tags(workspace: Workspace) -> TagBook:
    """Every tag in the workspace (none when there is no file yet); damage is reported in ``problems``."""
    path = workspace.tags_file
    if not path.is_file():
        return TagBook(())
    tags, problems = _parse(path.read_bytes(), path.name)
    return TagBook(tuple({tag.key: tag for tag in tags}.values()), tuple(problems))


def list_tags(workspace: Workspace, dataset: str | None = None, profile: str | None = None) -> list[Tag]:
    """Tags of one dataset (and profile), in the order they were first saved."""
    return [tag for tag in load_tags(workspace).tags
            if (dataset is None or tag.dataset == dataset) and (profile is None or tag.profile == profile)]


def get_tag(workspace: Workspace, dataset: str, profile: str, query_id: str) -> Tag | None:
    return load_tags(workspace).find(dataset, profile, query_id)


def _backup(path: Path, raw: bytes) -> Path:
    """Copy a damaged tags file beside it (named by content, so repeated writes keep one copy)."""
    backup = path.with_name(f"{path.name}.{hashlib.sha256(raw).hexdigest()[:12]}.bak")
    if not backup.exists():
        _write_atomically(backup, raw)
    return backup


def _write_atomically(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with tmp.open("wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


TagsByKey = dict[tuple[str, str, str], Tag]


def _rewrite(workspace: Workspace, change: Callable[[TagsByKey], TagsByKey]) -> TagBook:
    """Under the tags lock: read the file, apply ``change`` to its tags, write it back atomically."""
    path = workspace.tags_file
    try:
        with workspace.lock("tags", timeout=LOCK_SECONDS):
            raw = path.read_bytes() if path.is_file() else b""
            tags, problems = _parse(raw, path.name) if raw else ([], [])
            backup = _backup(path, raw) if problems else None
            by_key = change({tag.key: tag for tag in tags})
            document = {"version": 1, "tags": [asdict(tag) for tag in by_key.values()]}
            _write_atomically(path, (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    except Timeout:
        raise TagError("Another session is saving tags right now; try again in a moment.") from None
    except OSError as exc:
        raise TagError(f"Could not write {path}: {exc.strerror or exc}. Check that the workspace is writable.") from None
    if backup is not None:
        problems.append(f"The damaged file was kept as {backup.name}; copy any tag you still need from it.")
    return TagBook(tuple(by_key.values()), tuple(problems), backup)


def _clean(text: str, what: str, limit: int, one_line: bool) -> str:
    if not isinstance(text, str):
        raise TagError(f"The {what} must be text.")
    text = text.replace("\x00", "").strip()
    if one_line:
        text = " ".join(text.split())
    if len(text) > limit:
        raise TagError(f"The {what} is {len(text)} characters long; keep it under {limit}.")
    return text


def save_tag(workspace: Workspace, dataset: str, profile: str, query_id: str, reason: str, note: str = "") -> TagBook:
    """Tag one failure (replacing its earlier tag); returns the tags as written, with any problems met."""
    key = tuple(_clean(value, what, 200, True) for value, what in
                ((dataset, "dataset"), (profile, "profile"), (query_id, "query id")))
    if not all(key):
        raise TagError("A tag needs a dataset, a profile and a query id.")
    reason = _clean(reason, "reason", MAX_REASON_CHARS, True)
    if not reason:
        raise TagError(f"Pick a reason ({', '.join(REASONS)}) or type your own.")
    tag = Tag(*key, reason, _clean(note, "note", MAX_NOTE_CHARS, False), _now())

    def put(by_key: TagsByKey) -> TagsByKey:
        by_key[tag.key] = tag
        return by_key

    return _rewrite(workspace, put)


def remove_tag(workspace: Workspace, dataset: str, profile: str, query_id: str) -> TagBook:
    """Delete one tag (nothing happens when it does not exist); returns the tags as written."""
    def drop(by_key: TagsByKey) -> TagsByKey:
        by_key.pop((dataset, profile, query_id), None)
        return by_key

    return _rewrite(workspace, drop)


def tags_frame(tags: Sequence[Tag]) -> pd.DataFrame:
    """Tags as a table (one row per tag), ready for st.dataframe or CSV download."""
    return pd.DataFrame([asdict(tag) for tag in tags], columns=list(_FIELDS))
