"""The one folder where the workbench keeps everything it builds.

Layout (see docs/architecture.md)::

    <workspace>/
      datasets/<name>/                      imported, downloaded or built datasets (BEIR layout)
      indexes/lexical/<dataset>/<analyzer>-<corpus hash>/   Tantivy indexes
      indexes/corpus/<dataset>/             a corpus stored as a Lance dataset, read by row (large corpora)
      indexes/vectors/                      one LanceDB database: document and query embeddings
      runs/<run id>.parquet                 saved runs with their metadata
      models/<name>/                        fine-tuned models and ONNX exports
      profiles.toml                         the user's retriever profiles
      tags.json                             failure-case tags
      locks/                                build locks

Everything is written inside that folder: a link in it (``runs -> /elsewhere``) that resolves outside it is
refused when the workspace is opened and whenever a path of it is asked for, so nothing is written through one.
The root itself may be a link: it is resolved once, on opening.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from filelock import FileLock

from core.errors import OutputError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKSPACE_ENV = "CODEIR_WORKSPACE"
DATA_DIR_ENV = "CODEIR_DATA_DIR"
BUILTIN_DATASET = "stdlib-code2doc"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutsideWorkspaceError(OutputError, PermissionError):
    """A path of the workspace resolves outside it (a link leads elsewhere): nothing is read or written through it."""


def slug(text: str, limit: int = 80) -> str:
    """A file- and table-safe version of a name (model paths, dataset names)."""
    cleaned = _UNSAFE.sub("-", text).strip("-.") or "x"
    return cleaned[-limit:]


def replace_folder(staged: Path, target: Path) -> Path:
    """Rename a finished ``staged`` folder to ``target`` in one step; an old ``target`` steps aside first, is put
    back if the rename fails, and is deleted once the new one is in place (readers never see a half-written folder)."""
    if not target.exists():
        staged.rename(target)
        return target
    aside = Path(tempfile.mkdtemp(prefix=f".replaced-{target.name}-", dir=target.parent))
    old = aside / target.name
    target.rename(old)
    try:
        staged.rename(target)
    except OSError:
        old.rename(target)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return target


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (a file's own size when it is one)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def default_workspace_path() -> Path:
    return Path(os.environ.get(WORKSPACE_ENV) or PROJECT_ROOT / "workspace")


def default_data_dir() -> Path | None:
    """``$CODEIR_DATA_DIR``, else ``../shared/datasets`` beside the project when it exists."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    shared = PROJECT_ROOT.parent / "shared" / "datasets"
    return shared if shared.is_dir() else None


@dataclass(frozen=True)
class Workspace:
    """Paths into one workspace folder; creating one makes its folders."""

    root: Path
    data_dir: Path | None = None

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None) -> "Workspace":
        path = Path(root) if root else default_workspace_path()
        data = Path(data_dir) if data_dir else default_data_dir()
        workspace = cls(path.resolve(), data.resolve() if data else None)
        # every property checks its path first, so a link to elsewhere is refused before mkdir could create there
        for folder in (workspace.datasets_dir, workspace.lexical_dir, workspace.vectors_dir, workspace.runs_dir,
                       workspace.models_dir, workspace.locks_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return workspace

    @property
    def datasets_dir(self) -> Path:
        return self._own("datasets")

    @property
    def lexical_dir(self) -> Path:
        return self._own("indexes", "lexical")

    @property
    def corpus_dir(self) -> Path:
        return self._own("indexes", "corpus")

    @property
    def vectors_dir(self) -> Path:
        return self._own("indexes", "vectors")

    @property
    def runs_dir(self) -> Path:
        return self._own("runs")

    @property
    def models_dir(self) -> Path:
        return self._own("models")

    @property
    def locks_dir(self) -> Path:
        return self._own("locks")

    @property
    def profiles_file(self) -> Path:
        return self._own("profiles.toml")

    @property
    def tags_file(self) -> Path:
        return self._own("tags.json")

    def inside(self, path: str | os.PathLike) -> Path:
        """Resolve ``path`` (links followed) and refuse it unless it lies inside the workspace; writers check here."""
        resolved = Path(path).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise OutsideWorkspaceError(
                f"{path} is outside the workspace {self.root}" + (f" (it resolves to {resolved})" if resolved != Path(path) else "")
                + ": the workbench reads and writes only inside its workspace. Replace the link by a real folder or "
                f"file, or move the whole workspace (set {WORKSPACE_ENV}).")
        return resolved

    def _own(self, *parts: str) -> Path:
        """``root/parts``, refused (OutsideWorkspaceError) when a link makes it resolve outside the workspace."""
        path = self.root.joinpath(*parts)
        self.inside(path)
        return path

    @contextmanager
    def lock(self, name: str, timeout: float = 3600) -> Iterator[None]:
        """An inter-process lock, so two builders of the same index wait for each other."""
        with FileLock(str(self.locks_dir / f"{slug(name, 120)}.lock"), timeout=timeout):
            yield
