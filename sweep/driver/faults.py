"""Whose fault a failed trial is: the machine's (run it again) or the trial's own (record it).

A trial's own errors that trying again cannot mend (a NaN loss, weights of another
architecture) never reach here: the trainable reports them as its last result
(``trial_error``) and the store records them at once. What Tune hands the driver as a trial
*error* is something else: the trial's process or node went away (a killed worker, a reclaimed
spot node, Ray's out-of-memory killer), an object or RPC was lost, or the trainable re-raised
an error that may pass on another try (storage hiccup, memory). Those are faults of the
machine: the trial runs again (from its checkpoint), up to ``--max-failures`` times.

Tune retries such a trial by itself only while it is RUNNING; one that fails while PENDING
(its actor being started or reused on a node that has just gone) is errored at once. The
driver sends it back to its study's searcher instead (``StudySearcher.requeue``), so a lost
node never becomes an error row.

Example::

    >>> from ray.exceptions import ActorUnavailableError
    >>> is_machine_fault(ActorUnavailableError("node gone", b"0" * 16))
    True
    >>> is_machine_fault(KeyError("lr"))
    False
"""

from __future__ import annotations

import logging
import os
from typing import Optional

from ray import cloudpickle
from ray import exceptions as rx

from trainables.errors import ERROR_CHARS, error_line

log = logging.getLogger(__name__)

# Raised by Ray when a process, node, object or connection went away: nothing the trial did.
MACHINE = (
    rx.RayActorError,  # ActorDiedError, ActorUnavailableError: the trial's actor or its node
    rx.NodeDiedError,
    rx.WorkerCrashedError,
    rx.LocalRayletDiedError,
    rx.OutOfMemoryError,  # Ray's memory monitor killed the worker
    rx.ObjectLostError,  # OwnerDiedError, ObjectFetchTimedOutError, ...
    rx.RaySystemError,
    rx.RpcError,
    rx.TaskPlacementGroupRemoved,
    rx.ActorPlacementGroupRemoved,
    rx.GetTimeoutError,
)
# Re-raised by the trainable on purpose (trainables/training/trainable.py): may pass on another try.
TRANSIENT = (OSError, MemoryError)


def _cause(exc: BaseException) -> BaseException:
    """The exception inside Ray's wrapper (a RayTaskError carries the trial's own as cause)."""
    return getattr(exc, "cause", None) or exc


def is_machine_fault(exc: Optional[BaseException]) -> bool:
    """True for a failure that running the trial again may not meet: a lost process, node,
    object or connection, or an error the trainable re-raises to be retried. An unknown
    failure (no error recorded) counts as the machine's too: retrying costs one attempt."""
    if exc is None:
        return True
    cause = _cause(exc)
    if isinstance(exc, MACHINE) or isinstance(cause, MACHINE) or isinstance(cause, TRANSIENT):
        return True
    try:
        import torch

        return isinstance(cause, torch.cuda.OutOfMemoryError)
    except ImportError:  # pragma: no cover - torch is a dependency
        return False


def trial_failure(trial) -> Optional[BaseException]:
    """The exception Tune recorded for a failed trial (its pickled error file), or None."""
    path = getattr(trial, "pickled_error_file", None)
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            return cloudpickle.load(f)
    except Exception as exc:  # the row matters more than the message: never lose it here
        log.warning("could not read the error of trial %s: %s", trial.trial_id, exc)
        return None


def failure_text(trial, exc: Optional[BaseException]) -> str:
    """``Type: message`` of the failure (Ray's wrapper taken off), or the last line Tune wrote."""
    if exc is not None:
        return error_line(_cause(exc))
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        with open(path, errors="replace") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        if lines:
            return lines[-1][:ERROR_CHARS]
    return "trial failed (no error text recorded)"
