"""Named fine-tuning recipes: which source trees make the pairs, and the settings that train on them.

A recipe is what ``python -m core finetune --recipe NAME`` and the Fine-tune page run; every figure a
recipe produces can be rebuilt by that one command, on a CPU or on a GPU.
"""
from __future__ import annotations

import glob
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import WorkbenchError
from core.workspace import Workspace


@dataclass(frozen=True)
class SourceTree:
    """A folder of source code in one language, found on this machine or not."""

    language: str
    pattern: str  # a path or glob; the first existing match is used
    origin: str  # where it comes from, for the user: "pip: numpy", "apt: golang-golang-x-text-dev"

    def locate(self) -> Path | None:
        matches = sorted(glob.glob(self.pattern))
        return Path(matches[0]) if matches else None


@dataclass(frozen=True)
class Recipe:
    """Training sources and settings; command-line options override the settings, never the sources."""

    name: str
    description: str
    packages: tuple[str, ...]  # installed Python packages
    trees: tuple[SourceTree, ...]  # other languages' source trees (Debian packages)
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


# Debian packages holding documented source in the other languages; setup.sh installs them (they install offline
# from the Debian mirror). The JDK's sources (src.zip) need openjdk-17-source, which setup.sh does not install.
DEBIAN_TREES: tuple[SourceTree, ...] = (
    SourceTree("go", "/usr/share/gocode/src", "apt: golang-golang-x-text-dev, golang-github-spf13-cobra-dev, golang-github-sirupsen-logrus-dev"),
    SourceTree("javascript", "/usr/share/nodejs", "apt: node-lodash, node-commander"),
    SourceTree("ruby", "/usr/lib/ruby/[0-9]*.[0-9]*.[0-9]*", "apt: ruby (its standard library)"),
    SourceTree("ruby", "/usr/lib/ruby/vendor_ruby", "apt: ruby-rack, ruby-thor"),
    SourceTree("php", "/usr/share/php", "apt: php-symfony-console, php-guzzlehttp-psr7"),
    SourceTree("java", "/usr/lib/jvm/java-17-openjdk-*/lib/src.zip", "apt: openjdk-17-source (java.base only)"),
)

RECIPES: dict[str, Recipe] = {
    "code-v1": Recipe(
        name="code-v1",
        description="doc -> code pairs from nine Python packages and Debian's Go, JavaScript, Ruby, PHP (and Java) sources, "
                    "template search queries, 3 BM25 negatives, 3 epochs",
        packages=("sklearn", "numpy", "networkx", "scipy", "pandas", "matplotlib", "jinja2", "click", "werkzeug",
                  "sympy", "requests", "pygments", "docutils", "setuptools", "rich", "urllib3", "pydantic"),
        trees=DEBIAN_TREES,
        languages=("python", "go", "javascript", "ruby", "php", "java"),
        max_examples=40_000, negatives=3, epochs=3, batch_size=64, mini_batch_size=16, learning_rate=2e-5,
        max_seq_length=128, checkpoint_every=200, query_generator="template",
    ),
}


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
    for tree in recipe.trees:
        path = tree.locate()
        if path is not None and path.suffix == ".zip":
            path = _unpacked_java_base(path, workspace)
        if path is None or not path.is_dir():
            missing.append(tree)
        else:
            found.append((path, tree.origin))
    return found, missing


def _unpacked_java_base(archive: Path, workspace: Workspace) -> Path | None:
    """The ``java.base`` sources of a JDK src.zip, unpacked once (the whole JDK would dwarf the other languages)."""
    target = workspace.root / "cache" / "sources" / f"jdk-{archive.resolve().parent.parent.name}"
    if target.is_dir():
        return target
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.namelist() if m.startswith("java.base/java/") and m.endswith(".java")]
            tmp = target.with_name(target.name + ".tmp")
            zipped.extractall(tmp, members)
        tmp.rename(target)
    except (OSError, zipfile.BadZipFile):
        return None
    return target
