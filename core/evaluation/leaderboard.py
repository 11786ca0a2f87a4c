"""The leaderboard's tables: which profiles already have a saved run, metric means, best cells, per-language means.

A saved run stands in for a profile when it was made by the same profile parameters, on the same
corpus, queries, split and depth: evaluating it gives the numbers a fresh run would, without
retrieving again. (Model weights changed behind an unchanged model name are not detected.)
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from core.data.datasets import Dataset
from core.evaluation.metrics import Evaluation, language_groups, leaderboard, slice_means
from core.retrieval.profiles import Profile, profile_to_dict
from core.retrieval.engine import DEFAULT_DEPTH
from core.retrieval.runs import Run, SavedRun

TIME_COLUMN = "ms/query"
RUN_ID_COLUMN = "run id"
QUERIES_COLUMN = "queries"
# cost column -> (key in run.meta["cost"], scale): measured when the run was made (core.retrieval.cost)
COST_COLUMNS = {"build s": ("index_build_seconds", 1.0), "index MB": ("index_bytes", 1 / 2**20),
                "p50 ms": ("latency_ms_p50", 1.0), "p95 ms": ("latency_ms_p95", 1.0), "peak MB": ("peak_memory_mb", 1.0)}
LOWER_IS_BETTER = frozenset({TIME_COLUMN, *COST_COLUMNS})


@dataclass(frozen=True)
class ProfileStatus:
    """Whether a profile can be shown from a saved run or needs retrieving first."""

    profile: str
    saved: SavedRun | None

    @property
    def needs_run(self) -> bool:
        return self.saved is None


def is_current(saved: SavedRun, dataset: Dataset, profile: Profile, depth: int = DEFAULT_DEPTH) -> bool:
    """True when ``saved`` was made by this profile, with these parameters, on this data and depth (and is undamaged)."""
    meta = saved.meta
    return (not saved.damaged and saved.name == profile.name and saved.dataset == dataset.name
            and meta.get("corpus_hash") == dataset.corpus_hash and meta.get("queries_hash") == dataset.queries_hash
            and meta.get("split", dataset.split) == dataset.split and meta.get("depth") == depth
            and dict(saved.profile) == profile_to_dict(profile))


def profile_statuses(dataset: Dataset, profiles: Mapping[str, Profile], names: Sequence[str],
                     saved_runs: Sequence[SavedRun], depth: int = DEFAULT_DEPTH) -> list[ProfileStatus]:
    """Each named profile with its newest current saved run (``saved_runs`` newest first, as list_runs gives them)."""
    statuses = []
    for name in names:
        match = next((s for s in saved_runs if is_current(s, dataset, profiles[name], depth)), None)
        statuses.append(ProfileStatus(name, match))
    return statuses


def with_saved_ids(runs: Sequence[Run], dataset: Dataset, profiles: Mapping[str, Profile],
                   saved_runs: Sequence[SavedRun]) -> list[Run]:
    """Each fresh run carrying the id of its profile's current saved run (newest first), so reports can name it.

    A run computed in memory (a page's cached run, ``evaluate --no-save``) has no id although the same
    profile's run may be saved; a run with no current saved counterpart keeps its own (possibly empty) id.
    """
    out = []
    for run in runs:
        profile = profiles.get(run.name)
        depth = int(run.meta.get("depth", DEFAULT_DEPTH))
        match = None if profile is None or run.run_id else \
            next((s for s in saved_runs if is_current(s, dataset, profile, depth)), None)
        out.append(replace(run, run_id=match.run_id) if match is not None else run)
    return out


def status_table(statuses: Sequence[ProfileStatus]) -> pd.DataFrame:
    """One row per profile: saved run or needs a run, and which saved run."""
    rows = [{"profile": s.profile, "state": "needs a run" if s.needs_run else "saved run",
             RUN_ID_COLUMN: s.saved.run_id if s.saved else "", "created": s.saved.created if s.saved else ""}
            for s in statuses]
    return pd.DataFrame(rows, columns=["profile", "state", RUN_ID_COLUMN, "created"])


def leaderboard_table(runs: Sequence[Run], evaluations: Sequence[Evaluation], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows (labelled, default the run names) x metric means, then ms/query and the saved run id."""
    table = leaderboard(list(evaluations))
    table.index = pd.Index(list(labels) if labels is not None else [r.name for r in runs], name="run", dtype=object)
    table[TIME_COLUMN] = [float(run.meta.get("ms_per_query", math.nan)) for run in runs]
    table[RUN_ID_COLUMN] = [run.run_id for run in runs]
    return table


def cost_columns(runs: Sequence[Run], labels: Sequence[str]) -> pd.DataFrame:
    """Rows (labels) x COST_COLUMNS, NaN where a run carries no cost (imported runs, runs saved before costs)."""
    rows = []
    for run in runs:
        cost = run.meta.get("cost") or {}
        row = {}
        for column, (key, scale) in COST_COLUMNS.items():
            value = cost.get(key)
            row[column] = float(value) * scale if isinstance(value, (int, float)) else math.nan
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(list(labels), name="run", dtype=object), columns=list(COST_COLUMNS))


