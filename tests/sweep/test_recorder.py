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
