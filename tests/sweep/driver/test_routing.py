"""The searcher and scheduler routers, driven directly with stand-in trials (no Ray runtime)."""

from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from sweep.driver.routing import StudyScheduler, StudySearcher
from sweep.spec import StudySpec
from tests.contexts import bare_context
from trainables.context import CONTEXT, trial_config


def _configs(n_studies=2, n_trials=3, **kw):
    """One TrialContext per study, as the driver gives the searcher."""
    return [
        bare_context(
            StudySpec(grid="g", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S",
                      n_train=50, fold=f, n_trials=n_trials, max_epochs=8, grace_period=2,
                      reduction_factor=2, lr_min=1e-4, lr_max=1e-2, **kw)
        )
        for f in range(n_studies)
    ]


def test_searcher_suggests_each_study_its_trials_then_finishes():
    configs = _configs(n_studies=2, n_trials=3)
    searcher = StudySearcher(configs, max_in_flight_per_study=3)
    suggested = [searcher.suggest(f"t{i}") for i in range(6)]
    assert all(1e-4 <= s["lr"] <= 1e-2 for s in suggested)
    per_study = [s[CONTEXT].study.study_id for s in suggested]
    assert per_study.count(configs[0].study.study_id) == 3 and per_study.count(configs[1].study.study_id) == 3
    assert suggested[0][CONTEXT].study.n_train == 50 and suggested[0][CONTEXT].study.mode == "linear"
    # Finished only once none is in flight: a trial a lost node ends may still come back.
    assert searcher.suggest("t6") is None
    for i in range(6):
        searcher.on_trial_complete(f"t{i}", {"val_score": 0.5, "best_val_score": 0.5, "training_iteration": 8})
    assert searcher.suggest("t6") == Searcher.FINISHED


def test_searcher_keeps_a_study_to_its_in_flight_limit_and_fills_with_others():
    configs = _configs(n_studies=2, n_trials=3)
    searcher = StudySearcher(configs, max_in_flight_per_study=1)
    a, b = searcher.suggest("t0"), searcher.suggest("t1")
    assert a[CONTEXT].study.study_id != b[CONTEXT].study.study_id
    assert searcher.suggest("t2") is None  # both studies busy: wait, don't finish
    searcher.on_trial_complete("t0", {"val_score": 0.5, "best_val_score": 0.7, "training_iteration": 2})
    assert searcher.suggest("t2")[CONTEXT].study.study_id == a[CONTEXT].study.study_id


def test_optuna_learns_from_each_study_separately():
    configs = _configs(n_studies=2, n_trials=3)
    searcher = StudySearcher(configs, max_in_flight_per_study=1)
    t0 = searcher.suggest("t0")
    searcher.on_trial_complete("t0", {"val_score": 0.2, "best_val_score": 0.9, "training_iteration": 8})
    ot_a = searcher._searchers[t0[CONTEXT].study.study_id]._ot_study
    other = [sid for sid in searcher._searchers if sid != t0[CONTEXT].study.study_id][0]
    assert [t.value for t in ot_a.trials if t.value is not None] == [0.9]  # best, not last
    assert searcher._searchers[other]._ot_study.trials == []


def test_searcher_warm_starts_from_trials_in_the_store_and_runs_only_the_rest():
    configs = _configs(n_studies=1, n_trials=3)
    sid = configs[0].study.study_id
    searcher = StudySearcher(configs, done={sid: [(1e-3, 0.8), (5e-4, 0.6)]}, max_in_flight_per_study=3)
    assert searcher.suggest("t0")[CONTEXT].study.study_id == sid
    assert searcher.suggest("t1") is None  # its last trial in flight
    values = sorted(t.value for t in searcher._searchers[sid]._ot_study.trials if t.value is not None)
    assert values == [0.6, 0.8]
    searcher.on_trial_complete("t0", {"val_score": 0.5, "best_val_score": 0.5, "training_iteration": 8})
    assert searcher.suggest("t1") == Searcher.FINISHED


