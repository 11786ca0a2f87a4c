"""Fingerprints of model folders on disk, shared by every encoder backend."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def weights_digest(folder: Path) -> str:
    """Hash of the weight files' size, head and tail, plus config: cheap, and changes when the weights do."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.suffix in {".safetensors", ".bin", ".json", ".onnx"} and path.is_file() and "onnx" not in path.parts[-2:-1]:
            size = path.stat().st_size
            digest.update(f"{path.relative_to(folder)}:{size}".encode())
            with path.open("rb") as handle:
                digest.update(handle.read(1 << 20))
                if size > 2 << 20:
                    handle.seek(-(1 << 20), os.SEEK_END)
                    digest.update(handle.read())
    return digest.hexdigest()[:16]
