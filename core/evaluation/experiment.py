"""Evaluate several profiles on one dataset: runs, per-query metrics and a leaderboard in one call."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from core.evaluation.metrics import DEFAULT_METRICS, Evaluation, evaluate, leaderboard
from core.retrieval.engine import DEFAULT_DEPTH, Engine
from core.evaluation.manifest import make_saved_run
from core.retrieval.runs import Run, save_run


@dataclass(frozen=True)
class ExperimentResult:
    """Runs and evaluations of several profiles on one dataset, in the order asked for."""

    dataset: str
    runs: tuple[Run, ...]
    evaluations: tuple[Evaluation, ...]

    def table(self) -> pd.DataFrame:
        """Profiles x metric means, with the retrieval time per query."""
        frame = leaderboard(list(self.evaluations))
        frame["ms/query"] = [run.meta.get("ms_per_query", float("nan")) for run in self.runs]
        return frame


def run_experiment(engine: Engine, profile_names: Sequence[str], metrics: Sequence[str] = DEFAULT_METRICS,
                   depth: int = DEFAULT_DEPTH, save: bool = True,
                   on_profile: Callable[[str, int, int], None] | None = None,
                   runner: Callable[[str, int], Run] | None = None) -> ExperimentResult:
    """Run and evaluate each profile over the dataset's judged queries; save the runs when asked.

    Saved runs carry their cost and manifest (``core.evaluation.manifest.make_saved_run``): their indexes are
    opened inside the measurement, so peak memory includes building or loading them. ``runner(name, depth)``
    replaces ``engine.run`` (core.retrieval.scale.run_with_ray splits a run into Ray tasks); such runs are
    saved without a cost measurement, which would time the driver alone.
    """
    if not save or runner:
        engine.warm(profile_names)
    runs, evaluations = [], []
    for position, name in enumerate(profile_names):
        if on_profile:
            on_profile(name, position, len(profile_names))
        if runner:
            run = runner(name, depth)
            if save:
                run = save_run(run, engine.workspace.runs_dir)
        else:
            run = make_saved_run(engine, name, depth, metrics) if save else engine.run(name, depth=depth)
        runs.append(run)
        evaluations.append(evaluate(engine.dataset.qrels, run, metrics))
    return ExperimentResult(engine.dataset.name, tuple(runs), tuple(evaluations))
