"""Complementarity of profiles: which queries each solves that the others do not, and what fusing them could reach.

A query is *solved* by a profile when the profile's value of a metric is above zero (hit@k: a relevant
document in its top k). The **oracle** picks, per query, the best member's value: no fusion of the
members can beat it query by query, so ``oracle - best fusion`` is what fusion leaves on the table.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from core.errors import MetricError
from core.evaluation.metrics import Evaluation, parse_metric
from core.retrieval.profiles import HybridProfile, Profile

ALL = "all"
NONE = "none"


@dataclass(frozen=True)
class Group:
    """A set of queries named by who solves them: one profile only, all of them, none, or a combination."""

    label: str
    query_ids: tuple[str, ...]

    @property
    def queries(self) -> int:
        return len(self.query_ids)


@dataclass(frozen=True, eq=False)  # holds a DataFrame: compares by identity
class Complementarity:
    """Per query and profile, whether the profile solves the query (``solved``: queries x profiles, bool)."""

    metric: str
    solved: pd.DataFrame

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(self.solved.columns)

    def _ids(self, mask: pd.Series) -> tuple[str, ...]:
        return tuple(str(q) for q in self.solved.index[mask.to_numpy()])

    def only(self, profile: str) -> Group:
        """Queries ``profile`` solves and no other profile does."""
        others = self.solved.drop(columns=[profile]).any(axis=1)
        return Group(f"{profile} only", self._ids(self.solved[profile] & ~others))

    def by_all(self) -> Group:
        return Group(f"all {len(self.profiles)}", self._ids(self.solved.all(axis=1)))

    def by_none(self) -> Group:
        return Group(NONE, self._ids(~self.solved.any(axis=1)))

    def summary(self) -> list[Group]:
        """Each profile's queries solved by it alone, then those all solve, then those none solves."""
        return [*(self.only(p) for p in self.profiles), self.by_all(), self.by_none()]

    def intersections(self) -> pd.DataFrame:
        """UpSet rows: one per combination of solving profiles that occurs, largest first.

        Columns: one bool per profile (whether it solves the combination's queries), ``queries`` and
        ``query_ids``; the combination no profile solves is included (all False) when it occurs.
        """
        columns = list(self.profiles)
        keyed = self.solved.copy()
        keyed["query_ids"] = [str(q) for q in self.solved.index]
        grouped = keyed.groupby(columns, sort=False)["query_ids"].agg(tuple).reset_index()
        grouped["queries"] = grouped["query_ids"].map(len)
        members = grouped[columns].sum(axis=1)
        grouped = grouped.assign(_members=members).sort_values(["queries", "_members"], ascending=[False, True], kind="stable")
        return grouped.drop(columns="_members").reset_index(drop=True)[[*columns, "queries", "query_ids"]]


def _aligned(evaluations: Sequence[Evaluation], metric: str) -> pd.DataFrame:
    """queries x run-name frame of one metric; refuses runs evaluated on other queries or without the metric."""
    if not evaluations:
        raise MetricError("Pick at least one profile.")
    key = parse_metric(metric).key
    names = [e.run_name for e in evaluations]
    if len(set(names)) < len(names):
        raise MetricError(f"Profiles appear twice: {', '.join(names)}. Pick each once.")
    index = evaluations[0].per_query.index
    columns = {}
    for evaluation in evaluations:
        if key not in evaluation.per_query.columns:
            raise MetricError(f"Run {evaluation.run_name!r} was not evaluated on {key}.")
        if not evaluation.per_query.index.equals(index):
            raise MetricError(f"Run {evaluation.run_name!r} was evaluated on other queries than {evaluations[0].run_name!r}: "
                              "compare runs on the same dataset and qrels.")
        columns[evaluation.run_name] = evaluation.per_query[key].to_numpy(dtype=float)
    return pd.DataFrame(columns, index=index)


def complementarity(evaluations: Sequence[Evaluation], metric: str = "hit@10") -> Complementarity:
    """Which queries each of two or more runs solves (metric value above 0), on the same queries."""
    if len(evaluations) < 2:
        raise MetricError("Complementarity needs two or more profiles: pick another one.")
    values = _aligned(evaluations, metric)
    return Complementarity(parse_metric(metric).key, values > 0)


def oracle_per_query(evaluations: Sequence[Evaluation], metric: str) -> pd.Series:
    """Per query, the best value any of the runs reaches on ``metric`` (the oracle that picks the right run each time)."""
    return _aligned(evaluations, metric).max(axis=1).rename("oracle")


@dataclass(frozen=True)
class OracleComparison:
    """Members' means, the oracle's, the fusions' and what the best fusion leaves on the table."""

    metric: str
    members: tuple[tuple[str, float], ...]
    oracle: float
    fusions: tuple[tuple[str, float], ...]

    @property
    def best_member(self) -> tuple[str, float]:
        return max(self.members, key=lambda item: item[1])

    @property
    def best_fusion(self) -> tuple[str, float] | None:
        return max(self.fusions, key=lambda item: item[1]) if self.fusions else None

    @property
    def left_on_the_table(self) -> float | None:
        """Oracle minus the best fusion's mean (None without a fusion)."""
        best = self.best_fusion
        return None if best is None else self.oracle - best[1]

    def frame(self) -> pd.DataFrame:
        """One row per member, fusion and the oracle: kind and mean, then the gap to the oracle."""
        rows = [(name, "member", mean) for name, mean in self.members]
        rows += [(name, "fusion", mean) for name, mean in self.fusions]
        rows.append(("oracle", "upper bound", self.oracle))
        frame = pd.DataFrame(rows, columns=["run", "kind", self.metric]).set_index("run")
        frame["oracle − run"] = self.oracle - frame[self.metric]
        return frame


def oracle_comparison(members: Sequence[Evaluation], fusions: Sequence[Evaluation], metric: str) -> OracleComparison:
    """The oracle over ``members`` beside each member's and each fusion's mean of ``metric``."""
    key = parse_metric(metric).key
    oracle = float(oracle_per_query(members, key).mean())
    _aligned([*members, *[f for f in fusions if f.run_name not in {m.run_name for m in members}]], key)  # same queries
    return OracleComparison(key, _means(members, key), oracle, _means(fusions, key))


def _means(evaluations: Sequence[Evaluation], key: str) -> tuple[tuple[str, float], ...]:
    return tuple((e.run_name, float(e.per_query[key].mean())) for e in evaluations)


def fusions_of(profiles: Mapping[str, Profile], members: Sequence[str]) -> list[str]:
    """Hybrid profiles whose members are all among ``members`` (the fusions the oracle bounds), in profile order."""
    chosen = set(members)
    return [name for name, profile in profiles.items()
            if isinstance(profile, HybridProfile) and name not in chosen and set(profile.members) <= chosen]


def weighted_fusions_of(profiles: Mapping[str, Profile], members: Sequence[str]) -> list[str]:
    """Two-member weighted hybrids over ``members``: the ones a weight sweep can vary."""
    return [name for name in fusions_of(profiles, members)
            if profiles[name].method == "weighted" and len(profiles[name].members) == 2]

