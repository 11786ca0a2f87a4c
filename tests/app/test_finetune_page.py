"""The fine-tune page trains a model from an installed package, saves it, adds a profile and lists it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.index.encoders import load_encoder
from core.training.finetune import describe_training, read_finetune_info
from ui.render import escape_markdown
from core.retrieval.profiles import load_profiles
from core.workspace import Workspace

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def fresh_workspace(app_at, tmp_path, mini_data_dir) -> Workspace:
    """A workspace of its own: training adds a profile, which must not leak into other tests' workspace."""
    return app_at(Workspace(tmp_path / "ws"), mini_data_dir)


def open_finetune() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=900)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code"})
    at.run()
    at.switch_page("pages/finetune.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def test_page_lists_no_models_before_training(fresh_workspace):
    at = open_finetune()
    assert not at.dataframe
    assert any("python -m core finetune" in caption.value for caption in at.caption)
    assert at.multiselect(key="ft_audit").value == ["cosqa-mini", "csn-mini"]


def test_training_from_the_page_saves_a_usable_model_and_a_dense_profile(fresh_workspace):
    at = open_finetune()
    at.multiselect(key="ft_packages").set_value(["click"])
    at.text_input(key="ft_output").input("page-ft")
    at.number_input(key="ft_examples").set_value(32)
    at.number_input(key="ft_negatives").set_value(1)
    at.number_input(key="ft_batch").set_value(8)
    at.button(key="ft_train").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert any("page-ft" in s.value.replace("\\", "") for s in at.success)  # markdown-escaped

    folder = fresh_workspace.models_dir / "page-ft"
    info = read_finetune_info(folder)
    assert info["base_model"] == "minilm" and info["examples"] == 32 and info["params"]["base_weight"] == 0.0
    assert {s["eval"] for s in info["data"]["leakage"]} == {"cosqa-mini", "csn-mini"}
    assert info["data"]["mining"]["method"] == "bm25" and info["data"]["mining"]["negatives"] == 1  # as the CLI records it
    profiles = load_profiles(fresh_workspace.profiles_file)
    assert any(p.kind == "dense" and p.model == "page-ft" for p in profiles.values())
    vectors = load_encoder("page-ft", fresh_workspace).encode(["open a file", "def f():\n    pass"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    trained = [i.value for i in at.info if i.value.startswith("Trained on")]
    assert trained == [escape_markdown(describe_training(info))]  # what was actually trained, said (escaped) on the page
    assert f"Trained on {info['examples_trained']} of 32 examples in {info['steps']} step" in trained[0]
    assert "peak memory" in trained[0]
    steps = [m.value for m in at.markdown if m.value.startswith("Step ")]
    assert steps and steps[-1].startswith(f"Step {info['steps']} / {info['steps']} · loss ")  # the last step stays visible
    leakage = next(frame.value for frame in at.dataframe if "training queries dropped" in frame.value.index)
    assert set(leakage.columns) == {"cosqa-mini", "csn-mini"}
    assert "train query = eval document (exact)" in leakage.index and "pair: function_name" in leakage.index
    for summary in info["data"]["leakage"]:
        assert leakage.loc["training queries dropped", summary["eval"]] == summary["dropped_train_queries"]

    listed = next(frame.value for frame in at.dataframe if "model" in frame.value.columns)
    assert list(listed["model"]) == ["page-ft"] and list(listed["examples"]) == [32]
    assert list(listed["trained"]) == [info["examples_trained"]] and list(listed["steps"]) == [info["steps"]]


def test_an_alias_name_is_refused_with_a_message_and_nothing_is_saved(fresh_workspace):
    at = open_finetune()
    at.multiselect(key="ft_packages").set_value(["click"])
    at.text_input(key="ft_output").input("minilm")
    at.number_input(key="ft_examples").set_value(16)
    at.button(key="ft_train").click().run()
    assert not at.exception
    assert at.error and "minilm" in at.error[0].value
    assert not (fresh_workspace.models_dir / "minilm").exists()


def test_a_prepared_examples_file_trains_from_the_page_and_its_audit_is_shown(fresh_workspace, tmp_path, mini_data_dir):
    """Examples prepared by ``finetune --save-examples`` (on another machine, say) train here without sources or mining."""
    from core.cli.main import main

    prepared = tmp_path / "prepared.jsonl.xz"
    assert main(["--workspace", str(tmp_path / "elsewhere"), "--data-dir", str(mini_data_dir), "finetune",
                 "--packages", "click", "--output", "unused", "--audit-against", "csn-mini", "--max-examples", "16",
                 "--negatives", "1", "--save-examples", str(prepared), "--quiet"]) == 0
    at = open_finetune()
    at.text_input(key="ft_prepared").input(str(prepared))
    at.multiselect(key="ft_packages").set_value([])  # not used: the file holds the examples
    at.text_input(key="ft_output").input("prepared-ft")
    at.number_input(key="ft_examples").set_value(16)
    at.number_input(key="ft_batch").set_value(8)
    at.number_input(key="ft_base_weight").set_value(0.5)
    at.button(key="ft_train").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]

    info = read_finetune_info(fresh_workspace.models_dir / "prepared-ft")
    assert info["params"]["base_weight"] == 0.5  # the field reaches the averaging
    assert info["data"]["prepared_examples"] == {"file": "prepared.jsonl.xz", "examples": 16}
    assert info["params"]["max_examples"] is None  # every example of the file, not the Examples field's cap
    assert [s["eval"] for s in info["data"]["leakage"]] == ["csn-mini"]  # the file's audit, not the page's selection
    assert any(m.value.startswith("Read 16 prepared examples (16 mined negatives)") for m in at.markdown)
    leakage = next(frame.value for frame in at.dataframe if "training queries dropped" in frame.value.index)
    assert list(leakage.columns) == ["csn-mini"]
    listed = next(frame.value for frame in at.dataframe if "model" in frame.value.columns)
    assert list(listed["model"]) == ["prepared-ft"] and list(listed["device"]) == ["cpu"]
    assert listed["resumed at step"].isna().all()  # trained in one go
    assert list(listed["base weight"]) == [0.5]


def test_a_missing_prepared_file_is_a_message_and_nothing_is_saved(fresh_workspace, tmp_path):
    at = open_finetune()
    at.text_input(key="ft_prepared").input(str(tmp_path / "nowhere.jsonl.gz"))
    at.text_input(key="ft_output").input("never-ft")
    at.button(key="ft_train").click().run()
    assert not at.exception
    assert at.error and "No prepared examples at" in at.error[0].value
    assert not (fresh_workspace.models_dir / "never-ft").exists()


def test_choosing_a_recipe_fills_the_form_with_its_settings_and_custom_restores_the_defaults(fresh_workspace):
    from core.training.recipes import get_recipe

    at = open_finetune()
    recipe = get_recipe("code-v2")
    at.selectbox(key="ft_recipe").set_value("code-v2").run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.number_input(key="ft_batch").value == recipe.batch_size == 256
    assert at.number_input(key="ft_examples").value == recipe.max_examples
    assert at.number_input(key="ft_epochs").value == recipe.epochs
    assert at.number_input(key="ft_base_weight").value == recipe.base_weight
    assert at.number_input(key="ft_checkpoint").value == recipe.checkpoint_every
    assert at.selectbox(key="ft_queries").value == recipe.query_generator
    at.selectbox(key="ft_recipe").set_value("code-v1").run()
    assert at.selectbox(key="ft_queries").value == "template" and at.number_input(key="ft_epochs").value == 3
    at.selectbox(key="ft_recipe").set_value(at.selectbox(key="ft_recipe").options[0]).run()
    assert at.number_input(key="ft_batch").value == 32 and at.number_input(key="ft_base_weight").value is None


def test_a_prepared_file_trains_with_the_settings_of_the_recipe_it_was_prepared_with(fresh_workspace, tmp_path, mini_data_dir):
    """The form does not show the learning rate or the mini-batch: the file's recipe (code-v2) sets them, as on the CLI."""
    import json

    from core.cli.main import main
    from core.training.recipes import get_recipe

    prepared = tmp_path / "v2.jsonl.gz"
    assert main(["--workspace", str(tmp_path / "elsewhere"), "--data-dir", str(mini_data_dir), "finetune", "--recipe", "code-v2",
                 "--from-tree", str(Path(json.__file__).parent), "--output", "unused", "--audit-against", "csn-mini",
                 "--max-examples", "8", "--negatives", "1", "--save-examples", str(prepared), "--quiet"]) == 0
    at = open_finetune()  # the recipe selector stays on "custom"
    at.text_input(key="ft_prepared").input(str(prepared))
    at.text_input(key="ft_output").input("v2-page")
    at.number_input(key="ft_batch").set_value(4)
    at.button(key="ft_train").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    info = read_finetune_info(fresh_workspace.models_dir / "v2-page")
    recipe = get_recipe("code-v2")
    assert info["params"]["learning_rate"] == recipe.learning_rate and info["params"]["mini_batch_size"] == recipe.mini_batch_size
    assert info["params"]["base_weight"] == recipe.base_weight and info["params"]["batch_size"] == 4  # the field, then the recipe
    assert info["data"]["recipe"] == "code-v2"


def test_generated_queries_with_code_v2s_code_queries_are_refused_before_any_work(fresh_workspace):
    at = open_finetune()
    at.selectbox(key="ft_recipe").set_value("code-v2").run()
    at.selectbox(key="ft_queries").set_value("template")
    at.text_input(key="ft_output").input("never-v2")
    at.button(key="ft_train").click().run()
    assert [e.value for e in at.error] and escape_markdown("'template' queries are written for docstring -> code pairs") in at.error[0].value
    assert not any(m.value.startswith("Leakage vs") for m in at.markdown)  # refused before sources were read
    assert not (fresh_workspace.models_dir / "never-v2").exists()
