"""From source trees to mined training examples: the steps ``finetune`` on the command line and the Fine-tune page share.

Each step says what it found through ``report``, one line of plain text at a time: the command line prints
the lines, the page writes them into its status box. Long steps also drive ``progress`` (tqdm bars on the
command line, a progress bar on the page).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.data.datasets import Dataset
from core.data.source_trees import SourceTree
from core.errors import WorkbenchError
from core.progress import Progress
from core.training.finetune import (DEFAULT_MODEL, TRAINING_EXCLUDED_DIRS, MiningMethod, TrainingData, TrainingExample,
                                    build_training_set, package_roots, sample_and_mine)
from core.training.recipes import Recipe, recipe_trees
from core.workspace import Workspace

Report = Callable[[str], None]


def _silent(line: str) -> None:
    """The default report: say nothing."""


@dataclass(frozen=True)
class TrainingSources:
    """The source trees pairs are built from, their languages, the folder names skipped, and what a recipe missed."""

    roots: tuple[Path, ...]
    languages: tuple[str, ...] = ("python",)
    exclude_dirs: frozenset[str] = TRAINING_EXCLUDED_DIRS
    missing: tuple[SourceTree, ...] = ()  # a recipe's trees not found on this machine: reported, not refused

    @classmethod
    def of_recipe(cls, recipe: Recipe, workspace: Workspace) -> TrainingSources:
        found, missing = recipe_trees(recipe, workspace)
        return cls(tuple(path for path, _ in found), recipe.languages, TRAINING_EXCLUDED_DIRS | recipe.excluded_dirs, tuple(missing))

    @classmethod
    def of_packages(cls, packages: Iterable[str]) -> TrainingSources:
        """Installed Python packages, by import name."""
        return cls(tuple(package_roots(packages)))

    @classmethod
    def of_folders(cls, folders: Iterable[str | Path]) -> TrainingSources:
        """Source trees on disk (Python functions)."""
        return cls(tuple(Path(folder) for folder in folders))


def check_queries_fit_direction(direction: str, queries: str) -> None:
    """Refuse generated queries for code -> docstring pairs before any work: a generator writes text queries for code."""
    if direction != "doc2code" and queries != "docstring":
        raise WorkbenchError(f"{queries!r} queries are written for docstring -> code pairs, and these pairs are {direction} "
                             "(the code is the query): choose docstring queries, or doc2code pairs.")


def training_report(training: TrainingData) -> list[str]:
    """What building a training set found: leakage per eval set and kind, functions per language, generated queries, size."""
    lines = []
    for summary in training.leakage:
        found = ", ".join(f"{kind} {count}" for kind, count in [*summary.counts.items(), *summary.text_counts.items()] if count)
        lines.append(f"leakage vs {summary.eval}: {found or 'none'}; dropped {summary.dropped_train_queries} training queries, "
                     f"{summary.dropped_train_documents} corpus documents")
    if training.languages:
        lines.append("functions per language: " + ", ".join(f"{lang} {n:,}" for lang, n in training.languages.items()))
    if training.queries.get("generator", "docstring") != "docstring":
        q = training.queries
        lines.append(f"queries ({q['generator']}): {q['candidates']:,} generated for {q['functions']:,} functions, "
                     f"{q['validated']:,} found their function in BM25's top {q['validation']['k']}, {q['kept_queries']:,} kept")
    lines.append(f"training set {training.dataset.name}: {len(training.dataset.judged_queries):,} queries, "
                 f"{len(training.dataset.documents):,} documents")
    return lines


def mine_examples(training: TrainingData, workspace: Workspace, max_examples: int | None, negatives: int = 3,
                  mining: MiningMethod = "bm25", skip_top: int = 0, *, seed: int = 42, model: str = DEFAULT_MODEL,
                  report: Report = _silent, progress: Progress | None = None) -> tuple[list[TrainingExample], dict[str, object]]:
    """``sample_and_mine``, saying what it mined."""
    for line in training_report(training):
        report(line)
    to_mine = min(max_examples or len(training.dataset.judged_queries), len(training.dataset.judged_queries))
    report(f"mining {negatives} hard negatives for {to_mine:,} examples ({mining})…")
    examples, data = sample_and_mine(training, workspace, max_examples, negatives, mining, skip_top, seed=seed, model=model,
                                     progress=progress)
    report(f"mined {data['mining']['mined']:,} hard negatives for {len(examples):,} examples ({mining})")
    return examples, data


def build_from_sources(sources: TrainingSources, evals: Sequence[Dataset], workspace: Workspace, *, name: str,
                       direction: str = "doc2code", generator=None, validate_k: int = 10, seed: int = 42,
                       report: Report = _silent, progress: Progress | None = None) -> TrainingData:
    """``build_training_set`` on ``sources`` (pairs, generated queries, the leakage audit), saying which trees were missing.

    ``generator`` is a query generator (``core.training.queries.make_generator``; None keeps the docstrings).
    """
    for tree in sources.missing:
        report(f"no {tree.language} sources at {tree.pattern} ({tree.origin}); going on without them")
    return build_training_set(sources.roots, evals, name=name, direction=direction, seed=seed,
                              exclude_dirs=sources.exclude_dirs, languages=sources.languages, queries=generator,
                              workspace=workspace, validate_k=validate_k, progress=progress)


def prepare_examples(sources: TrainingSources, evals: Sequence[Dataset], workspace: Workspace, *, name: str,
                     direction: str = "doc2code", generator=None, validate_k: int = 10, max_examples: int | None,
                     negatives: int = 3, mining: MiningMethod = "bm25", skip_top: int = 0, seed: int = 42,
                     model: str = DEFAULT_MODEL, report: Report = _silent,
                     progress: Progress | None = None) -> tuple[list[TrainingExample], dict[str, object]]:
    """Build the training pairs from ``sources``, audit them against ``evals``, sample and mine: examples and their record."""
    training = build_from_sources(sources, evals, workspace, name=name, direction=direction, generator=generator,
                                  validate_k=validate_k, seed=seed, report=report, progress=progress)
    return mine_examples(training, workspace, max_examples, negatives, mining, skip_top, seed=seed, model=model,
                         report=report, progress=progress)
