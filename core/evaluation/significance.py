"""Is one profile really better than another? Paired significance tests over per-query metric values.

As in ranx ``compare`` and PyTerrier ``Experiment``: every pair of runs (or each run against a
baseline) is tested on the same queries with a two-sided paired test, the p-values of the family are
corrected for multiple comparisons, and each run gets the superscript letters of the runs it beats.

- ``randomization``: Fisher's randomization test by sign-flipping the paired differences. With
  ``2**n`` sign patterns at most ``n_permutations`` it enumerates them all (an exact p-value);
  otherwise it samples, and reports ``(hits + 1) / (samples + 1)`` so a p-value is never 0.
- ``t-test``: paired Student's t-test (``scipy.stats.ttest_rel``; 1.0 when every difference is 0).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from core.errors import MetricError
from core.progress import Progress, StageCounter
from core.evaluation.metrics import Evaluation, parse_metric

TESTS = ("randomization", "t-test")
CORRECTIONS = ("holm", "bonferroni", "benjamini-hochberg", "none")
DEFAULT_PERMUTATIONS = 10_000
DEFAULT_SEED = 42
_TIE = 1e-12  # per-query values closer than this are a tie; permuted means this close to the observed one count as extreme
_BLOCK_CELLS = 4_000_000  # sign matrix entries drawn at once (memory stays bounded on large query sets)
_SUPERSCRIPTS = dict(zip("abcdefghijklmnoprstuvwxyz0123456789", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise MetricError(f"Paired tests need two equally long lists of per-query values, not {a.shape} and {b.shape}.")
    if len(a) < 2:
        raise MetricError("A significance test needs at least two queries.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise MetricError("Per-query values contain NaN or infinity: pick a metric, not positive_rank.")
    return a, b


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired Student's t-test of ``b - a`` against 0."""
    a, b = _paired(a, b)
    differences = b - a
    if np.all(np.abs(differences - differences[0]) < _TIE):  # no variance: scipy would return NaN or 0
        return 1.0 if abs(differences[0]) < _TIE else 0.0
    from scipy import stats  # imported here: scipy.stats alone costs a second at every CLI start

    return float(stats.ttest_rel(b, a).pvalue)


def _all_sign_patterns(n: int) -> np.ndarray:
    """Every one of the 2**n vectors of +1/-1, one per row."""
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
    return 1.0 - 2.0 * bits


def randomization_test(a: Sequence[float], b: Sequence[float], n_permutations: int = DEFAULT_PERMUTATIONS,
                       seed: int = DEFAULT_SEED) -> float:
    """Two-sided p-value of Fisher's randomization test: how often flipping the pairs gives as large a mean difference."""
    a, b = _paired(a, b)
    if n_permutations < 1:
        raise MetricError(f"n_permutations is {n_permutations}: use at least 1 (10,000 is usual).")
    differences = b - a
    n = len(differences)
    observed = abs(differences.mean()) - _TIE * max(1.0, abs(differences).max())
    if n < 63 and 2 ** n <= n_permutations:
        means = _all_sign_patterns(n) @ differences / n
        return float(np.mean(np.abs(means) >= observed))
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // n)
    extreme, done = 0, 0
    while done < n_permutations:
        size = min(block, n_permutations - done)
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(size, n), dtype=np.int8)
        extreme += int(np.count_nonzero(np.abs(signs @ differences / n) >= observed))
        done += size
    return (extreme + 1) / (n_permutations + 1)


