"""`sweep slurm`'s script on a real SLURM (tests/slurmd.py: munged, slurmctld and slurmd on this
machine): the demo's linear S part submitted with sbatch completes into its store; submitted
again and requeued while trials are in flight, it resumes into the same store, each trial once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from sweep.grids import load_grid
from sweep.launch.nodes import process_state
from sweep.store.store import ResultsStore
from trainables.training.reports import rung_epochs
from tests.faults import checkpoint_epochs, in_flight, recorded
from tests.slurmd import SlurmOnThisMachine, missing

pytestmark = pytest.mark.slow

SWEEP = os.path.join(os.path.dirname(sys.executable), "sweep")
STUDIES, TRIALS_EACH = 10, 4  # the demo's linear S: 2 backbones x 5 folds, 4 learning rates each


def _last_rung() -> int:
    """The demo linear trials' last report before their last epoch (ASHA's last rung)."""
    study = next(s for s in load_grid("demo") if s.mode == "linear")
    return max(rung_epochs(study.max_epochs, study.grace_period, study.reduction_factor))


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    why = missing()
    if why:
        pytest.skip(why)
    with SlurmOnThisMachine(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


def _script(tmp_path, results) -> str:
    out = str(tmp_path / "demo.sbatch")
    subprocess.run([SWEEP, "slurm", "--grid", "demo", "--where", "mode=linear", "--where", "subset=S",
                    "--results", str(results), "--checkpoint-every", "0", "--nodes", "1", "--gpus-per-node", "0",
                    "--cpus-per-node", str(os.cpu_count()), "--time", "00:30:00", "--out", out],
                   check=True, capture_output=True, text=True)
    return out


def _complete_once(results) -> list[dict]:
    rows = ResultsStore(str(results)).read_trials().to_pylist()
    keys = [(r["study_id"], r["trial_id"]) for r in rows]
    assert len(keys) == len(set(keys)) == STUDIES * TRIALS_EACH, "a trial recorded twice, or missing"
    assert set(Counter(r["study_id"] for r in rows).values()) == {TRIALS_EACH} and len({k[0] for k in keys}) == STUDIES
    assert all(r["status"] == "ok" for r in rows)
    return rows


def test_a_sweep_submitted_to_slurm_completes_into_its_store(slurm, tmp_path):
    results = tmp_path / "results"
    started = time.monotonic()
    job = slurm.submit(_script(tmp_path, results))
    fields = slurm.wait(job, "COMPLETED")
    print(f"slurm job {job} completed in {time.monotonic() - started:.0f} s")
    assert fields["ExitCode"] == "0:0" and fields["Restarts"] == "0"
    _complete_once(results)
    log = open(fields["StdOut"]).read()
    assert f"medsweep: job {job} run 0" in log and "--resume" not in log
    assert f"{STUDIES} studies (0 already complete), {STUDIES * TRIALS_EACH} trials" in log


def _job_processes(job: str) -> dict[int, str]:
    """pid -> state (R, S, D, T, Z, ...) of every process of the job: those whose environment
    holds its SLURM_JOB_ID (the batch script, srun, Ray's daemons and workers: all inherit it)."""
    mark = f"SLURM_JOB_ID={job}".encode()
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue  # ended meanwhile
        state = process_state(int(pid))
        if state is not None:
            out[int(pid)] = state
    return out


def _settled(job: str, results: str, timeout: float = 60) -> dict[str, int]:
    """The trials in flight once every process of the suspended job has stopped: slurmd stops
    them after scontrol suspend returns, and until the last one has, a trial may write one
    more checkpoint, or its row. (Waiting for the store to stop changing for a second was not
    enough: a loaded machine can take longer than that between two checkpoints.)"""
    deadline = time.monotonic() + timeout
    while True:
        states = _job_processes(job)
        if states and all(s in "TtZX" for s in states.values()):
            return in_flight(ResultsStore(results))
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} suspended, but not all its processes stopped: {states}")
        time.sleep(0.2)


def _suspend_with_trials_in_flight(slurm, job: str, results: str, timeout: float = 600) -> dict[str, int]:
    """Suspend the job (SIGSTOP to all its processes: nothing moves) at a moment some trial has a
    checkpoint, no row, and a rung's report still ahead of it, and say which; resumed and tried
    again while none has. (The report ahead matters: requeueing a suspended job sends SIGCONT
    before SIGTERM, and in between a trial trains on up to its next report, where it waits on
    the driver, which is being killed; so it cannot finish, and stays in flight.)"""
    ahead = _last_rung()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(epoch < ahead for epoch in in_flight(ResultsStore(results)).values()):
            slurm.run("scontrol", "suspend", job)
            caught = {trial: epoch for trial, epoch in _settled(job, results).items() if epoch < ahead}
            if caught:
                return caught
            slurm.run("scontrol", "resume", job)
        assert slurm.job(job)["JobState"] in ("PENDING", "RUNNING"), "the job ended before a trial was caught in flight"
        time.sleep(0.2)
    raise AssertionError(f"no trial with a checkpoint in flight within {timeout:.0f} s")


def _ended(job: str, timeout: float = 120) -> None:
    """Wait until no process of the job is left (a requeued job turns PENDING while slurmd may
    still be ending its processes)."""
    deadline = time.monotonic() + timeout
    while _job_processes(job):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} requeued, but its processes still run: {_job_processes(job)}")
        time.sleep(0.2)


def test_a_requeued_sweep_resumes_every_unfinished_trial_into_the_same_store(slurm, tmp_path):
    results = str(tmp_path / "results")
    started = time.monotonic()
    job = slurm.submit(_script(tmp_path, results))
    caught = _suspend_with_trials_in_flight(slurm, job, results)
    done_before = len(recorded(ResultsStore(results)))
    slurm.run("scontrol", "requeue", job)  # as a preemption or the script's own trap does
    slurm.wait(job, "PENDING", timeout=120)
    _ended(job)
    # What the next run resumes from: each trial's last checkpoint when its process ended, which
    # may be an epoch past the one caught (trained between SIGCONT and SIGTERM).
    store = ResultsStore(results)
    at_requeue = checkpoint_epochs(store, in_flight(store))
    assert set(caught) <= set(at_requeue) and all(at_requeue[t] >= e for t, e in caught.items()), (caught, at_requeue)
    # A job requeued while suspended is held, and SLURM holds any requeued job back two
    # minutes: the test lets it start at once.
    slurm.run("scontrol", "release", job, check=False)
    slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now")
    fields = slurm.wait(job, "COMPLETED")
    print(f"slurm job {job}: requeued with trial(s) {caught} in flight at the suspend, {at_requeue} when it ended, "
          f"and {done_before} recorded; "
          f"completed after {time.monotonic() - started:.0f} s")
    assert fields["Restarts"] == "1" and fields["ExitCode"] == "0:0"
    rows = {r["trial_id"]: r for r in _complete_once(results)}
    # The trials in flight at the requeue went on from their checkpoints, under their own ids.
    for trial, epoch in at_requeue.items():
        assert rows[trial]["resumed_from_epoch"] == epoch, (trial, epoch, rows[trial]["resumed_from_epoch"])
    log = open(fields["StdOut"]).read()
    assert f"medsweep: job {job} run 0" in log and f"medsweep: job {job} run 1" in log
    second = log[log.index(f"medsweep: job {job} run 1"):]
    assert "--resume" in second.splitlines()[0] and "already complete" in second
