"""The built-in benchmark that needs nothing downloaded: the running Python's standard library, code -> docstring.

Each query is a stdlib function's source; its one relevant document is that function's docstring
(first paragraph), among the docstrings of the other kept functions. The same Python version
always gives the same benchmark.
"""
from __future__ import annotations

import platform
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from filelock import FileLock

from core.data.datasets import Dataset, is_beir_folder, write_dataset
from core.data.source_benchmark import DEFAULT_EXCLUDED_DIRS, DEFAULT_SEED, CodeFunction, benchmark_meta, build_benchmark, extract_functions
from core.workspace import BUILTIN_DATASET

STDLIB_QUERIES = 200
STDLIB_MAX_DOCUMENTS = 5000
# Test suites, the IDLE application, bundled installers and demos, third-party packages and pydoc's
# generated topic texts: not the library's own documented API.
STDLIB_EXCLUDED_DIRS = DEFAULT_EXCLUDED_DIRS | {
    "test", "tests", "idle_test", "idlelib", "site-packages", "dist-packages", "lib2to3", "ensurepip",
    "turtledemo", "pydoc_data", "lib-dynload", "__phello__",
}


def stdlib_root() -> Path:
    """The running interpreter's standard library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_functions() -> list[CodeFunction]:
    """The standard library's functions and methods with a unique docstring of three words or more."""
    return extract_functions(stdlib_root(), ["python"], exclude_dirs=STDLIB_EXCLUDED_DIRS)


def build_stdlib_benchmark(n_queries: int = STDLIB_QUERIES, max_documents: int = STDLIB_MAX_DOCUMENTS,
                           seed: int = DEFAULT_SEED, functions: Sequence[CodeFunction] | None = None) -> Dataset:
    """The ``stdlib-code2doc`` benchmark: ``n_queries`` functions, a corpus of at most ``max_documents`` docstrings.

    ``functions`` saves the parse when ``stdlib_functions()`` was already called.
    """
    functions = stdlib_functions() if functions is None else functions
    return build_benchmark(functions, BUILTIN_DATASET, "code2doc", n_queries, seed,
                           max_documents=max_documents, source=str(stdlib_root()))


def ensure_stdlib_benchmark(datasets_dir: Path) -> Path:
    """The folder of the built-in benchmark under ``datasets_dir``, built and written first if absent."""
    datasets_dir = Path(datasets_dir)
    folder = datasets_dir / BUILTIN_DATASET
    if is_beir_folder(folder):
        return folder
    datasets_dir.mkdir(parents=True, exist_ok=True)
    # Two sessions opening the app at once must not both write the folder (write_dataset's temp
    # folder is named by process, so threads of one process would share it).
    with FileLock(str(datasets_dir / f".{BUILTIN_DATASET}.lock")):
        if is_beir_folder(folder):
            return folder
        functions = stdlib_functions()
        dataset = build_stdlib_benchmark(functions=functions)
        meta = benchmark_meta(stdlib_root(), "code2doc", functions, dataset, DEFAULT_SEED, False,
                              python_version=platform.python_version(), max_documents=STDLIB_MAX_DOCUMENTS)
        return write_dataset(dataset, folder, meta)
