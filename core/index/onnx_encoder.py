"""Sentence embeddings on CPU through ONNX Runtime, from a one-time (int8 by default) export of a model folder.

sentence-transformers' own ``backend="onnx"`` needs ``optimum``, which conflicts with transformers 5
(see ../shared/MODELS.md), so the export, tokenisation and pooling are done here. Only folders made of a
Transformer, a mean or CLS Pooling and an optional Normalize module can be exported; others raise
``ModelUnavailableError`` and stay on the torch backend.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from filelock import FileLock

from core.index.model_files import weights_digest
from core.errors import ModelUnavailableError

Pooling = Literal["mean", "cls"]

# modules.json names classes by import path, which moved in sentence-transformers 6; the class name is stable.
_SUPPORTED_MODULES = frozenset({"Transformer", "Pooling", "Normalize"})
# tokenizer_config.json holds a huge sentinel for model_max_length when none was set.
_NO_LIMIT = 1_000_000
_EXPORT_LOCK_TIMEOUT_S = 3600
# Bump when the export or quantisation changes: it names the cached file and enters the fingerprint.
_RECIPE_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    """What the export and the encoder need to know about a sentence-transformers folder."""

    model_dir: Path
    transformer_dir: Path
    pooling: Pooling
    max_seq_length: int
    do_lower_case: bool
    dim: int
    pad_token_id: int


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"{path} is missing or unreadable ({exc}); point the model at a complete "
                                    f"sentence-transformers folder.") from exc


def _pooling_modes(pooling_config: dict[str, Any]) -> list[str]:
    """Pooling modes from either config layout: ``pooling_mode: "mean"`` (6.x) or ``pooling_mode_mean_tokens: true``."""
    if "pooling_mode" in pooling_config:
        modes = pooling_config["pooling_mode"]
        return [modes] if isinstance(modes, str) else list(modes)
    legacy = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
    return [legacy.get(key, key) for key, on in pooling_config.items() if key.startswith("pooling_mode_") and on]


def _max_seq_length(st_config: dict[str, Any], tokenizer_config: dict[str, Any], config: dict[str, Any]) -> int:
    """sentence_bert_config.json's max_seq_length (5.x), else the tokenizer's model_max_length (6.x), else the position limit."""
    for candidate in (st_config.get("max_seq_length"), tokenizer_config.get("model_max_length")):
        if isinstance(candidate, (int, float)) and 0 < candidate < _NO_LIMIT:
            return int(candidate)
    return min(512, int(config.get("max_position_embeddings", 512)))


def _optional_json(path: Path) -> dict[str, Any]:
    return _read_json(path) if path.is_file() else {}


def read_model_spec(model_dir: Path) -> ModelSpec:
    """Read and check a sentence-transformers folder; refuse layouts the ONNX path would encode wrongly."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelUnavailableError(f"Model folder {model_dir} does not exist.")
    modules = _read_json(model_dir / "modules.json") if (model_dir / "modules.json").is_file() else [
        {"type": "Transformer", "path": ""}, {"type": "Pooling", "path": "1_Pooling"}]
    by_class = {str(module.get("type", "")).rsplit(".", 1)[-1]: module for module in modules}
    unsupported = sorted(set(by_class) - _SUPPORTED_MODULES)
    if unsupported or "Transformer" not in by_class:
        raise ModelUnavailableError(f"{model_dir} has modules the onnx backend cannot run ({', '.join(unsupported) or 'no Transformer'}); "
                                    f"use the torch backend for this model.")
    transformer_dir = model_dir / by_class["Transformer"].get("path", "")
    config = _read_json(transformer_dir / "config.json")
    if not (transformer_dir / "tokenizer.json").is_file():
        raise ModelUnavailableError(f"{transformer_dir} has no tokenizer.json (a fast tokenizer); re-save the model with a recent "
                                    f"sentence-transformers or use the torch backend.")
    pooling_config = _optional_json(model_dir / by_class.get("Pooling", {}).get("path", "1_Pooling") / "config.json")
    modes = _pooling_modes(pooling_config) if pooling_config else ["mean"]
    if modes not in (["mean"], ["cls"]):
        raise ModelUnavailableError(f"{model_dir} pools with {modes or 'nothing'}; the onnx backend supports mean or CLS pooling "
                                    f"only, use the torch backend for this model.")
    st_config = _optional_json(transformer_dir / "sentence_bert_config.json")
    dim = pooling_config.get("embedding_dimension") or pooling_config.get("word_embedding_dimension") or config.get("hidden_size")
    if not dim:
        raise ModelUnavailableError(f"{model_dir} states no embedding dimension (pooling config or hidden_size); use the torch backend.")
    return ModelSpec(
        model_dir=model_dir,
        transformer_dir=transformer_dir,
        pooling=modes[0],
        max_seq_length=_max_seq_length(st_config, _optional_json(transformer_dir / "tokenizer_config.json"), config),
        do_lower_case=bool(st_config.get("do_lower_case", False)),
        dim=int(dim),
        pad_token_id=int(config.get("pad_token_id") or 0),
    )


