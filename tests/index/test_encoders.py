"""Model resolution and the torch encoder."""
import time

import numpy as np
import pytest

from core.index.encoders import load_encoder, resolve_model
from core.errors import ModelUnavailableError


def test_default_model_comes_from_the_pypi_package():
    path = resolve_model("minilm")
    assert (path / "config.json").is_file()


def test_default_model_encodes_normalised_384_dim_rows():
    encoder = load_encoder("minilm")
    vectors = encoder.encode(["def add(a, b): return a + b", "Add two numbers.", ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_fingerprint_is_stable_and_names_the_backend():
    assert load_encoder("minilm").fingerprint == load_encoder("minilm").fingerprint
    assert load_encoder("minilm").fingerprint.endswith("-torch")


def test_hub_model_offline_fails_at_once_with_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE"):
        load_encoder("sentence-transformers/all-MiniLM-L12-v2")
    assert time.perf_counter() - started < 5


def test_hub_model_without_network_gives_a_clear_message(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: the hub is unreachable
    encoder = load_encoder("sentence-transformers/all-MiniLM-L12-v2")
    with pytest.raises(ModelUnavailableError, match="cannot be reached"):
        encoder.encode(["x"])


@pytest.mark.parametrize("name", ["no-such-model", "./missing-folder"])
def test_unknown_model_names_are_explained(name):
    with pytest.raises(ModelUnavailableError):
        resolve_model(name)


def test_folder_without_config_is_not_a_model(tmp_path):
    with pytest.raises(ModelUnavailableError, match="not a model"):
        resolve_model(str(tmp_path))


def test_encoding_leaves_the_callers_torch_thread_count_as_it_was():
    """One query runs on one thread, a corpus on every core; neither may leak into what the thread runs next."""
    import torch

    encoder = load_encoder("minilm")
    before = torch.get_num_threads()
    one = encoder.encode(["def f(): pass"])
    assert torch.get_num_threads() == before
    many = encoder.encode(["def f(): pass"] + [f"text {i}" for i in range(20)])
    assert torch.get_num_threads() == before
    assert np.allclose(one[0], many[0], atol=1e-5)  # the thread count does not change the vector
