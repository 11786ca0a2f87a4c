"""Recipes: which source trees a recipe finds on this machine, and how command-line options override its settings."""
from __future__ import annotations

import argparse
from pathlib import Path
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from core.cli import training as training_commands
from core.data.source_trees import DEBIAN_TREES, GO_STANDARD_LIBRARY, locate_tree
from core.errors import WorkbenchError
from core.training.finetune import TRAINING_EXCLUDED_DIRS, build_training_set
from core.training.recipes import RECIPES, SourceTree, get_recipe, recipe_trees


def test_code_v1_reads_several_languages_and_reports_what_is_missing_instead_of_failing(tmp_path, workspace):
    go = tmp_path / "gocode" / "src"
    go.mkdir(parents=True)
    recipe = replace(get_recipe("code-v1"), packages=("click", "no_such_package_xyz"),
                     trees=(SourceTree("go", str(tmp_path / "gocode" / "src"), "apt: test"),
                            SourceTree("ruby", str(tmp_path / "nowhere" / "*"), "apt: missing")))
    found, missing = recipe_trees(recipe, workspace)
    assert [origin for _, origin in found] == ["pip: click", "apt: test"]
    assert found[1][0] == go
    assert [(tree.language, tree.origin) for tree in missing] == [("python", "pip: no_such_package_xyz"), ("ruby", "apt: missing")]


def test_java_sources_are_unpacked_once_from_a_jdk_zip_keeping_java_base_only(tmp_path, workspace):
    archive = tmp_path / "jdk" / "lib" / "src.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("java.base/java/util/Lists.java", "class Lists {}")
        zipped.writestr("java.desktop/java/awt/Frame.java", "class Frame {}")
    (java,) = [tree for tree in get_recipe("code-v1").trees if tree.language == "java"]
    recipe = replace(get_recipe("code-v1"), packages=(), trees=(replace(java, pattern=str(archive)),))
    (folder, _), = recipe_trees(recipe, workspace)[0]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.java")) == ["java.base/java/util/Lists.java"]
    assert recipe_trees(recipe, workspace)[0][0][0] == folder  # reused, not unpacked again


def test_the_recipes_java_base_and_the_benchmark_builders_whole_jdk_are_unpacked_apart(tmp_path, workspace):
    archive = tmp_path / "jdk" / "lib" / "src.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("java.base/java/util/Lists.java", "class Lists {}")
        zipped.writestr("java.desktop/java/awt/Frame.java", "class Frame {}")
    (whole,) = [replace(tree, pattern=str(archive)) for tree in DEBIAN_TREES if tree.language == "java"]
    (base,) = [replace(tree, pattern=str(archive)) for tree in get_recipe("code-v1").trees if tree.language == "java"]
    whole_folder = locate_tree(whole, workspace)
    base_folder = locate_tree(base, workspace)
    assert whole_folder != base_folder
    assert sorted(p.relative_to(whole_folder).as_posix() for p in whole_folder.rglob("*.java")) == [
        "java.base/java/util/Lists.java", "java.desktop/java/awt/Frame.java"]
    assert [p.relative_to(base_folder).as_posix() for p in base_folder.rglob("*.java")] == ["java.base/java/util/Lists.java"]


_GO_FUNCTION = """package {package}

// {name} returns the number of {what} found in the given text, counting each one once.
func {name}(text string) int {{
	count := 0
	for range text {{
		count++
	}}
	return count
}}
"""


def test_code_v1_leaves_out_the_go_standard_library_and_the_generated_go_sdks_the_benchmark_pools(tmp_path):
    recipe = get_recipe("code-v1")
    assert GO_STANDARD_LIBRARY in DEBIAN_TREES and GO_STANDARD_LIBRARY not in recipe.trees
    gocode = tmp_path / "gocode" / "src"
    for folder, name, what in [("golang.org/x/text/cases", "CountCases", "cases"),
                               ("github.com/aws/aws-sdk-go/service/s3", "CountBuckets", "buckets"),
                               ("google.golang.org/api/drive/v3", "CountFiles", "files")]:
        (gocode / folder).mkdir(parents=True)
        (gocode / folder / "count.go").write_text(_GO_FUNCTION.format(package=Path(folder).name, name=name, what=what))
    recipe_data = build_training_set([gocode], languages=("go",), exclude_dirs=TRAINING_EXCLUDED_DIRS | recipe.excluded_dirs)
    assert recipe_data.functions == 1 and "CountCases" in recipe_data.dataset.documents[0].text
    assert build_training_set([gocode], languages=("go",)).functions == 3  # the SDK folders are real, found without the recipe


def test_unknown_recipe_is_refused_with_the_known_ones():
    with pytest.raises(WorkbenchError, match="code-v1"):
        get_recipe("code-v9")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    training_commands.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["finetune", "--output", "x", *argv])


def test_command_line_options_override_the_recipes_settings_and_plain_defaults_apply_without_one():
    recipe = RECIPES["code-v1"]
    settings = training_commands.resolved_settings(_args("--recipe", "code-v1", "--max-examples", "320", "--epochs", "1"))
    assert settings["max_examples"] == 320 and settings["epochs"] == 1
    assert settings["batch_size"] == recipe.batch_size and settings["queries"] == "template"
    assert settings["checkpoint_every"] == recipe.checkpoint_every
    plain = training_commands.resolved_settings(_args())
    assert plain == training_commands.PLAIN_DEFAULTS
    assert training_commands.resolved_settings(_args("--queries", "template"))["queries"] == "template"