def test_a_trial_in_flight_when_the_driver_died_is_suggested_again_with_its_lr_and_id():
    configs = _configs(n_studies=1, n_trials=3)
    sid = configs[0].study.study_id
    records = [{"epoch": 1, "val_score": 0.5}, {"epoch": 2, "val_score": 0.6}]
    searcher = StudySearcher(configs, done={sid: [(1e-3, 0.8)]}, max_in_flight_per_study=3,
                             resumable={sid: [{"trial_id": "old_00001", "lr": 3.3e-3, "epoch": 2, "records": records}],
                                        "another-grid's-study": [{"trial_id": "x", "lr": 1.0}]})
    resumed, fresh = searcher.suggest("t0"), searcher.suggest("t1")
    assert resumed["lr"] == 3.3e-3 and resumed["resume_trial_id"] == "old_00001"
    assert fresh["resume_trial_id"] is None and fresh["lr"] != 3.3e-3
    assert searcher.suggest("t2") is None  # 1 done + resumed + fresh = 3, two in flight
    # Optuna knows the resumed trial as its own, with that learning rate, and learns its score.
    searcher.on_trial_complete("t0", {"val_score": 0.1, "best_val_score": 0.7, "epoch": 8})
    searcher.on_trial_complete("t1", {"val_score": 0.1, "best_val_score": 0.6, "epoch": 8})
    assert searcher.suggest("t2") == Searcher.FINISHED
    trials = searcher._searchers[sid]._ot_study.trials
    assert any(t.params == {"lr": 3.3e-3} and t.value == 0.7 for t in trials)


def test_a_trial_a_lost_node_ended_comes_back_with_its_lr_and_id_even_after_the_last_suggestion():
    (cfg,) = _configs(n_studies=1, n_trials=2)
    searcher = StudySearcher([cfg], max_in_flight_per_study=2)
    searcher.suggest("t0")
    second = searcher.suggest("t1")
    # t1 failed while PENDING (its node went): Tune tells the searcher of an error...
    searcher.on_trial_complete("t1", None, error=True)
    searcher.requeue(second, "t1")  # ...and the driver sends it back
    again = searcher.suggest("t2")
    assert again["lr"] == second["lr"] and again["resume_trial_id"] == "t1"
    assert searcher.suggest("t3") is None  # t0 and t2 in flight
    for t in ("t0", "t2"):
        searcher.on_trial_complete(t, {"val_score": 0.5, "best_val_score": 0.5, "training_iteration": 8})
    assert searcher.suggest("t3") == Searcher.FINISHED


def test_optuna_knows_each_failed_trial_as_failed_in_a_run_and_on_resume():
    import optuna

    (cfg,) = _configs(n_studies=1, n_trials=3)
    sid = cfg.study.study_id
    searcher = StudySearcher([cfg])
    lr = searcher.suggest("t0")["lr"]
    # The trial's own error (a NaN loss) arrives as its last result, not as a Tune error.
    searcher.on_trial_complete("t0", {"val_score": float("nan"), "trial_error": "FloatingPointError: nan"})
    (trial,) = searcher._searchers[sid]._ot_study.trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.params == {"lr": lr}
    # On --resume, the error rows of the store are failed trials of the study's Optuna.
    resumed = StudySearcher([cfg], done={sid: [(1e-3, 0.8)]}, failed={sid: [lr, 2e-3]})
    states = sorted((t.state.name, t.params["lr"]) for t in resumed._searchers[sid]._ot_study.trials)
    assert states == sorted([("COMPLETE", 1e-3), ("FAIL", lr), ("FAIL", 2e-3)])


def test_a_retried_trial_reports_each_epoch_to_optuna_once(recwarn):
    (cfg,) = _configs(n_studies=1)
    searcher = StudySearcher([cfg])
    searcher.suggest("t0")
    # Epochs 1-2, the process dies, the retry resumes after its epoch-1 checkpoint (Tune's
    # iteration count starts over at 1).
    for it, epoch, value in [(1, 1, 0.5), (2, 2, 0.6), (1, 2, 0.65), (2, 3, 0.7)]:
        searcher.on_trial_result("t0", {"training_iteration": it, "epoch": epoch, "val_score": value})
    (trial,) = searcher._searchers[cfg.study.study_id]._ot_study.trials
    assert trial.intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7}
    assert not [w for w in recwarn if "already reported" in str(w.message)]


def test_searcher_state_survives_save_and_restore(tmp_path):
    configs = _configs()
    a = StudySearcher(configs)
    a.suggest("t0")
    a.save(str(tmp_path / "s.pkl"))
    b = StudySearcher(configs)
    b.restore(str(tmp_path / "s.pkl"))
    assert b.study_of("t0") == a.study_of("t0") and b._remaining == a._remaining


def _trial(trial_id, context):
    return SimpleNamespace(trial_id=trial_id, config=trial_config(context, 1e-3, None))


