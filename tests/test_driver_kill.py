"""The driver killed with SIGKILL mid-sweep, then `sweep run --resume`: every study finishes,
no trial row is duplicated, what was finished before the kill is not run again, and trials in
flight resume from their checkpoints."""

import os
import signal
import subprocess
import sys
import time

import pytest

from sweep.store.store import ResultsStore
from tests.faults import checkpoint_epochs, frozen, in_flight as in_flight_now, processes_titled, recorded

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = [sys.executable, "-m", "sweep.cli", "run", "--grid", "demo", "--where", "mode=linear", "--where", "subset=S",
           "--where", "backbones=test_vit", "--checkpoint-every", "0"]


def _env():
    return {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_ADDRESS": "local"}


@pytest.mark.slow
def test_resume_after_the_driver_is_killed(tmp_path):
    results = str(tmp_path / "results")
    store = ResultsStore(results)
    driver = subprocess.Popen(COMMAND + ["--results", results, "--quiet"], cwd=ROOT, env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    in_flight: dict = {}
    try:
        deadline = time.time() + 300
        while time.time() < deadline and driver.poll() is None and not in_flight:
            # The state to strike in: mid-sweep (6 rows or more), a trial in flight with a
            # checkpoint. The driver and the trial processes are frozen while it is read, so
            # no row or checkpoint can come or go before the kill.
            if len(recorded(store)) >= 6 and in_flight_now(store):
                with frozen([driver.pid] + processes_titled()) as stopped:
                    state = in_flight_now(store)
                    if len(recorded(store)) < 20 and state:
                        # The driver, the local Ray it started and every trial process die at
                        # once (Ray's workers may sit in process groups of their own: killed
                        # by name, frozen, they cannot save one more checkpoint first).
                        os.killpg(driver.pid, signal.SIGKILL)
                        for pid in stopped:
                            try:
                                os.kill(pid, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                        in_flight = checkpoint_epochs(store, state)
            time.sleep(0.02)
        assert in_flight, "the sweep ended before it could be killed with a trial in flight"
        driver.wait()
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    before = {
        os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, files in os.walk(store.trials_dir) for f in files if not f.startswith(".")
    }
    assert 6 <= len(before) < 20

    refused = subprocess.run(COMMAND + ["--results", results], cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert refused.returncode == 2 and "did not finish" in refused.stderr and "--resume" in refused.stderr

    resumed = subprocess.run(COMMAND + ["--results", results, "--resume", "--quiet"], cwd=ROOT, env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = store.read_trials().to_pylist()
    assert len(rows) == 20 == len({r["trial_id"] for r in rows})  # 5 studies x 4 trials, none twice
    per_study = {}
    for r in rows:
        per_study[r["study_id"]] = per_study.get(r["study_id"], 0) + 1
    assert set(per_study.values()) == {4} and all(r["status"] == "ok" for r in rows)
    # Trials finished before the kill were not run again (their files were not rewritten).
    assert all(os.stat(path).st_mtime_ns == mtime for path, mtime in before.items())
    assert not os.path.exists(os.path.join(results, "driver.lock"))
    # Trials in flight went on from their checkpoints, under their own ids, every epoch once.
    by_id = {r["trial_id"]: r for r in rows}
    history = store.read_history().to_pylist()
    for trial_id, epoch in in_flight.items():
        assert by_id[trial_id]["resumed_from_epoch"] == epoch
        epochs = sorted(h["epoch"] for h in history if h["trial_id"] == trial_id)
        assert epochs == list(range(1, by_id[trial_id]["epochs"] + 1))
    assert _count(store.checkpoints_dir, "") == 0


def _count(folder, suffix):
    return sum(1 for _, _, files in os.walk(folder) for f in files if f.endswith(suffix) and not f.startswith("."))
