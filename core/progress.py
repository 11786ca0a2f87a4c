"""Progress reporting for long jobs: each named stage counts n / N items (documents, queries, points) with an ETA.

A progress callback takes one ``Step``. Callbacks written for the older ``report(stage, fraction)``
form still work: ``notify`` calls them with the step's stage and fraction.
"""
from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[..., None]  # report(step: Step), or the older report(stage: str, fraction: float)
ItemProgress = Callable[[str, int, int], None]  # what index builders call: (phase, done, total)


@dataclass(frozen=True)
class Step:
    """Where one stage of a long job stands: ``done`` of ``total`` items after ``seconds``."""

    stage: str
    done: int
    total: int
    unit: str = "documents"
    seconds: float = 0.0

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(max(self.done / self.total, 0.0), 1.0)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far; None until some items are done (or when nothing is left)."""
        if self.done <= 0 or self.done >= self.total or self.seconds <= 0:
            return None
        return self.seconds / self.done * (self.total - self.done)

    def describe(self) -> str:
        """``embedding corpus (minilm): 1,200 / 5,000 documents · ETA 0:42`` (the ETA once it can be estimated)."""
        text = f"{self.stage}: {self.done:,} / {self.total:,} {self.unit}"
        eta = self.eta_seconds
        return f"{text} · ETA {format_seconds(eta)}" if eta is not None else text


def format_seconds(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:03``: minutes and seconds, hours when needed."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _takes_step(callback: Progress) -> bool:
    try:
        parameters = [p for p in inspect.signature(callback).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return True
    return len(parameters) == 1


def notify(callback: Progress | None, step: Step) -> None:
    """Send ``step`` to ``callback`` in the form it takes (a Step, or stage and fraction)."""
    if callback is None:
        return
    if _takes_step(callback):
        callback(step)
    else:
        callback(step.stage, step.fraction)


class StageCounter:
    """Counts one stage for a callback: ``counter(done)`` reports n / N with the time since the stage began."""

    def __init__(self, callback: Progress | None, stage: str, total: int, unit: str = "documents"):
        self.callback, self.stage, self.total, self.unit = callback, stage, total, unit
        self.started = time.perf_counter()

    def __call__(self, done: int) -> None:
        notify(self.callback, Step(self.stage, done, self.total, self.unit, time.perf_counter() - self.started))


def staged(callback: Progress | None, stage_names: dict[str, str], unit: str = "documents") -> ItemProgress | None:
    """An ItemProgress for an index builder: each phase it reports becomes a named stage with its own clock.

    ``stage_names`` maps a builder's phase (``"embed"``, ``"store"``) to the name the user sees; an
    unknown phase is shown as it is.
    """
    if callback is None:
        return None
    counters: dict[str, StageCounter] = {}

    def report(phase: str, done: int, total: int) -> None:
        counter = counters.get(phase)
        if counter is None or counter.total != total:
            counter = counters[phase] = StageCounter(callback, stage_names.get(phase, phase), total, unit)
        counter(done)

    return report


def tqdm_progress() -> Progress:
    """A progress callback drawing one tqdm bar per stage on stderr, counting the stage's items (not percent)."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def report(step: Step) -> None:
        bar = bars.get(step.stage)
        if bar is None or bar.total != step.total:
            bar = bars[step.stage] = tqdm(total=step.total, desc=step.stage, unit=f" {step.unit}", file=sys.stderr,
                                          leave=True, dynamic_ncols=True)
        bar.update(max(step.done - bar.n, 0))
        if step.done >= step.total:
            bar.close()

    return report


def fraction_reporter(callback: Progress | None, stage: str, total: int, unit: str = "documents") -> Callable[[float], None] | None:
    """A ``report(fraction)`` for code that only knows how far it got (a Ray job), counted as n / N ``unit``."""
    if callback is None:
        return None
    counter = StageCounter(callback, stage, total, unit)
    return lambda fraction: counter(round(min(max(fraction, 0.0), 1.0) * total))
