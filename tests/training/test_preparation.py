"""The preparation steps the command line and the Fine-tune page share: sources, pairs, audit, mining, and what each reports."""
from __future__ import annotations

import shutil
from dataclasses import replace

from core.data.source_trees import SourceTree
from core.training.finetune import package_roots
from core.training.preparation import TrainingSources, build_from_sources, prepare_examples
from core.training.recipes import get_recipe


def test_prepared_examples_come_with_a_line_for_each_step(tmp_path, workspace, csn_mini):
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("termui.py", "utils.py", "formatting.py"):
        shutil.copy(package_roots(["click"])[0] / name, tree / name)
    lines: list[str] = []
    examples, data = prepare_examples(TrainingSources.of_folders([tree]), [csn_mini], workspace, name="prep-train",
                                      max_examples=8, negatives=1, report=lines.append)
    assert len(examples) == 8 and all(len(e.negatives) <= 1 for e in examples)
    assert data["leakage"][0]["eval"] == "csn-mini" and data["mining"]["negatives"] == 1
    assert lines[0].startswith("leakage vs csn-mini: ")
    assert any(line.startswith("functions per language: python ") for line in lines)
    assert any(line.startswith("training set prep-train: ") for line in lines)
    assert lines[-1] == f"mined {data['mining']['mined']} hard negatives for 8 examples (bm25)"


def test_a_recipes_missing_trees_are_reported_and_the_rest_is_built(tmp_path, workspace):
    recipe = replace(get_recipe("code-v2"), packages=("click",),
                     trees=(SourceTree("go", str(tmp_path / "nowhere" / "src"), "apt: golang-missing"),))
    sources = TrainingSources.of_recipe(recipe, workspace)
    assert len(sources.roots) == 1 and [t.origin for t in sources.missing] == ["apt: golang-missing"]
    lines: list[str] = []
    training = build_from_sources(sources, [], workspace, name="recipe-train", direction=recipe.direction, report=lines.append)
    assert lines[0] == f"no go sources at {tmp_path / 'nowhere' / 'src'} (apt: golang-missing); going on without them"
    assert training.direction == "code2doc" and len(training.dataset.judged_queries) > 10
