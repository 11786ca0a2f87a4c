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

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKSPACE_ENV = "CODEIR_WORKSPACE"
DATA_DIR_ENV = "CODEIR_DATA_DIR"
BUILTIN_DATASET = "stdlib-code2doc"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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
        for folder in (workspace.datasets_dir, workspace.lexical_dir, workspace.vectors_dir, workspace.runs_dir,
                       workspace.models_dir, workspace.locks_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return workspace

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def lexical_dir(self) -> Path:
        return self.root / "indexes" / "lexical"

    @property
    def corpus_dir(self) -> Path:
        return self.root / "indexes" / "corpus"

    @property
    def vectors_dir(self) -> Path:
        return self.root / "indexes" / "vectors"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def profiles_file(self) -> Path:
        return self.root / "profiles.toml"

    @property
    def tags_file(self) -> Path:
        return self.root / "tags.json"

    def inside(self, path: str | os.PathLike) -> Path:
        """Resolve ``path`` and refuse it unless it lies inside the workspace."""
        resolved = Path(path).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise PermissionError(f"{path} is outside the workspace {self.root}")
        return resolved

    @contextmanager
    def lock(self, name: str, timeout: float = 3600) -> Iterator[None]:
        """An inter-process lock, so two builders of the same index wait for each other."""
        with FileLock(str(self.locks_dir / f"{slug(name, 120)}.lock"), timeout=timeout):
            yield
