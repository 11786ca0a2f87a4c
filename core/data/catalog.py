"""Which datasets a user can open: the data directory, the workspace, and the built-in stdlib set.

A dataset whose corpus holds at least ``STORED_MIN_DOCS`` documents opens from its corpus store (Lance, read by
row; core.data.corpus_store) instead of being read whole: every page and command works on it the same way,
holding its queries, judgments and document ids, not its documents. ``$CODEIR_STORED_MIN_DOCS`` moves the
threshold (a test or a small machine lowers it; 0 stores every corpus).
"""
from __future__ import annotations

import os
from pathlib import Path

from core.data.datasets import CORPUS_FILE, Dataset, DatasetInfo, discover_datasets, load_dataset, validate_name
from core.errors import DatasetError
from core.progress import ItemProgress
from core.workspace import BUILTIN_DATASET, Workspace

PREFERRED_DEFAULTS = ("csn-python-code2doc", "cosqa")
STORED_MIN_DOCS = 200_000
STORED_MIN_DOCS_ENV = "CODEIR_STORED_MIN_DOCS"


def list_datasets(workspace: Workspace) -> list[DatasetInfo]:
    """Datasets on disk (data dir first, then the workspace), plus the built-in one even before it is built."""
    roots = [(workspace.data_dir, "data-dir")] if workspace.data_dir else []
    found = discover_datasets(*roots, (workspace.datasets_dir, "workspace"))
    if not any(info.name == BUILTIN_DATASET for info in found):
        found.append(DatasetInfo(BUILTIN_DATASET, workspace.datasets_dir / BUILTIN_DATASET, "builtin"))
    return found


def names_held_elsewhere(workspace: Workspace) -> dict[str, str]:
    """Names an import into the workspace may not take, each with where it is held: the catalog would keep opening that one."""
    held = {info.name: f"in the data directory, {info.path}" for info in list_datasets(workspace) if info.origin == "data-dir"}
    held[BUILTIN_DATASET] = "the built-in standard-library benchmark"
    return held


def default_dataset(workspace: Workspace) -> str:
    """A bundled benchmark when one is present, else the built-in stdlib set."""
    names = [info.name for info in list_datasets(workspace)]
    for name in PREFERRED_DEFAULTS:
        if name in names:
            return name
    real = [n for n in names if n != BUILTIN_DATASET]
    return real[0] if real else BUILTIN_DATASET


def dataset_path(workspace: Workspace, name: str) -> Path:
    for info in list_datasets(workspace):
        if info.name == name:
            if info.origin == "builtin" and not (info.path / "corpus.jsonl").is_file():
                from core.data.stdlib_benchmark import ensure_stdlib_benchmark

                return ensure_stdlib_benchmark(workspace.datasets_dir)
            return info.path
    for root in (workspace.data_dir, workspace.datasets_dir):
        folder = root / name if root and _is_valid_name(name) else None
        if folder is not None and folder.is_dir():
            load_dataset(folder, name=name)  # says which BEIR file is missing
    known = ", ".join(i.name for i in list_datasets(workspace))
    raise DatasetError(f"No dataset named {name!r}. Known: {known}. Import one with `python -m core import-zip FILE`.")


def _is_valid_name(name: str) -> bool:
    try:
        validate_name(name)
    except DatasetError:
        return False
    return True


def stored_min_docs() -> int:
    """The corpus size from which a dataset opens from its store: ``$CODEIR_STORED_MIN_DOCS``, else STORED_MIN_DOCS."""
    value = os.environ.get(STORED_MIN_DOCS_ENV, "").strip()
    if not value:
        return STORED_MIN_DOCS
    if not value.isdigit():
        raise DatasetError(f"${STORED_MIN_DOCS_ENV} must be a whole number of documents (0 or more), got {value!r}.")
    return int(value)


def corpus_lines(folder: Path) -> int:
    """Lines of the folder's corpus.jsonl, counted in 16 MiB blocks (about 0.3 s a GB): an upper bound on its documents."""
    lines, last = 0, b"\n"
    with (Path(folder) / CORPUS_FILE).open("rb") as handle:
        while block := handle.read(1 << 24):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def opens_stored(folder: Path, min_docs: int | None = None) -> bool:
    """Whether this dataset folder opens from its corpus store (its corpus reaches the threshold)."""
    threshold = stored_min_docs() if min_docs is None else min_docs
    return threshold == 0 or corpus_lines(folder) >= threshold


def open_dataset(workspace: Workspace, name: str, split: str | None = None, stored: bool | None = None,
                 progress: ItemProgress | None = None) -> Dataset:
    """Open a dataset by name (building the built-in one on first use).

    ``stored`` None decides by size (``opens_stored``); True or False forces the corpus store or a whole read.
    """
    folder = dataset_path(workspace, name)
    if stored if stored is not None else opens_stored(folder):
        from core.data.corpus_store import load_stored_dataset

        return load_stored_dataset(workspace, folder, split=split, name=name, progress=progress)
    return load_dataset(folder, split=split, name=name)
