"""Helpers of the fault tests: find trial processes, freeze them (SIGSTOP) to read a store's
state that nothing can change while it is read, and list the trials in flight.

A fault test waits for a state ("a trial in flight has saved a checkpoint of epoch 1"), never
for a time: it freezes the processes that could move the state on (the driver where it runs
in its own process, the trial processes), reads the state, and strikes only when the state
holds; otherwise it lets them go on and looks again.
"""

from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager

# The title of a process of Tune's function trainables. Ray adds ".train" while Tune's
# train() call waits for a result, but the trial's own thread trains on between those calls:
# every such process may be moving a trial on.
TRIAL_TITLE = b"ray::ImplicitFunc"


def processes_titled(title: bytes = TRIAL_TITLE) -> list[int]:
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if title in f.read():
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def running_trial(pid: int, trial_ids) -> str | None:
    """Which of ``trial_ids`` the trial process ``pid`` runs: Tune works in a directory of the
    trial's own, named after its id (``run_trial_<id>_...``), and so does the process."""
    try:
        cwd = os.path.basename(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    return next((t for t in trial_ids if f"_{t}_" in cwd), None)


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def children_of(parents) -> list[int]:
    """Processes whose parent is one of ``parents`` (a raylet's: every worker of its node)."""
    parents, out = set(parents), []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if parent(int(entry)) in parents:
                out.append(int(entry))
        except (OSError, ValueError):
            continue
    return out


@contextmanager
def frozen(pids: list[int]):
    """The processes stopped (SIGSTOP) inside the block, continued after it; those that are
    gone (or killed inside the block) are skipped."""
    stopped = []
    try:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            except ProcessLookupError:
                continue
        yield stopped
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def recorded(store) -> set[str]:
    """Trial ids with a row file in the store."""
    return {f[: -len(".parquet")] for _, _, files in os.walk(store.trials_dir) for f in files
            if f.endswith(".parquet") and not f.startswith(".")}


def in_flight(store) -> dict[str, int]:
    """trial id -> epoch of its checkpoint, for every trial with a checkpoint and no row."""
    done, out = recorded(store), {}
    for folder, _, files in os.walk(store.checkpoints_dir):
        for name in files:
            if name.endswith(".json") and not name.startswith(".") and name[: -len(".json")] not in done:
                try:
                    with open(os.path.join(folder, name)) as f:
                        out[name[: -len(".json")]] = json.load(f)["epoch"]
                except (OSError, ValueError, KeyError):
                    continue  # replaced while read: the next look sees it whole
    return out


def checkpoint_epochs(store, trial_ids) -> dict[str, int]:
    """trial id -> the epoch of its checkpoint's .pt, the file a resumed trial goes on from.
    Read once the trial's process is dead: the .json may lag one checkpoint behind (a process
    killed between the two writes), the .pt never."""
    from trainables.training.checkpoints import load_checkpoint

    out = {}
    for folder, _, files in os.walk(store.checkpoints_dir):
        for trial_id in trial_ids:
            if f"{trial_id}.pt" in files:
                checkpoint = load_checkpoint(store.checkpoints_dir, os.path.basename(folder), trial_id)
                if checkpoint is not None:
                    out[trial_id] = checkpoint["meta"]["epoch"]
    return out
