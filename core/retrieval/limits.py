"""The bounds of every number a user passes (depth, k, pool depth, weights, cutoffs), checked in one place.

The CLI's options, the pages' URL parameters and the engine's arguments all go through ``check_number``,
so ``--depth -5``, ``-k -3`` or ``?k=0`` are refused with the same message instead of scoring nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import OptionError

MAX_DEPTH = 10_000
MAX_CUTOFF = 1_000


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
            return f"{kind} above {self.low:g}" + ("" if math.isinf(self.high) else f" and at most {self.high:,g}")
        return f"{kind} from {self.low:,g}" + (" up" if math.isinf(self.high) else f" to {self.high:,g}")


BOUNDS: dict[str, Bound] = {
    "depth": Bound("depth (documents retrieved per query)", 1, MAX_DEPTH),
    "k": Bound("k (results shown)", 1, MAX_DEPTH),
    "pool": Bound("pool depth (documents reranked)", 1, 1_000),
    "weight": Bound("weight", 0, 1, whole=False),  # a sweep's weight of the first member (the other gets 1 - w)
    "member weight": Bound("member weight", 0, math.inf, whole=False),
    "cutoff": Bound("cutoff k", 1, MAX_CUTOFF),
    "count": Bound("count", 1, math.inf),
    "non-negative count": Bound("count", 0, math.inf),
    "alpha": Bound("alpha (significance level)", 0, 0.5, whole=False, low_open=True),
    "fraction": Bound("threshold", 0, 1, whole=False),
    "rate": Bound("rate", 0, 1, whole=False, low_open=True),
}


def check_number(kind: str, value: object, name: str | None = None) -> int | float:
    """``value`` (a number or its text) as an int or float inside the bounds of ``kind``, else OptionError.

    ``name`` is how the user wrote it (``--depth``, ``?k=``), shown in the message.
    """
    bound = BOUNDS[kind]
    shown = name or bound.label
    text = (value.strip() if isinstance(value, str) else str(value))[:40]
    try:
        number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or (bound.whole and number != int(number)):
        raise OptionError(f"{shown} must be {bound.describe()}, not {text!r}.")
    if number < bound.low or number > bound.high or (bound.low_open and number == bound.low):
        raise OptionError(f"{shown} must be {bound.describe()}, not {text!r}.")
    return int(number) if bound.whole else number


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
