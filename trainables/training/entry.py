"""The function Ray Tune runs for each trial, in a module that imports nothing heavy.

Tune starts a trial's actor (a process) as soon as resources allow, and when a finished
trial's actor becomes free a moment later it reuses that one and removes the new actor. The
actor imports this module, and unpickles the trial's config, when it is created: with torch,
timm and scikit-learn imported only when the trial first runs (about 7 CPU-seconds on a
2-core machine), an actor removed before that costs little (benchmarks/driver_scale.py).

Example::

    >>> tune.with_resources(run_trial, resources)   # doctest: +SKIP
"""

from __future__ import annotations


def run_trial(config: dict) -> None:
    """The Ray Tune function trainable: ``config`` is ``trial_config(context, lr, ...)``
    (trainables/context.py); the trial itself is trainables/training/trainable.py. The
    actor's process, when Tune stops it, exits without walking its objects
    (trainables/gcfreeze.py)."""
    from trainables.gcfreeze import freeze_at_exit
    from trainables.training.trainable import run_trial as run

    freeze_at_exit()

    run(config)