def with_columns(table: pd.DataFrame, *frames: pd.DataFrame) -> pd.DataFrame:
    """``table`` with more columns per row (cost, confidence intervals, ...) inserted before the run id."""
    extra = pd.concat([frame.reindex(table.index) for frame in frames], axis=1) if frames else pd.DataFrame(index=table.index)
    before = [c for c in table.columns if c != RUN_ID_COLUMN]
    return pd.concat([table[before], extra, table[[RUN_ID_COLUMN]]], axis=1)


def quality_latency_points(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One point per row: the metric against single-query latency (p50; ms/query of the batch run when no p50)."""
    cost = table["p50 ms"] if "p50 ms" in table.columns else pd.Series(math.nan, index=table.index)
    latency = cost.fillna(pd.to_numeric(table[TIME_COLUMN], errors="coerce"))
    source = ["p50 single query" if not math.isnan(v) else "ms/query (batch)" for v in cost]
    return pd.DataFrame({"run": list(table.index), metric: table[metric].to_numpy(float),
                         "latency ms": latency.to_numpy(float), "latency": source})


def breakdown_link(label: str, metric: str, run_id: str | None = None) -> dict[str, str]:
    """Query parameters that open the per-query breakdown on one run's metric, worst queries first."""
    params = {"focus": label, "metric": metric}
    if run_id:
        params["runs"] = run_id
    return params


def best_rows(table: pd.DataFrame, columns: Sequence[str]) -> dict[str, list[str]]:
    """Column -> labels of the rows holding its best value (ties all win; lower is better for time)."""
    best: dict[str, list[str]] = {}
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce")
        if values.notna().sum() == 0:
            best[column] = []
            continue
        target = values.min() if column in LOWER_IS_BETTER else values.max()
        best[column] = [label for label, value in values.items() if abs(value - target) <= 1e-12]
    return best


def language_table(dataset: Dataset, evaluations: Sequence[Evaluation], metric: str,
                   labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows = query language, columns = one metric's mean per run, then the number of queries per language."""
    groups = language_groups(dataset)
    labels = list(labels) if labels is not None else [e.run_name for e in evaluations]
    columns, counts = {}, None
    for label, evaluation in zip(labels, evaluations):
        means = slice_means(evaluation, groups)
        columns[label] = means[metric]
        counts = means[QUERIES_COLUMN] if counts is None else counts
    table = pd.DataFrame(columns)
    table[QUERIES_COLUMN] = counts.astype(int) if counts is not None else []
    table.index.name = "language"
    return table


def data_fingerprint(dataset: Dataset) -> str:
    """A key that changes when the corpus, the queries or the judgments change (for caching evaluations)."""
    judgments = json.dumps({q: dict(g) for q, g in dataset.qrels.judgments.items()}, sort_keys=True)
    digest = hashlib.sha256(f"{dataset.name}\x1f{dataset.corpus_hash}\x1f{dataset.queries_hash}\x1f{judgments}".encode())
    return digest.hexdigest()


def saved_run_label(run_id: str, name: str) -> str:
    """How an added saved run is named in the table, distinct from a profile of the same name."""
    return f"{name} [{run_id}]"


def saved_runs_table(saved_runs: Sequence[SavedRun], dataset: Dataset) -> pd.DataFrame:
    """Saved runs of a dataset for listing: id, name, kind, when, size, speed, whether its data is current, and damage."""
    rows = []
    for saved in saved_runs:
        meta = saved.meta
        same_data = None  # imported runs carry no data hashes: unknown
        if "corpus_hash" in meta:
            same_data = meta.get("corpus_hash") == dataset.corpus_hash and meta.get("queries_hash") == dataset.queries_hash
        rows.append({RUN_ID_COLUMN: saved.run_id, "name": saved.name, "kind": saved.profile.get("kind", ""),
                     "created": saved.created, "queries": meta.get("queries"), TIME_COLUMN: meta.get("ms_per_query"),
                     "same data": same_data, "damaged": saved.damage})
    return pd.DataFrame(rows, columns=[RUN_ID_COLUMN, "name", "kind", "created", "queries", TIME_COLUMN, "same data", "damaged"])
