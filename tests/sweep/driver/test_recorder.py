"""Rows and histories of trials that were retried or resumed from a checkpoint."""

import pytest

from sweep.driver.recorder import merged_epochs, trial_row
from sweep.spec import StudySpec
from tests.contexts import bare_context
from trainables.context import trial_config

CONTEXT = {"metrics": {"digits": "auc"}, "fingerprints": {}, "weights_digests": {"test_resnet": "seed:0"}, "versions": {}}


def _config(resume_trial_id=None):
    spec = StudySpec(grid="g", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S", n_train=50,
                     fold=0, max_epochs=8)
    return trial_config(bare_context(spec), 1e-3, resume_trial_id)


def test_each_epoch_once_in_order_the_latest_attempt_winning():
    before_kill = [{"epoch": e, "val_score": 0.1 * e, "trial_wall_s": float(e)} for e in (1, 2, 3)]
    retry = [{"epoch": e, "val_score": 0.2 * e, "trial_wall_s": 10.0 + e} for e in (3, 4)]  # resumed after epoch 2
    merged = merged_epochs(before_kill, retry)
    assert [r["epoch"] for r in merged] == [1, 2, 3, 4]
    assert [r["val_score"] for r in merged] == pytest.approx([0.1, 0.2, 0.6, 0.8])
    assert [r["time_total_s"] for r in merged] == [1.0, 2.0, 13.0, 14.0]  # the trial's own clock


def test_a_resumed_trial_keeps_its_id_its_whole_wall_time_and_says_where_it_resumed():
    result = {"epoch": 8, "best_epoch": 6, "best_val_score": 0.9, "test_score": 0.8, "time_total_s": 5.0,
              "trial_wall_s": 42.0, "resumed_from_epoch": 5}
    row = trial_row(_config(resume_trial_id="old_00003"), result, "new_00000", "ok", None, CONTEXT)
    assert row["trial_id"] == "old_00003" and row["wall_s"] == 42.0 and row["resumed_from_epoch"] == 5
    fresh = trial_row(_config(), {**result, "resumed_from_epoch": None}, "new_00000", "ok", None, CONTEXT)
    assert fresh["trial_id"] == "new_00000" and fresh["resumed_from_epoch"] is None


def test_a_resumed_trial_history_takes_the_epochs_its_driver_never_saw_from_the_checkpoint(tmp_path):
    from types import SimpleNamespace

    import torch

    from sweep.driver.recorder import StoreCallback
    from sweep.store.store import ResultsStore
    from trainables.training.checkpoints import checkpoint_paths, save_checkpoint

    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    config = _config(resume_trial_id="old_00003")
    saved = [{"epoch": e, "val_score": 0.1 * e, "trial_wall_s": float(e)} for e in (1, 2, 3)]
    study_id = config["context"].study.study_id
    save_checkpoint(store.checkpoints_dir, study_id, "old_00003", {"w": torch.zeros(1)},
                    {"lr": 1e-3, "epoch": 3, "records": saved})
    callback = StoreCallback(store, CONTEXT)
    trial = SimpleNamespace(trial_id="new_00000", config=config, last_result=None)
    for epoch in (4, 5):  # this driver saw only the epochs after the checkpoint
        result = {"epoch": epoch, "val_score": 0.1 * epoch, "best_val_score": 0.1 * epoch, "best_epoch": epoch,
                  "test_score": 0.5, "trial_wall_s": 3.0 + epoch, "resumed_from_epoch": 3}
        callback.on_trial_result(0, [], trial, result)
        trial.last_result = result
    callback.on_trial_complete(0, [], trial)
    history = store.read_history().to_pylist()
    assert [(h["trial_id"], h["epoch"]) for h in history] == [("old_00003", e) for e in (1, 2, 3, 4, 5)]
    (row,) = store.read_trials().to_pylist()
    assert row["trial_id"] == "old_00003" and row["resumed_from_epoch"] == 3 and row["epochs"] == 5
    assert not any(__import__("os").path.exists(p) for p in checkpoint_paths(store.checkpoints_dir, study_id, "old_00003"))


