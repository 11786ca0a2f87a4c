"""Named fine-tuning recipes: which source trees make the pairs, and the settings that train on them.

A recipe is what ``python -m core finetune --recipe NAME`` and the Fine-tune page run; every figure a
recipe produces can be rebuilt by that one command, on a CPU or on a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from core.data.source_trees import DEBIAN_TREES, GENERATED_GO_SDK_FOLDERS, GO_STANDARD_LIBRARY, SourceTree, locate_trees
from core.errors import WorkbenchError
from core.training.finetune import DEFAULT_MAX_EXAMPLES, DEFAULT_MAX_SEQ_LENGTH, DEFAULT_MINI_BATCH
from core.workspace import Workspace


@dataclass(frozen=True)
class Recipe:
    """Training sources and settings; command-line options override the settings, never the sources."""

    name: str
    description: str
    packages: tuple[str, ...]  # installed Python packages
    trees: tuple[SourceTree, ...]  # other languages' source trees (Debian packages, core/data/source_trees.py)
    excluded_dirs: frozenset[str]  # folder names skipped in every tree, beyond TRAINING_EXCLUDED_DIRS
    languages: tuple[str, ...]
    max_examples: int
    negatives: int
    epochs: int
    batch_size: int
    mini_batch_size: int
    learning_rate: float
    max_seq_length: int
    checkpoint_every: int
    query_generator: str  # "docstring" (the docstring as the query) or "template" (core.training.queries)
    direction: str = "doc2code"  # which side of a pair is the query (core.training.finetune.build_training_set)
    base_weight: float = 0.0  # share of the base model in the saved weights (core.training.finetune.average_with_base)
    chosen_on: str = ""  # which queries the settings were chosen on, recorded with every model the recipe trains

    def record(self) -> dict[str, str]:
        """What a model's record says of the recipe: its name and, when known, the queries its settings were chosen on."""
        return {"recipe": self.name} | ({"recipe_chosen_on": self.chosen_on} if self.chosen_on else {})


# The recipe trains on java.base's public packages (java.*), not the whole JDK the benchmark builder pools: the
# 40,000 examples are drawn uniformly from every pair, and the whole JDK (about 43k documented methods here,
# 2026-12-01) would outnumber all the Python pairs (about 19k) and make most examples Java; java.base's java.* holds 9,348.
# For the same reason it leaves out the Go standard library and the generated Go SDKs (GENERATED_GO_SDK_FOLDERS) that
# setup.sh installs for the size of the --all-sources corpus: about 100,000 Go functions together here (2026-12-02).
_RECIPE_TREES = tuple(replace(tree, members="java.base/java/", origin="apt: openjdk-17-source (java.base only)")
                      if tree.language == "java" else tree for tree in DEBIAN_TREES if tree is not GO_STANDARD_LIBRARY)

BASE_WEIGHT_V2 = 0.45  # chosen on the dev fold, docs/finetuning.md ("code-v2")

_CODE_V1 = Recipe(
    name="code-v1",
    description="doc -> code pairs from 17 Python packages and Debian's Go, JavaScript, Ruby, PHP (and Java) sources, "
                "template search queries, 3 BM25 negatives, 3 epochs",
    packages=("sklearn", "numpy", "networkx", "scipy", "pandas", "matplotlib", "jinja2", "click", "werkzeug",
              "sympy", "requests", "pygments", "docutils", "setuptools", "rich", "urllib3", "pydantic"),
    trees=_RECIPE_TREES, excluded_dirs=GENERATED_GO_SDK_FOLDERS,
    languages=("python", "go", "javascript", "ruby", "php", "java"),
    max_examples=40_000, negatives=3, epochs=3, batch_size=64, mini_batch_size=16, learning_rate=2e-5,
    max_seq_length=128, checkpoint_every=200, query_generator="template",
)

# code-v2 was chosen on the dev fold of the three bundled sets (docs/finetuning.md, "code-v2"): code -> docstring pairs
# with the docstring cut out of the code, docstring hard negatives, large batches, one epoch, then the weights averaged
# with the base model's so that text -> code (cosqa) keeps most of what MiniLM did well. Same sources as code-v1.
_CODE_V2 = replace(
    _CODE_V1, name="code-v2",
    description="code -> docstring pairs (docstring cut out of the code) from the code-v1 sources, 3 BM25 docstring "
                "negatives, batch 256, 1 epoch, weights averaged with the base model's (WiSE-FT)",
    epochs=1, batch_size=256, learning_rate=5e-5, checkpoint_every=20, query_generator="docstring", direction="code2doc",
    base_weight=BASE_WEIGHT_V2,
    chosen_on="the dev fold of csn-python-code2doc, csn-python-code2doc-nodoc and cosqa (core.retrieval.tuning.query_fold "
              "== 0: 94, 94 and 246 queries); the other fold was used for no choice",
)

RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (_CODE_V1, _CODE_V2)}


# The settings a recipe sets, and what training uses where neither a recipe nor an option (a page field) says otherwise.
PLAIN_DEFAULTS = {"max_examples": DEFAULT_MAX_EXAMPLES, "negatives": 3, "epochs": 1, "batch_size": 32, "learning_rate": 2e-5,
                  "max_seq_length": DEFAULT_MAX_SEQ_LENGTH, "mini_batch_size": DEFAULT_MINI_BATCH, "checkpoint_every": None,
                  "queries": "docstring", "direction": "doc2code", "base_weight": 0.0}


def recipe_settings(recipe: Recipe | None) -> dict[str, object]:
    """The recipe's value of each setting in ``PLAIN_DEFAULTS`` (its query generator as ``queries``); the plain ones without one."""
    if recipe is None:
        return dict(PLAIN_DEFAULTS)
    return {key: getattr(recipe, "query_generator" if key == "queries" else key) for key in PLAIN_DEFAULTS}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise WorkbenchError(f"Unknown recipe {name!r}: choose one of {', '.join(RECIPES)}.") from None


def recipe_trees(recipe: Recipe, workspace: Workspace) -> tuple[list[tuple[Path, str]], list[SourceTree]]:
    """(folder, origin) of every source tree of the recipe found here, and the trees that are missing.

    Installed Python packages that are missing are reported too, not refused: the recipe trains on
    what the machine has, and the record says what that was. A zip of sources (the JDK's) is unpacked
    once into ``<workspace>/cache/sources``.
    """
    import importlib.util

    found: list[tuple[Path, str]] = []
    missing: list[SourceTree] = []
    for package in recipe.packages:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if locations:
            found.append((Path(locations[0]), f"pip: {package}"))
        else:
            missing.append(SourceTree("python", package, f"pip: {package}"))
    trees_found, trees_missing = locate_trees(recipe.trees, workspace)
    return found + trees_found, missing + trees_missing