@pytest.mark.parametrize("given", ["docstring", "template", "openai"])
def test_queries_given_on_the_command_line_win_over_the_recipes_query_generator(given):
    """The option's dest is ``queries``, the recipe's field ``query_generator``: the mapping must not lose either."""
    assert RECIPES["code-v1"].query_generator == "template"
    assert training_commands.resolved_settings(_args("--recipe", "code-v1", "--queries", given))["queries"] == given
    assert training_commands.resolved_settings(_args("--recipe", "code-v1"))["queries"] == "template"


def test_the_resolved_query_generator_is_the_one_the_training_data_is_built_with(tmp_path, workspace):
    """Through training_data_from_args, on a real tree: --queries docstring under code-v1 keeps the docstrings."""
    import json

    tree = Path(json.__file__).parent

    def built(*argv: str):
        args = _args("--recipe", "code-v1", "--from-tree", str(tree), "--audit-against", "csn-mini", *argv)
        return training_commands.training_data_from_args(args, workspace, training_commands.resolved_settings(args))

    assert built("--queries", "docstring").queries == {"generator": "docstring"}
    assert built().queries["generator"] == "template"


def test_the_whole_command_line_accepts_a_query_generator_name_for_finetune():
    """``--queries`` is a count for build-benchmark and a generator name for finetune: main's number check took both
    for counts, so ``python -m core finetune --queries template`` was refused before it ran."""
    from core.cli.main import build_parser, check_numeric_options

    for generator in ("docstring", "template"):
        args = build_parser().parse_args(["finetune", "--output", "x", "--queries", generator])
        check_numeric_options(args)
        assert training_commands.resolved_settings(args)["queries"] == generator
    counted = build_parser().parse_args(["build-benchmark", "--root", ".", "--name", "b", "--queries", "0"])
    with pytest.raises(Exception, match="--queries must be a whole number"):
        check_numeric_options(counted)


def test_code_v2_trains_code_to_docstring_with_averaged_weights_and_options_still_win():
    recipe = RECIPES["code-v2"]
    settings = training_commands.resolved_settings(_args("--recipe", "code-v2"))
    assert settings["direction"] == "code2doc" == recipe.direction and settings["queries"] == "docstring"
    assert settings["base_weight"] == recipe.base_weight > 0 and settings["batch_size"] == 256
    given = training_commands.resolved_settings(_args("--recipe", "code-v2", "--base-weight", "0", "--direction", "doc2code"))
    assert given["base_weight"] == 0.0 and given["direction"] == "doc2code"
    assert training_commands.resolved_settings(_args())["direction"] == "doc2code"  # no recipe: as before


def test_code_v2s_training_queries_are_code_without_docstrings(tmp_path, workspace):
    """Through training_data_from_args on a real tree: the recipe's direction reaches the builder."""
    import json

    args = _args("--recipe", "code-v2", "--from-tree", str(Path(json.__file__).parent), "--audit-against", "csn-mini")
    training = training_commands.training_data_from_args(args, workspace, training_commands.resolved_settings(args))
    assert training.direction == "code2doc"
    pairs = [(q.text, training.dataset.document(training.dataset.qrels.positives(q.id)[0]).text) for q in training.dataset.judged_queries]
    assert pairs and all(q.lstrip().startswith("def ") and doc not in q for q, doc in pairs)


def test_a_recipes_record_says_which_queries_chose_its_settings_and_travels_with_prepared_examples(tmp_path, workspace):
    import json

    from core.training.finetune import load_prepared

    assert get_recipe("code-v1").record() == {"recipe": "code-v1"}  # chosen before the dev-fold rule: nothing to claim
    prepared = tmp_path / "v2.jsonl.gz"
    args = _args("--recipe", "code-v2", "--from-tree", str(Path(json.__file__).parent), "--audit-against", "csn-mini",
                 "--max-examples", "16", "--negatives", "1", "--save-examples", str(prepared), "--quiet")
    args.func(args, workspace)
    examples, data = load_prepared(prepared)
    assert 0 < len(examples) <= 16 and data["direction"] == "code2doc"
    assert data["recipe"] == "code-v2" and data["recipe_chosen_on"] == get_recipe("code-v2").chosen_on


def test_a_bad_base_weight_or_generated_queries_for_code_queries_are_refused_before_any_work(tmp_path, capsys):
    from core.cli.main import main

    base = ["--workspace", str(tmp_path / "ws"), "finetune", "--output", "x", "--packages", "click"]
    for weight in ("1.5", "-0.1", "nan"):
        assert main([*base, "--base-weight", weight]) != 0
        assert "--base-weight must be a number from 0 to 0.99" in capsys.readouterr().err
    assert main([*base, "--recipe", "code-v2", "--queries", "template"]) != 0
    error = capsys.readouterr().err
    assert "'template' queries are written for docstring -> code pairs" in error and "code2doc" in error
    assert not (tmp_path / "ws" / "models").exists() or not any((tmp_path / "ws" / "models").iterdir())


def test_training_a_code_v2_file_under_another_recipe_drops_code_v2s_claims_from_the_record(tmp_path, workspace):
    import json

    from core.training.finetune import read_finetune_info

    prepared = tmp_path / "v2.jsonl.gz"
    save = _args("--recipe", "code-v2", "--from-tree", str(Path(json.__file__).parent), "--audit-against", "csn-mini",
                 "--max-examples", "8", "--negatives", "1", "--save-examples", str(prepared), "--quiet")
    save.func(save, workspace)
    train = _args("--examples", str(prepared), "--recipe", "code-v1", "--epochs", "1", "--batch-size", "2", "--max-seq-length", "16",
                  "--quiet")
    train.output = "v2-as-v1"
    train.func(train, workspace)
    info = read_finetune_info(workspace.models_dir / "v2-as-v1")
    assert info["data"]["recipe"] == "code-v1" and "recipe_chosen_on" not in info["data"]
    assert info["params"]["learning_rate"] == get_recipe("code-v1").learning_rate and info["params"]["base_weight"] == 0.0