def bonferroni(p_values: Sequence[float]) -> np.ndarray:
    """Each p-value times the family size, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    return np.minimum(p * len(p), 1.0)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down correction: the i-th smallest p times (m - i + 1), kept non-decreasing, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1.0)
    corrected = np.empty(m)
    corrected[order] = stepped
    return corrected


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg false-discovery-rate adjustment: p * m / rank, kept non-increasing from the top."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    corrected = np.empty(m)
    corrected[order] = stepped
    return corrected


def correct(p_values: Sequence[float], method: str) -> np.ndarray:
    """Corrected p-values of one family of tests (``method`` one of CORRECTIONS)."""
    if method == "holm":
        return holm(p_values)
    if method == "bonferroni":
        return bonferroni(p_values)
    if method == "benjamini-hochberg":
        return benjamini_hochberg(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=float)
    raise MetricError(f"Unknown correction {method!r}: use one of {', '.join(CORRECTIONS)}.")


@dataclass(frozen=True)
class Comparison:
    """Run ``b`` against run ``a`` on one metric; wins, ties and losses are counted from ``b``'s side."""

    a: str
    b: str
    mean_a: float
    mean_b: float
    p_value: float
    corrected_p: float
    significant: bool
    wins: int
    ties: int
    losses: int

    @property
    def delta(self) -> float:
        return self.mean_b - self.mean_a

    @property
    def winner(self) -> str | None:
        """The run that is significantly better, or None."""
        if not self.significant or self.delta == 0:
            return None
        return self.b if self.delta > 0 else self.a


@dataclass(frozen=True)
class ComparisonTable:
    """One family of paired tests on one metric, with the means of every run in the order given."""

    metric: str
    test: str
    correction: str
    alpha: float
    baseline: str | None
    means: tuple[tuple[str, float], ...]
    rows: tuple[Comparison, ...]
    queries: int

    @property
    def run_names(self) -> list[str]:
        return [name for name, _ in self.means]

    def to_frame(self) -> pd.DataFrame:
        """One row per comparison: a, b, means, delta, p, corrected p, significant, wins/ties/losses."""
        columns = ["a", "b", "mean_a", "mean_b", "delta", "p_value", "corrected_p", "significant", "wins", "ties", "losses"]
        rows = [(r.a, r.b, r.mean_a, r.mean_b, r.delta, r.p_value, r.corrected_p, r.significant, r.wins, r.ties, r.losses)
                for r in self.rows]
        return pd.DataFrame(rows, columns=columns)


def _values(evaluations: Sequence[Evaluation], metric: str) -> tuple[list[str], np.ndarray]:
    """Run names and a (runs, queries) matrix of the metric, checking the runs were scored on the same queries."""
    names = [evaluation.run_name for evaluation in evaluations]
    if len(names) < 2:
        raise MetricError("Pick at least two profiles to compare.")
    if len(set(names)) < len(names):
        raise MetricError(f"Two evaluations share a run name ({', '.join(names)}): give each run its own name.")
    reference = evaluations[0].per_query.index
    for evaluation in evaluations:
        if metric not in evaluation.per_query.columns or metric not in evaluation.metrics:
            raise MetricError(f"Run {evaluation.run_name!r} was not evaluated on {metric}: evaluate it on that metric first.")
        if not evaluation.per_query.index.sort_values().equals(reference.sort_values()):
            raise MetricError(f"Run {evaluation.run_name!r} was scored on other queries than {names[0]!r}: "
                              "compare runs evaluated with the same qrels.")
    matrix = np.vstack([evaluation.per_query[metric].reindex(reference).to_numpy(dtype=float) for evaluation in evaluations])
    return names, matrix


