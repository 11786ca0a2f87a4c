"""Which datasets a user can open: the data directory, the workspace, and the built-in stdlib set."""
from __future__ import annotations

from pathlib import Path

from core.data.datasets import Dataset, DatasetInfo, discover_datasets, load_dataset, validate_name
from core.errors import DatasetError
from core.workspace import BUILTIN_DATASET, Workspace

PREFERRED_DEFAULTS = ("csn-python-code2doc", "cosqa")


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


def open_dataset(workspace: Workspace, name: str, split: str | None = None) -> Dataset:
    """Load a dataset by name (building the built-in one on first use)."""
    return load_dataset(dataset_path(workspace, name), split=split, name=name)
