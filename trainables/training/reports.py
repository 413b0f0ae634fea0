"""What a trial reports to Ray Tune each epoch, and how the driver reads it back.

Tune keeps running statistics of every number in every result (maximum, minimum, mean, the
means of the last 5 and 10, each deque of them), copies them into each result's bookkeeping
and writes them all, through its pure-Python JSON encoder, into the experiment state when the
Tuner ends: about 17 numbers a result cost the demo's driver 21 ms a trial in that state alone.
So a trial reports as numbers only what Tune's scheduler (ASHA) and searcher (Optuna) read: its
epoch, the epoch's validation score and the best so far, and its error where it failed. The
rest of the epoch's record (losses, the selected epoch's test score, memory, wall time, where
it ran) travels as one JSON text beside them, which the driver's callbacks read back with
``unpack``: the recorder's rows and histories, and the MLflow runs, see the whole record.

Example::

    >>> unpack(pack({"epoch": 2, "val_score": 0.8, "best_val_score": 0.8, "train_loss": 0.4}))["train_loss"]
    0.4
"""

from __future__ import annotations

import json

TUNE_FIELDS = ("epoch", "val_score", "best_val_score", "trial_error")  # what ASHA and Optuna read
DETAIL = "detail"  # the rest of the record, as JSON text (Tune tracks no text)


def pack(record: dict) -> dict:
    """The result a trial hands to ``tune.report``."""
    result = {k: record[k] for k in TUNE_FIELDS if k in record}
    # NaN (a test score where test labels are hidden) goes as JSON's NaN and comes back as one.
    result[DETAIL] = json.dumps({k: v for k, v in record.items() if k not in TUNE_FIELDS})
    return result


def unpack(result: dict) -> dict:
    """A result as Tune gives it to the driver (its own fields added), with the trial's whole
    record back in it; a result without a detail (Tune's own, on an error) as it is."""
    if DETAIL not in result:
        return dict(result)
    detail = json.loads(result[DETAIL])
    return {**{k: v for k, v in result.items() if k != DETAIL}, **detail}