def compare_all(evaluations: Sequence[Evaluation], metric: str, baseline: str | None = None, test: str = "randomization",
                correction: str = "holm", alpha: float = 0.05, n_permutations: int = DEFAULT_PERMUTATIONS,
                seed: int = DEFAULT_SEED, progress: Progress | None = None) -> ComparisonTable:
    """Test every pair of runs (or each run against ``baseline``) on ``metric``, corrected as one family.

    ``progress`` hears ``testing significance (metric): n / N comparisons``.
    """
    metric = parse_metric(metric).key
    if test not in TESTS:
        raise MetricError(f"Unknown test {test!r}: use one of {', '.join(TESTS)}.")
    if correction not in CORRECTIONS:
        raise MetricError(f"Unknown correction {correction!r}: use one of {', '.join(CORRECTIONS)}.")
    if not 0.0 < alpha < 1.0:
        raise MetricError(f"alpha is {alpha}: use a significance level between 0 and 1, such as 0.05.")
    names, matrix = _values(evaluations, metric)
    if baseline is not None and baseline not in names:
        raise MetricError(f"Baseline {baseline!r} is not among the compared runs: {', '.join(names)}.")
    if baseline is None:
        pairs = list(combinations(range(len(names)), 2))
    else:
        base = names.index(baseline)
        pairs = [(base, other) for other in range(len(names)) if other != base]
    p_values = []
    counter = StageCounter(progress, f"testing significance ({metric})", len(pairs), "comparisons")
    for i, j in pairs:
        counter(len(p_values))
        if test == "t-test":
            p_values.append(paired_t_test(matrix[i], matrix[j]))
        else:
            p_values.append(randomization_test(matrix[i], matrix[j], n_permutations, seed))
    counter(len(p_values))
    corrected = correct(p_values, correction)
    means = matrix.mean(axis=1)
    rows = []
    for (i, j), p, q in zip(pairs, p_values, corrected):
        differences = matrix[j] - matrix[i]
        rows.append(Comparison(names[i], names[j], float(means[i]), float(means[j]), float(p), float(q), bool(q <= alpha),
                               int(np.sum(differences > _TIE)), int(np.sum(np.abs(differences) <= _TIE)),
                               int(np.sum(differences < -_TIE))))
    return ComparisonTable(metric, test, correction, alpha, baseline, tuple(zip(names, map(float, means))), tuple(rows),
                           matrix.shape[1])


def run_letters(names: Sequence[str]) -> dict[str, str]:
    """Run name -> its marker letter, in order: a, b, ..., z, then a1, b1, ..."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return {name: letters[i % 26] + (str(i // 26) if i >= 26 else "") for i, name in enumerate(names)}


def significance_markers(table: ComparisonTable) -> dict[str, tuple[str, ...]]:
    """Run name -> the runs it significantly beats, in the table's run order (ranx's superscripts)."""
    beaten: dict[str, set[str]] = {name: set() for name in table.run_names}
    for row in table.rows:
        winner = row.winner
        if winner is not None:
            beaten[winner].add(row.a if winner == row.b else row.b)
    return {name: tuple(other for other in table.run_names if other in beaten[name]) for name in table.run_names}


def superscript(letters: str) -> str:
    """Letters and digits as Unicode superscripts (for table cells); characters without one stay as they are."""
    return "".join(_SUPERSCRIPTS.get(c, c) for c in letters)


def marked_leaderboard(table: ComparisonTable) -> pd.DataFrame:
    """One row per run: letter, metric mean, letters of the runs it significantly beats, the mean with them, their names."""
    letters = run_letters(table.run_names)
    markers = significance_markers(table)
    rows = []
    for name, mean in table.means:
        beats = "".join(letters[other] for other in markers[name])
        rows.append((letters[name], name, mean, beats, f"{mean:.4f}{superscript(beats)}", ", ".join(markers[name])))
    frame = pd.DataFrame(rows, columns=["letter", "run", table.metric, "beats", "shown", "beaten"])
    return frame.set_index("run")


def markers_frame(evaluations: Sequence[Evaluation], metrics: Sequence[str], labels: Sequence[str] | None = None,
                  test: str = "randomization", correction: str = "holm", alpha: float = 0.05) -> pd.DataFrame | None:
    """Label x metric -> superscript letters of the rows that row significantly beats (all pairs, one family per metric).

    ``labels`` name the rows (default: the run names) and give the letters, in order: a, b, c ...
    None when fewer than two evaluations are given (nothing to compare).
    """
    labels = list(labels) if labels is not None else [evaluation.run_name for evaluation in evaluations]
    if len(labels) != len(evaluations):
        raise MetricError(f"{len(labels)} labels for {len(evaluations)} evaluations: give one label per evaluation.")
    if len(evaluations) < 2:
        return None
    renamed = [Evaluation(label, evaluation.metrics, evaluation.per_query) for label, evaluation in zip(labels, evaluations)]
    letters = run_letters(labels)
    columns = {}
    for metric in metrics:
        key = parse_metric(metric).key
        markers = significance_markers(compare_all(renamed, key, None, test, correction, alpha))
        columns[key] = [superscript("".join(letters[other] for other in markers[label])) for label in labels]
    return pd.DataFrame(columns, index=pd.Index(labels, dtype=object))