def onnx_available() -> bool:
    """Whether ONNX Runtime, onnx and tokenizers are installed, so the onnx backend can be offered."""
    if any(importlib.util.find_spec(name) is None for name in ("onnxruntime", "onnx", "tokenizers")):
        return False
    import onnxruntime

    return "CPUExecutionProvider" in onnxruntime.get_available_providers()


def _precision(quantize: bool) -> str:
    return "int8" if quantize else "fp32"


def export_onnx(model_dir: Path, out_dir: Path, quantize: bool = True) -> Path:
    """The .onnx file for a model folder, exported once into ``out_dir`` and reused while the weights are unchanged.

    The file name carries the weights digest, so an export exists only when it matches the source.
    Building happens in a scratch folder under a file lock and ends with ``os.replace``: a reader never
    sees half a file, and a second process waits and then reuses the first one's export.
    """
    spec = read_model_spec(model_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    precision = _precision(quantize)
    target = out_dir / f"model-{weights_digest(spec.model_dir)}-{precision}-r{_RECIPE_VERSION}.onnx"
    if target.is_file():
        return target
    with FileLock(str(out_dir / ".export.lock"), timeout=_EXPORT_LOCK_TIMEOUT_S):
        if target.is_file():
            return target
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as scratch:
            built = _build(spec, Path(scratch), quantize)
            os.replace(built, target)
        for stale in out_dir.glob(f"model-*-{precision}*.onnx"):
            if stale != target:
                stale.unlink(missing_ok=True)
    return target


def _wrapper_module(model: Any, with_token_types: bool) -> Any:
    """A torch module whose forward takes tensors positionally (as the ONNX exporter passes them) and calls the model by keyword.

    transformers 5 reordered forward's parameters, so positional calls would feed the wrong tensors.
    """
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            extra = {"token_type_ids": token_type_ids} if with_token_types else {}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    return LastHiddenState()


def _feed_forward_outputs(model_path: Path) -> list[str]:
    """MatMul nodes of each feed-forward block's down-projection (BERT-family naming, ``.../output/dense/MatMul``).

    Their input is the GELU output, whose range is wide and one-sided: int8 there costs the most accuracy.
    Measured on MiniLM and 300 csn docstrings: worst cosine to fp32 0.978 with them quantized, 0.990 without,
    for ~15% less int8 throughput (AVX2 CPU, no VNNI).
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [node.name for node in graph.node
            if node.op_type == "MatMul" and node.name.endswith("/output/dense/MatMul") and "/attention/" not in node.name]


def _build(spec: ModelSpec, scratch: Path, quantize: bool) -> Path:
    """Export to ONNX and optionally int8-quantize the weights, inside ``scratch``; returns the final file."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    try:
        # eager attention traces to plain MatMul/Softmax; sdpa traces through Python branches on shapes.
        model = AutoModel.from_pretrained(str(spec.transformer_dir), local_files_only=True, attn_implementation="eager").eval()
    except Exception as exc:  # transformers raises many types for a broken folder
        raise ModelUnavailableError(f"Model folder {spec.transformer_dir} could not be loaded for ONNX export: {exc}") from exc
    with_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_types else [])
    ids, mask = (torch.from_numpy(array) for array in _pad(
        [encoding.ids for encoding in _tokenizer(spec).encode_batch(["a sample sentence to trace the graph", "short"])],
        spec.pad_token_id))
    inputs = (ids, mask, torch.zeros_like(ids)) if with_token_types else (ids, mask)
    exported = scratch / "exported.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches are expected
        torch.onnx.export(_wrapper_module(model, with_token_types), inputs, str(exported), input_names=names,
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names + ["last_hidden_state"]})
    if not quantize:
        return exported
    quantized = scratch / "quantized.onnx"
    # onnxruntime's transformer optimizer (fused Attention) was measured here: no faster at int8 on this CPU, so left out.
    quantize_dynamic(str(exported), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=_feed_forward_outputs(exported))
    return quantized


