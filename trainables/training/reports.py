"""What a trial reports to Ray Tune, when, and how the driver reads it back.

When: a function trial's thread waits at each report until the driver has taken the result in
and called the trial on (Tune's reporting is synchronous), so each report leaves the trial's
core idle for a round trip through the driver's loop. ASHA reads a trial's validation score
only at its rungs (epochs grace, grace x rf, ...), and Optuna only the trial's best at its end:
a trial reports at its study's rungs, its last epoch, and, when it resumes from a checkpoint,
its first epoch (where ASHA places a resumed trial), which are exactly the results that ASHA
decides on when a trial reports every epoch. Each report carries the records of the epochs
since the one before, so the store's history and the MLflow runs still hold every epoch. On
the demo this cut the reports from 1,145 to 473.

The last report says ``done``: Tune then ends the trial on that result, as it ends one that
ASHA stops, and hands its actor the next trial at once. Without it the driver would call the
trial on once more, only to learn from a second, empty result that its function returned: one
more round trip through the driver's loop for each trial that runs to its last epoch, while
its core waits.

What: Tune keeps running statistics of every number in every result (maximum, minimum, mean,
the means of the last 5 and 10, each deque of them) and writes them all, through its
pure-Python JSON encoder, into its experiment state. So a trial reports as numbers only what
ASHA and Optuna read: its epoch, the epoch's validation score and the best so far, and its
error where it failed. The rest of the record (losses, the selected epoch's test score,
memory, wall time, where it ran) and the earlier epochs travel as one JSON text beside them,
which the driver's callbacks read back with ``records_of`` and ``unpack``.

Example::

    >>> result = pack({"epoch": 4, "val_score": 0.8, "best_val_score": 0.8, "train_loss": 0.4},
    ...               earlier=[{"epoch": 3, "val_score": 0.7, "best_val_score": 0.7, "train_loss": 0.5}])
    >>> [(r["epoch"], r["train_loss"]) for r in records_of(result)]
    [(3, 0.5), (4, 0.4)]
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

import numpy as np

TUNE_FIELDS = ("epoch", "val_score", "best_val_score", "trial_error")  # what ASHA and Optuna read
DONE = "done"  # Tune's field: a result that sets it ends the trial (ray.tune.result.DONE)
DETAIL = "detail"  # the rest of the record, as JSON text (Tune tracks no text)
EARLIER = "earlier"  # within the detail: the records of the epochs since the last report


def rung_epochs(max_epochs: int, grace_period: int, reduction_factor: float) -> tuple[int, ...]:
    """The epochs at which ASHA (one bracket, as sweep/driver/routing.py builds it) compares a
    study's trials: Ray's own arithmetic, float for float, so that no rung is missed."""
    rungs = int(np.log(max_epochs / grace_period) / np.log(reduction_factor) + 1)
    return tuple(sorted(grace_period * reduction_factor ** k for k in range(max(0, rungs))))


def reported(epoch: int, rungs: Sequence[int], max_epochs: int, first_of_resumed: bool) -> bool:
    """Whether a trial reports ``epoch`` (else it keeps the record for its next report)."""
    return epoch in rungs or epoch >= max_epochs or first_of_resumed


def pack(record: dict, earlier: Sequence[dict] = (), final: bool = False) -> dict:
    """The result a trial hands to ``tune.report``: ``record`` (the epoch reported) and the
    records of the epochs between the last report and it. ``final``: the trial's last report
    (its last epoch, or its failure), which says so in Tune's own ``done`` field."""
    result = {k: record[k] for k in TUNE_FIELDS if k in record}
    if final:
        result[DONE] = True
    detail = {k: v for k, v in record.items() if k not in TUNE_FIELDS}
    if earlier:
        detail[EARLIER] = list(earlier)
    # NaN (a test score where test labels are hidden) goes as JSON's NaN and comes back as one.
    result[DETAIL] = json.dumps(detail)
    return result


def unpack(result: dict, detail: Optional[dict] = None) -> dict:
    """The reported epoch's whole record from a result as Tune gives it to the driver (with
    Tune's own fields); a result without a detail (Tune's own, on an error) as it is."""
    if DETAIL not in result:
        return dict(result)
    detail = dict(json.loads(result[DETAIL]) if detail is None else detail)
    detail.pop(EARLIER, None)
    return {**{k: v for k, v in result.items() if k != DETAIL}, **detail}


def records_of(result: dict) -> list[dict]:
    """Every epoch's record a result carries, oldest first: the earlier ones, then its own."""
    if DETAIL not in result:
        return [dict(result)]
    detail = json.loads(result[DETAIL])
    return [*detail.get(EARLIER, []), unpack(result, detail)]