def test_a_trial_reporting_at_its_rungs_gets_every_epoch_in_its_history_and_its_row_from_the_last(tmp_path):
    """Reports carry the epochs since the one before (trainables/training/reports.py)."""
    from types import SimpleNamespace

    from sweep.driver.recorder import StoreCallback
    from sweep.store.store import ResultsStore
    from trainables.training.reports import pack

    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    callback = StoreCallback(store, CONTEXT)
    trial = SimpleNamespace(trial_id="t_00000", config=_config(), last_result=None)
    records = [{"epoch": e, "val_score": 0.1 * e, "best_val_score": 0.1 * e, "best_epoch": e, "test_score": 0.5 + e / 100,
                "train_loss": 1.0 / e, "trial_wall_s": float(e), "resumed_from_epoch": None} for e in range(1, 9)]
    for rung, since in ((2, 0), (4, 2), (8, 4)):
        result = {**pack(records[rung - 1], earlier=records[since:rung - 1]), "training_iteration": 1, "time_total_s": 9.0}
        callback.on_trial_result(0, [], trial, result)
        trial.last_result = result
    callback.on_trial_complete(0, [], trial)
    history = store.read_history().to_pylist()
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert [h["train_loss"] for h in history] == pytest.approx([1.0 / e for e in range(1, 9)])
    (row,) = store.read_trials().to_pylist()
    assert row["epochs"] == 8 and row["test_score"] == pytest.approx(0.58) and row["wall_s"] == 8.0


def _failed_trial(tmp_path, trial_id, config, exc, num_failures=1):
    from types import SimpleNamespace

    from ray import cloudpickle

    path = tmp_path / f"{trial_id}.pkl"
    path.write_bytes(cloudpickle.dumps(exc))
    return SimpleNamespace(trial_id=trial_id, config=config, last_result=None, pickled_error_file=str(path),
                           error_file=None, run_metadata=SimpleNamespace(num_failures=num_failures))


@pytest.mark.parametrize("fault", ["actor_unavailable", "actor_died", "node_died", "oom_kill", "object_lost", "os_error"])
def test_a_fault_of_the_machine_sends_the_trial_back_until_max_failures_runs_out(tmp_path, fault):
    from ray import exceptions as rx

    from sweep.driver.recorder import StoreCallback
    from sweep.store.store import ResultsStore

    exc = {
        "actor_unavailable": rx.ActorUnavailableError("The actor is unavailable", b"0" * 16),
        "actor_died": rx.ActorDiedError(),
        "node_died": rx.NodeDiedError("node gone"),
        "oom_kill": rx.OutOfMemoryError("killed by the memory monitor"),
        "object_lost": rx.ObjectLostError("ab" * 14, "owner", "call site"),
        "os_error": rx.RayTaskError("train", "tb", OSError("stale NFS handle")),
    }[fault]
    store = ResultsStore(str(tmp_path / "results"))
    store.open_for("g")
    requeued = []
    callback = StoreCallback(store, CONTEXT, requeue=lambda config, tid: requeued.append(tid), max_failures=2)
    config = _config()
    callback.on_trial_error(0, [], _failed_trial(tmp_path, "a_00000", config, exc))
    assert requeued == ["a_00000"] and store.read_trials().num_rows == 0
    # The second attempt (same row id) fails too: one failure left, sent back again.
    again = {**config, "resume_trial_id": "a_00000"}  # the requeued attempt
    callback.on_trial_error(0, [], _failed_trial(tmp_path, "b_00001", again, exc))
    assert requeued == ["a_00000", "a_00000"] and store.read_trials().num_rows == 0
    # The third failure passes --max-failures 2: recorded once, under its first id, saying so.
    callback.on_trial_error(0, [], _failed_trial(tmp_path, "c_00002", again, exc))
    (row,) = store.read_trials().to_pylist()
    assert row["trial_id"] == "a_00000" and row["status"] == "error"
    assert "failed 3 time(s) on faults of the machine; --max-failures 2 exhausted" in row["error"]
    assert row["error"].startswith(type(getattr(exc, "cause", None) or exc).__name__)


def test_an_error_of_the_trials_own_code_is_recorded_at_once(tmp_path):
    from ray import exceptions as rx

    from sweep.driver.recorder import StoreCallback
    from sweep.store.store import ResultsStore

    store = ResultsStore(str(tmp_path / "results"))
    store.open_for("g")
    requeued = []
    callback = StoreCallback(store, CONTEXT, requeue=lambda config, tid: requeued.append(tid), max_failures=5)
    exc = rx.RayTaskError("train", "tb", KeyError("embedding_files"))
    callback.on_trial_error(0, [], _failed_trial(tmp_path, "a_00000", _config(), exc))
    (row,) = store.read_trials().to_pylist()
    assert requeued == [] and row["status"] == "error" and row["error"] == "KeyError: 'embedding_files'"


def test_a_row_records_the_resources_the_trial_was_given():
    spec = StudySpec(grid="g", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S", n_train=50,
                     fold=0, max_epochs=8, cpus=1.0, gpus=0.05)
    config = trial_config(bare_context(spec, cpus=0.5, gpus=0.25), 1e-3, None)
    row = trial_row(config, {"epoch": 1}, "t", "ok", None, CONTEXT)
    assert (row["cpus"], row["gpus"]) == (0.5, 0.25)
