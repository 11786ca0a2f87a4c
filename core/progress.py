"""Progress reporting for long jobs: a callback ``report(stage, fraction)`` that any layer can take."""
from __future__ import annotations

import sys
from collections.abc import Callable

Progress = Callable[[str, float], None]


def tqdm_progress() -> Progress:
    """An Engine progress callback drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def report(stage: str, fraction: float) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=100, desc=stage, unit="%", file=sys.stderr, leave=True)
        bar.n = int(round(fraction * 100))
        bar.refresh()
        if fraction >= 1.0:
            bar.close()

    return report
