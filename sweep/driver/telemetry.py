"""Ray Tune's callback census, kept from importing MLflow on the driver of every sweep.

When a Tuner starts with callbacks (medsweep's always has its recorder), Ray Tune records a
usage tag counting them by class. To name the classes it compares against, it imports its
MLflow, Weights & Biases, Comet and Aim integrations, and the MLflow one imports ``mlflow``
itself wherever it is installed (the test extra and ``--mlflow`` install it): 1.3 CPU-s on
the driver's one thread between ``Tuner.fit`` and the first trial actor asked for, while the
machine waits. A profile of the driver found it: from ``Tuner.fit`` to the first actor asked
for, a demo run took 1.4 s with it and 0.07 s without (both profiled).

The tag only counts callbacks for Ray's usage statistics; nothing of a sweep reads it, and
medsweep runs offline. With ``--mlflow`` the census is skipped too: the tracker's callback
imports MLflow when its first trial starts, where it is needed.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def callback_census_skipped():
    """While the Tuner starts: Ray Tune's ``tag_callbacks`` answers "nothing recorded" (False,
    as it does for a Tuner without callbacks) instead of importing its integrations. Tune calls
    it through its module (``air_usage.tag_callbacks``), so replacing the module's function is
    what it calls; a Ray without it is left as it is."""
    try:
        from ray.air._internal import usage
    except ImportError:  # a Ray that moved it: its census runs, and costs what it costs
        yield
        return
    original = getattr(usage, "tag_callbacks", None)
    if original is None:
        yield
        return
    usage.tag_callbacks = lambda callbacks: False
    try:
        yield
    finally:
        usage.tag_callbacks = original
