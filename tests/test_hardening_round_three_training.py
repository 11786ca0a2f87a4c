"""Issue 25, parts 1 and 2: a checkpoint in the workspace never runs code, and NaN weights never reach a saved model or a table.

Training runs are the tiny ones of tests/training/test_finetune.py (8 examples of 16 tokens, batches of 2);
the NaN model is MiniLM saved again with every floating-point weight set to NaN.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from core.cli.main import main
from core.errors import ModelUnavailableError
from core.index.encoders import load_encoder, resolve_model
from core.index.vectors import EMBED_CHUNK_ENV, embedding_cache_dir, open_vector_index
from core.training.finetune import (TrainingDiverged, TrainingExample, TrainingInterrupted, TrainingStep, checkpoint_dir,
                                    finetune, save_prepared)
from core.workspace import Workspace

EXAMPLES = [TrainingExample(f"how to {verb} a file", f"def {verb}_file(path):\n    return {verb}(path)", (f"def {verb}_dir(p): pass",))
            for verb in ("open", "close", "read", "write", "copy", "move", "delete", "rename")]


def _tiny_run(workspace: Workspace, name: str, **kwargs) -> Path:
    return finetune(EXAMPLES, workspace, output_name=name, batch_size=2, max_seq_length=16, learning_rate=1e-3, threads=1,
                    progress=False, checkpoint_every=1, **kwargs)


def _stop_at(step_number: int):
    def stop(step: TrainingStep) -> None:
        if step.step == step_number:
            raise TrainingInterrupted("stopped on purpose")
    return stop


def _with_nan_weights(path: Path) -> None:
    """Rewrite a safetensors file with every floating-point tensor filled with NaN."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()}, str(path))


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory) -> Path:
    """MiniLM with NaN weights: what a diverged fine-tuning run saved before this fix."""
    folder = tmp_path_factory.mktemp("nan-model") / "poisoned-minilm"
    shutil.copytree(resolve_model("minilm"), folder)
    _with_nan_weights(folder / "model.safetensors")
    return folder


def _set_aside(workspace: Workspace, name: str) -> list[Path]:
    return sorted(workspace.models_dir.glob(f"{checkpoint_dir(workspace, name).name}.rejected-*"))


class _CreatesAFile:
    """Unpickled, this calls ``open(marker, "w")``: the harmless stand-in for ``os.system`` in a planted checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_an_old_pickled_checkpoint_is_never_unpickled_but_set_aside_and_training_starts_fresh(workspace, tmp_path):
    marker = tmp_path / "code-ran"
    folder = checkpoint_dir(workspace, "planted")
    folder.mkdir(parents=True)
    torch.save({"run_key": "anything", "step": 2, "payload": _CreatesAFile(marker)}, folder / "state.pt")
    messages, steps = [], []

    model = _tiny_run(workspace, "planted", on_step=steps.append, report=messages.append)

    assert not marker.exists()
    assert [s.step for s in steps] == [1, 2, 3, 4] and (model / "model.safetensors").is_file()
    assert len(messages) == 1 and "old pickled format" in messages[0] and "starts from the base model" in messages[0]
    [aside] = _set_aside(workspace, "planted")
    assert (aside / "state.pt").is_file() and aside.name in messages[0]


def test_a_checkpoint_of_another_run_is_set_aside_without_reading_its_tensors(workspace, monkeypatch):
    import safetensors.torch

    read: list[Path] = []
    load_file = safetensors.torch.load_file

    def recording_load_file(path, *args, **kwargs):
        read.append(Path(path))
        return load_file(path, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "load_file", recording_load_file)
    with pytest.raises(TrainingInterrupted):
        _tiny_run(workspace, "other", on_step=_stop_at(1))
    state_file = checkpoint_dir(workspace, "other") / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps(state | {"run_key": "another-run"}))
    messages, steps = [], []

    with pytest.raises(TrainingInterrupted):
        _tiny_run(workspace, "other", on_step=lambda s: (steps.append(s.step), _stop_at(2)(s)), report=messages.append)

    assert steps == [1, 2]  # a fresh start, not a resume at step 2
    [aside] = _set_aside(workspace, "other")
    assert "other examples, settings or base model" in messages[0] and aside.name in messages[0]
    assert (aside / "model.safetensors").is_file() and not any(aside in path.parents for path in read)
    resumed = []
    _tiny_run(workspace, "other", on_step=resumed.append)  # the run's own checkpoint is read, tensors and all
    assert [s.step for s in resumed] == [3, 4]
    assert any(checkpoint_dir(workspace, "other") in path.parents for path in read)


def test_a_checkpoint_with_nan_weights_stops_training_and_saves_no_model(workspace):
    with pytest.raises(TrainingInterrupted):
        _tiny_run(workspace, "poisoned", on_step=_stop_at(2))
    _with_nan_weights(checkpoint_dir(workspace, "poisoned") / "model.safetensors")

    with pytest.raises(TrainingDiverged, match=r"checkpoint at step 2 holds non-finite weights .*Nothing was trained or saved"):
        _tiny_run(workspace, "poisoned")

    assert not (workspace.models_dir / "poisoned").exists()
    assert not checkpoint_dir(workspace, "poisoned").exists() and len(_set_aside(workspace, "poisoned")) == 1


def test_a_nan_loss_stops_the_finetune_command_with_one_line_and_saves_nothing(workspace, nan_model, tmp_path, capsys):
    shutil.copytree(nan_model, workspace.models_dir / "poisoned-minilm")
    prepared = save_prepared(tmp_path / "examples.jsonl", EXAMPLES, {})

    code = main(["--workspace", str(workspace.root), "--data-dir", str(workspace.data_dir), "finetune", "--examples", str(prepared),
                 "--output", "from-nan", "--base-model", "poisoned-minilm", "--batch-size", "2", "--max-seq-length", "16",
                 "--checkpoint-every", "1", "--threads", "1", "--quiet"])

    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and lines[-1] == errors[0]  # above it only transformers' weight-loading bar
    assert errors[0].startswith("error: Training diverged at step 1 of 4: the loss is nan. Nothing was saved")
    assert not (workspace.models_dir / "from-nan").exists() and not checkpoint_dir(workspace, "from-nan").exists()


def test_a_vector_table_of_nan_vectors_is_refused_naming_the_model(workspace, nan_model, csn_mini, monkeypatch):
    monkeypatch.setenv(EMBED_CHUNK_ENV, "16")  # the first chunk is checked before anything more is encoded
    shutil.copytree(nan_model, workspace.models_dir / "poisoned-minilm")
    encoder = load_encoder("poisoned-minilm", workspace)

    with pytest.raises(ModelUnavailableError, match=r"Model 'poisoned-minilm' produced non-finite vectors .* for 16 of 16 texts"):
        open_vector_index(workspace, csn_mini, encoder)

    assert not list(embedding_cache_dir(workspace).rglob("*.npz"))  # nothing cached to be served later
