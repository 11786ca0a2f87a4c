"""codeir workbench core: datasets, indexes, retriever profiles, runs and metrics (no UI)."""
import os
import tempfile
from pathlib import Path


def _numba_cache_dir() -> str:
    """Where numba keeps the batch BM25 scorer's machine code: a user cache folder, not ``core/__pycache__``.

    ``$NUMBA_CACHE_DIR`` wins; else ``$XDG_CACHE_HOME/codeir-workbench/numba`` (``~/.cache`` by default); else, when
    that cannot be created, a folder of this user in the system temp directory.
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for folder in (base / "codeir-workbench" / "numba", Path(tempfile.gettempdir()) / f"codeir-workbench-numba-{getattr(os, 'getuid', lambda: 0)()}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return str(folder)
    return str(folder)


# Set before numba is imported (core.index.bm25_batch compiles with cache=True): numba reads it once, on import.
if not os.environ.get("NUMBA_CACHE_DIR"):
    os.environ["NUMBA_CACHE_DIR"] = _numba_cache_dir()

# Lance logs a warning for every table it creates; keep the terminal and the app log readable.
os.environ.setdefault("LANCE_LOG", "error")  # pylance
os.environ.setdefault("LANCEDB_LOG", "error")  # lancedb's own Rust logger ("No existing dataset ... will be created")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
