"""The bounds of every number a user passes (depth, k, pool depth, weights, cutoffs, seeds, Ray sizes), checked in one place.

The CLI's options, the pages' URL parameters and the engine's arguments all go through ``check_number``,
so ``--depth -5``, ``-k -3`` or ``?k=0`` are refused with the same message instead of scoring nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import OptionError

MAX_DEPTH = 10_000
MAX_CUTOFF = 1_000
MAX_COUNT = 2**31 - 1
MAX_RESAMPLES = 100_000  # the bootstrap holds resamples x queries counts: 100,000 x 1,000 queries is 0.8 GB an array


@dataclass(frozen=True)
class Bound:
    """What a number means to the user, its range, and whether it must be whole."""

    label: str
    low: float
    high: float
    whole: bool = True
    low_open: bool = False  # True: the value must be strictly greater than ``low``

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        if self.low_open:
            return f"{kind} above {_shown(self.low)}" + ("" if math.isinf(self.high) else f" and at most {_shown(self.high)}")
        return f"{kind} from {_shown(self.low)}" + (" up" if math.isinf(self.high) else f" to {_shown(self.high)}")


def _shown(bound: float) -> str:
    return f"{bound:,}" if isinstance(bound, int) else f"{bound:,g}"


BOUNDS: dict[str, Bound] = {
    "depth": Bound("depth (documents retrieved per query)", 1, MAX_DEPTH),
    "k": Bound("k (results shown)", 1, MAX_DEPTH),
    "pool": Bound("pool depth (documents reranked)", 1, 1_000),
    "weight": Bound("weight", 0, 1, whole=False),  # a sweep's weight of the first member (the other gets 1 - w)
    "member weight": Bound("member weight", 0, math.inf, whole=False),
    "rrf k": Bound("rrf k", 0, math.inf, whole=False),  # a hybrid's RRF constant
    "cutoff": Bound("cutoff k", 1, MAX_CUTOFF),
    # counts (epochs, threads, batch size, ...) reach torch and numpy, which take no more than a C int
    "count": Bound("count", 1, MAX_COUNT),
    "non-negative count": Bound("count", 0, MAX_COUNT),
    "alpha": Bound("alpha (significance level)", 0, 0.5, whole=False, low_open=True),
    "fraction": Bound("threshold", 0, 1, whole=False),
    "rate": Bound("rate", 0, 1, whole=False, low_open=True),
    "base weight": Bound("base weight (the base model's share of the saved weights)", 0, 0.99, whole=False),
    "seed": Bound("seed", -(2**63), 2**64 - 1),  # what torch.manual_seed accepts; numpy_seed maps it for numpy
    "resamples": Bound("bootstrap resamples", 1, MAX_RESAMPLES),
    "actors": Bound("actors", 1, 10_000),
    "cpus": Bound("CPUs per actor", 0, 1_024, whole=False, low_open=True),
    "gpus": Bound("GPUs per actor", 0, 64, whole=False),
    "validate k": Bound("validate k", 0, MAX_DEPTH),  # 0: keep every generated query
}


def numpy_seed(seed: int) -> int:
    """A seed from -2**63 to 2**64 - 1 as numpy takes it (non-negative): ``seed mod 2**64``, so -5 draws as 2**64 - 5."""
    return seed % 2**64


def check_number(kind: str, value: object, name: str | None = None) -> int | float:
    """``value`` (a number or its text) as an int or float inside the bounds of ``kind``, else OptionError.

    ``name`` is how the user wrote it (``--depth``, ``?k=``), shown in the message.
    """
    bound = BOUNDS[kind]
    shown = name or bound.label
    text = (value.strip() if isinstance(value, str) else str(value))[:40]
    number = _as_number(value)
    refused = OptionError(f"{shown} must be {bound.describe()}, not {text!r}.")
    if isinstance(value, bool) or (isinstance(number, float) and (not math.isfinite(number) or (bound.whole and number != int(number)))):
        raise refused
    if isinstance(number, float) and bound.whole:
        number = int(number)
    if number < bound.low or number > bound.high or (bound.low_open and number == bound.low):
        raise refused
    return number if bound.whole else float(number)


def _as_number(value: object) -> int | float:
    """An int kept exact (a seed of 2**63 + 1 must not round), else a float; NaN when it is neither.

    Integers too large for a float (``-k 1e400`` written out) compare as ints, so they are refused by the
    bounds instead of raising OverflowError.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    try:
        return float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan


def parse_cutoffs(text: str, name: str = "cutoff k") -> tuple[list[int], list[str]]:
    """Comma-separated cutoffs: the valid ones (in order, once each) and a message for each refused one."""
    cutoffs: list[int] = []
    refused: list[str] = []
    for raw in (text or "").split(","):
        if not raw.strip():
            continue
        try:
            cutoff = check_number("cutoff", raw, name)
        except OptionError as exc:
            refused.append(str(exc))
            continue
        if cutoff not in cutoffs:
            cutoffs.append(cutoff)
    return cutoffs, refused
