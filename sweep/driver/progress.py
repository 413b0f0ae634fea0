"""Where a sweep stands, in one line: extraction while the cache fills, then trials.

Trials: done / total, studies complete, trials per minute and the time left at that rate
(redrawn in place on a terminal; a plain line every 30 s elsewhere). The rate is this run's
own (trials written since its Tuner started): the costliest modes run first (finetune, then
DVME, then linear), so early in a mixed sweep the estimate errs long, not short.

Extraction's bars are sweep/driver/extraction_progress.py's: that module runs in a Ray actor,
which should not import Ray Tune (this one does) for three small methods.

Example::

    >>> SweepProgress({"s1": 4, "s2": 4}, studies_total=3, complete_before=1).text()   # doctest: +SKIP
    'trials 0/8, studies 1/3 complete, ETA --'
"""

from __future__ import annotations

import time

from ray.tune import Callback

from sweep.driver import console


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class SweepProgress(Callback):
    """A Tune callback that redraws the status line each step; the recorder tells it of
    every trial it writes (:meth:`trial_written`)."""

    def __init__(self, remaining: dict[str, int], studies_total: int, complete_before: int = 0,
                 clock=time.monotonic):
        self.left = dict(remaining)  # study id -> trials still to write
        self.total = sum(remaining.values())
        self.studies_total, self.complete = studies_total, complete_before
        self.done = 0
        self.clock = clock
        self.started = clock()
        self._drawn = -float("inf")

    def trial_written(self, row: dict) -> None:
        self.done += 1
        study = row["study_id"]
        if study in self.left:
            self.left[study] -= 1
            if self.left[study] == 0:
                self.complete += 1
        self.draw(force=self.done == self.total)

    def text(self) -> str:
        elapsed = self.clock() - self.started
        head = f"trials {self.done}/{self.total}, studies {self.complete}/{self.studies_total} complete"
        if not self.done or elapsed <= 0:
            return f"{head}, ETA --, {_duration(elapsed)} so far"
        per_minute = self.done / elapsed * 60
        if self.done >= self.total:
            return f"{head}, {per_minute:.1f} trials/min, done in {_duration(elapsed)}"
        left = (self.total - self.done) / (self.done / elapsed)
        return f"{head}, {per_minute:.1f} trials/min, ETA {_duration(left)}, {_duration(elapsed)} so far"

    def draw(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._drawn >= 1.0:  # a terminal is redrawn at most once a second
            self._drawn = now
            console.status(self.text(), force=force)

    def on_step_end(self, iteration, trials, **info) -> None:
        self.draw()