def _tokenizer(spec: ModelSpec) -> Any:
    """The fast tokenizer, truncating to the model's max_seq_length and not padding (batches are padded here)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(spec.transformer_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=spec.max_seq_length)
    tokenizer.no_padding()
    return tokenizer


def _pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists into an (n, longest) int64 matrix and its attention mask."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    mask = np.arange(lengths.max())[None, :] < lengths[:, None]
    ids = np.full(mask.shape, pad_id, dtype=np.int64)
    ids[mask] = np.fromiter((token for s in sequences for token in s), dtype=np.int64, count=int(lengths.sum()))
    return ids, mask.astype(np.int64)


@dataclass(frozen=True)
class _Runtime:
    """A loaded session and tokenizer; embeds one batch of tokenised texts."""

    session: Any
    tokenizer: Any
    spec: ModelSpec
    input_names: frozenset[str]

    def embed(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        ids, mask = _pad(token_ids, self.spec.pad_token_id)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(["last_hidden_state"], {k: v for k, v in feed.items() if k in self.input_names})[0]
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.astype(np.float32)
            pooled = np.einsum("bld,bl->bd", hidden, weights) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


@dataclass
class OnnxEncoder:
    """A sentence-transformers model run by ONNX Runtime on CPU; exported on first use, then loaded from ``cache_dir``."""

    name: str
    model_dir: Path
    cache_dir: Path
    quantize: bool = True
    _spec: ModelSpec | None = field(default=None, init=False, repr=False, compare=False)
    _runtime: _Runtime | None = field(default=None, init=False, repr=False, compare=False)
    _fingerprint: str = field(default="", init=False, repr=False, compare=False)
    _load_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def _model_spec(self) -> ModelSpec:
        if self._spec is None:
            self._spec = read_model_spec(Path(self.model_dir))
        return self._spec

    def _load(self) -> _Runtime:
        with self._load_lock:
            if self._runtime is None:
                import onnxruntime

                spec = self._model_spec()
                path = export_onnx(spec.model_dir, Path(self.cache_dir), self.quantize)
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = os.cpu_count() or 1
                # Cores are shared with the app and index builds: threads that spin between batches steal them.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                self._runtime = _Runtime(session, _tokenizer(spec), spec, frozenset(i.name for i in session.get_inputs()))
        return self._runtime

    @property
    def fingerprint(self) -> str:
        """Weights digest, backend with precision, max_seq_length and export recipe: embeddings differ when any of them does."""
        if not self._fingerprint:
            spec = self._model_spec()
            self._fingerprint = (f"{weights_digest(spec.model_dir)}-onnx-{_precision(self.quantize)}-{spec.max_seq_length}"
                                 f"-r{_RECIPE_VERSION}")
        return self._fingerprint

    @property
    def dim(self) -> int:
        return self._model_spec().dim

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """L2-normalised float32 rows in input order; texts are batched by token length so padding stays short.

        With int8, a row varies slightly (cosine ~0.995) with the other texts in its batch, but not with input order.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        embeddings = np.zeros((len(texts), self.dim), dtype=np.float32)
        if len(texts) == 0:
            return embeddings
        from tqdm.auto import tqdm

        runtime = self._load()
        spec = runtime.spec
        # sentence-transformers strips (and lowercases when configured) before tokenising; match it.
        prepared = [str(text).strip().lower() if spec.do_lower_case else str(text).strip() for text in texts]
        token_ids = [encoding.ids for encoding in runtime.tokenizer.encode_batch(prepared)]
        # Longest first; ties by token ids, so the same texts form the same batches whatever their input order
        # (int8 activations are scaled per batch, so a row depends slightly on its batch neighbours).
        order = np.array(sorted(range(len(token_ids)), key=lambda row: (-len(token_ids[row]), token_ids[row])))
        with tqdm(total=len(texts), desc=f"Encoding with {self.name} (onnx)", unit="text", disable=not show_progress) as bar:
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                embeddings[rows] = runtime.embed([token_ids[row] for row in rows])
                bar.update(len(rows))
        return embeddings