def test_asha_of_one_study_never_sees_another_studys_trials():
    a_cfg, b_cfg = _configs(n_studies=2)
    sched = StudyScheduler()
    a1, b1, b2 = _trial("a1", a_cfg), _trial("b1", b_cfg), _trial("b2", b_cfg)
    for t in (a1, b1, b2):
        sched.on_trial_add(None, t)
    result = lambda it, score: {"epoch": it, "val_score": score}
    # Study A records a very high score at the first rung (epoch 2).
    assert sched.on_trial_result(None, a1, result(2, 0.99)) == TrialScheduler.CONTINUE
    # Study B's first trial is far below A's, yet continues: it is compared with study B only.
    assert sched.on_trial_result(None, b1, result(2, 0.40)) == TrialScheduler.CONTINUE
    # Study B's second trial is below B's first at the same rung: ASHA stops it.
    assert sched.on_trial_result(None, b2, result(2, 0.30)) == TrialScheduler.STOP
    assert set(sched._asha) == {a_cfg.study.study_id, b_cfg.study.study_id}


def test_each_study_gets_its_own_rungs_from_its_settings():
    (cfg,) = _configs(n_studies=1)
    cfg = bare_context(cfg.study.replace(max_epochs=16, grace_period=4, reduction_factor=2))
    sched = StudyScheduler()
    t = _trial("x", cfg)
    sched.on_trial_add(None, t)
    milestones = [m for m, _ in sched._asha[cfg.study.study_id]._brackets[0]._rungs]
    assert sorted(milestones) == [4, 8, 16]  # grace x rf^k up to max_t
    # The last epoch stops the trial (it is done), whatever its score.
    assert sched.on_trial_result(None, t, {"epoch": 16, "val_score": 0.1}) == TrialScheduler.STOP


def test_scheduler_state_survives_save_and_restore(tmp_path):
    (cfg,) = _configs(n_studies=1)
    a = StudyScheduler()
    a.on_trial_add(None, _trial("x", cfg))
    a.save(str(tmp_path / "s.pkl"))
    b = StudyScheduler()
    b.restore(str(tmp_path / "s.pkl"))
    assert set(b._asha) == {cfg.study.study_id}


def test_tune_holds_as_many_trials_waiting_as_asked_unless_the_environment_or_a_limit_says_otherwise(monkeypatch):
    """Waiting trials are what lets an ending trial hand its actor (its process) to the next:
    Tune's own default for a searcher like ours is 1 (sweep/driver/runner.py, pending_trials)."""
    import os

    from ray.tune.execution.tune_controller import _get_max_pending_trials
    from ray.tune.search import SearchGenerator

    from sweep.driver.runner import PENDING_TRIALS, pending_trials

    search = SearchGenerator(StudySearcher(_configs(n_studies=1)))
    monkeypatch.delenv(PENDING_TRIALS, raising=False)
    assert _get_max_pending_trials(search) == 1
    with pending_trials(8):
        assert _get_max_pending_trials(search) == 8  # what the Tuner reads when it starts
    assert PENDING_TRIALS not in os.environ
    with pending_trials(None):  # --max-concurrent given: Tune's limit of it holds
        assert _get_max_pending_trials(search) == 1
    monkeypatch.setenv(PENDING_TRIALS, "3")
    with pending_trials(8):
        assert _get_max_pending_trials(search) == 3
    assert os.environ[PENDING_TRIALS] == "3"


def test_tune_snapshots_its_experiment_state_only_when_the_tuner_ends_unless_the_environment_says(monkeypatch):
    """Tune's period for its experiment-state snapshots, as its TuneController reads it: never
    while the Tuner runs (its forced snapshot at the end still comes); a period the user set
    stays (sweep/driver/runner.py, snapshots_at_end)."""
    import math
    import os

    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    from sweep.driver.runner import SNAPSHOT_PERIOD, snapshots_at_end

    def period() -> float:
        return _ExperimentCheckpointManager(storage=None, checkpoint_period=os.getenv(SNAPSHOT_PERIOD, "auto"))._checkpoint_period

    monkeypatch.delenv(SNAPSHOT_PERIOD, raising=False)
    assert period() == 10.0  # Tune's "auto" starts at 10 s
    with snapshots_at_end():
        assert math.isinf(period())
    assert SNAPSHOT_PERIOD not in os.environ
    monkeypatch.setenv(SNAPSHOT_PERIOD, "30")
    with snapshots_at_end():
        assert period() == 30.0
    assert os.environ[SNAPSHOT_PERIOD] == "30"
