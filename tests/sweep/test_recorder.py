"""Rows and histories of trials that were retried or resumed from a checkpoint."""

import pytest

from sweep.recorder import merged_epochs, trial_row
from sweep.spec import StudySpec, study_config

CONTEXT = {"metrics": {"digits": "auc"}, "fingerprints": {}, "weights_digests": {"test_resnet": "seed:0"}, "versions": {}}


def _config(**extra):
    spec = StudySpec(grid="g", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S", n_train=50,
                     fold=0, max_epochs=8)
    return {**study_config(spec), "lr": 1e-3, **extra}


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

    from sweep.recorder import StoreCallback
    from sweep.store import ResultsStore
    from trainables.checkpoints import checkpoint_paths, save_checkpoint

    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    config = _config(resume_trial_id="old_00003")
    saved = [{"epoch": e, "val_score": 0.1 * e, "trial_wall_s": float(e)} for e in (1, 2, 3)]
    save_checkpoint(store.checkpoints_dir, config["study_id"], "old_00003", {"w": torch.zeros(1)},
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
    assert not any(__import__("os").path.exists(p) for p in checkpoint_paths(store.checkpoints_dir, config["study_id"], "old_00003"))
