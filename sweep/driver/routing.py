"""One Tuner for the whole sweep, with every study searched and pruned on its own.

``StudySearcher`` keeps one ``OptunaSearch`` per study (log-uniform learning rate in the
study's range) and ``StudyScheduler`` one ``ASHAScheduler`` per study: trials of one study
compete only with each other, on the same validation split, while the Tuner packs trials of
many studies onto the cluster at once. Ray's own OptunaSearch cannot mix grid axes, and
``Repeater`` must not be combined with ASHA (notes/ray.md), hence these two routers on Ray's
public extension points.

Example::

    >>> searcher = StudySearcher(contexts, metric="val_score", mode="max")  # doctest: +SKIP
    >>> tune.TuneConfig(search_alg=searcher, scheduler=StudyScheduler(...), num_samples=-1)  # doctest: +SKIP
"""

from __future__ import annotations

import pickle
from typing import Optional

import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from trainables.context import CONTEXT, LR, TrialContext, trial_config
from trainables.models.modes import get_mode
from trainables.study import StudySpec

METRIC = "val_score"
MODE = "max"


def _value(study: StudySpec, lr: float):
    """A stored searched value as the mode's distribution holds it (knn's k: an integer)."""
    return int(round(lr)) if get_mode(study.mode).search.integer else lr


def _optuna_for(study: StudySpec, done: list[tuple[float, float]], failed: list[float] = ()) -> OptunaSearch:
    """One study's Optuna search, warm-started with trials already in the results store:
    their scores, and the learning rates whose trials failed (Optuna FAIL trials)."""
    # The mode's searched value (a learning rate, logistic's C, knn's k), always under "lr".
    space = {"lr": get_mode(study.mode).search.distribution(study)}
    # Seeded per study: the same grid suggests the same learning rates on every run.
    sampler = optuna.samplers.TPESampler(seed=study.seed * 7919 + study.fold, n_startup_trials=2)
    search = OptunaSearch(
        space=space,
        metric=METRIC,
        mode=MODE,
        sampler=sampler,
        points_to_evaluate=[{"lr": _value(study, lr)} for lr, _ in done] or None,
        evaluated_rewards=[reward for _, reward in done] or None,
    )
    for lr in failed:
        search.add_evaluated_point({"lr": _value(study, lr)}, None, error=True)
    return search


class _PickledState:
    """Tune saves searcher and scheduler state with the experiment, for resume."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class StudySearcher(_PickledState, Searcher):
    """Suggests trial configs (``trial_config``: the study's TrialContext + ``lr``), study by study.

    ``max_in_flight_per_study`` (default 1) keeps a study's trials mostly one after another,
    so Optuna learns from finished trials and ASHA has rungs to compare against, while the
    Tuner's concurrency is filled with trials of other studies.
    """

    def __init__(
        self,
        studies: list[TrialContext],
        metric: str = METRIC,
        mode: str = MODE,
        max_in_flight_per_study: int = 1,
        done: Optional[dict[str, list[tuple[float, float]]]] = None,
        resumable: Optional[dict[str, list[dict]]] = None,
        failed: Optional[dict[str, list[float]]] = None,
    ):
        super().__init__(metric=metric, mode=mode)
        done = done or {}
        # Trials that were in flight when the last driver died, with a checkpoint each: they
        # are a study's first suggestions, with their own learning rate and trial id.
        self._studies = {c.study.study_id: c for c in studies}
        self._resumable = {sid: list(metas) for sid, metas in (resumable or {}).items() if sid in self._studies}
        self._remaining = {sid: c.study.n_trials - len(done.get(sid, [])) for sid, c in self._studies.items()}
        failed = failed or {}
        self._searchers = {sid: _optuna_for(c.study, done.get(sid, []), failed.get(sid, []))
                           for sid, c in self._studies.items()}
        self._in_flight: dict[str, int] = {sid: 0 for sid in self._studies}
        self._trial_study: dict[str, str] = {}
        self._last_epoch: dict[str, int] = {}
        self._max_in_flight = max_in_flight_per_study

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        # Metric and mode are fixed by the design; accept Tune's call when it agrees.
        return (metric in (None, self._metric)) and (mode in (None, self._mode))

    def _next_study(self) -> Optional[str]:
        for sid, left in self._remaining.items():
            if left > 0 and self._in_flight[sid] < self._max_in_flight:
                return sid
        return None

    def suggest(self, trial_id: str):
        if not any(left > 0 for left in self._remaining.values()):
            # Finished only once no trial is in flight: one that a fault of the machine ends
            # comes back (``requeue``), and Tune asks a finished searcher nothing more.
            return Searcher.FINISHED if not any(self._in_flight.values()) else None
        sid = self._next_study()
        if sid is None:
            return None  # every study with trials left is busy: Tune asks again later
        resume = self._resumable.get(sid, []).pop(0) if self._resumable.get(sid) else None
        if resume is not None:
            # Optuna gives a queued trial's parameters to its next ask(): this trial is one of
            # Optuna's, with the learning rate the checkpoint was trained with. Ray's
            # OptunaSearch has no public way to queue one point beside evaluated ones.
            self._searchers[sid]._ot_study.enqueue_trial({"lr": _value(self._studies[sid].study, resume["lr"])},
                                                         skip_if_exists=False)
        params = self._searchers[sid].suggest(trial_id)
        self._remaining[sid] -= 1
        self._in_flight[sid] += 1
        self._trial_study[trial_id] = sid
        return trial_config(self._studies[sid], params["lr"], resume["trial_id"] if resume else None)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        sid = self._trial_study.get(trial_id)
        if sid is None or METRIC not in result:
            return
        # Optuna's step is the trial's epoch. A retried trial reports again the epochs after
        # its checkpoint (Tune's iteration count starts over): Optuna keeps the first report.
        epoch = result.get("epoch", result.get("training_iteration"))
        if epoch is not None and epoch <= self._last_epoch.get(trial_id, 0):
            return
        self._last_epoch[trial_id] = epoch or 0
        self._searchers[sid].on_trial_result(trial_id, {**result, "training_iteration": epoch})

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        sid = self._trial_study.get(trial_id)
        if sid is None:
            return
        self._in_flight[sid] -= 1
        if result and result.get("trial_error"):
            # The trial's own code failed (trainables/training/trainable.py): Optuna records a failure.
            result, error = None, True
        # Optuna learns from the trial's best validation score, not its last epoch's.
        if result and "best_val_score" in result:
            result = {**result, METRIC: result["best_val_score"]}
        self._searchers[sid].on_trial_complete(trial_id, result, error)

    def requeue(self, config: dict, trial_id: str) -> None:
        """Run a trial again that a fault of the machine ended (sweep/driver/faults.py): its study
        gets one more trial, suggested next with the same learning rate and ``trial_id``,
        which resumes from that trial's checkpoint when it saved one."""
        sid = config[CONTEXT].study.study_id
        self._resumable.setdefault(sid, []).append({"lr": config[LR], "trial_id": trial_id})
        self._remaining[sid] += 1

    def study_of(self, trial_id: str) -> Optional[str]:
        return self._trial_study.get(trial_id)


class StudyScheduler(_PickledState, FIFOScheduler):
    """Routes each trial to its own study's ASHA; runs trials in submission order."""

    def __init__(self, metric: str = METRIC, mode: str = MODE):
        super().__init__()
        self._metric, self._mode = metric, mode
        self._asha: dict[str, ASHAScheduler] = {}

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return (metric in (None, self._metric)) and (mode in (None, self._mode))

    def _for(self, trial) -> ASHAScheduler:
        study = trial.config[CONTEXT].study
        sid = study.study_id
        if sid not in self._asha:
            self._asha[sid] = ASHAScheduler(
                # The trial's own epoch count, not Tune's iteration: a trial resumed from a
                # checkpoint reports epoch 11 first, and must meet the rungs of epoch 11.
                time_attr="epoch",
                metric=self._metric,
                mode=self._mode,
                max_t=study.max_epochs,
                grace_period=study.grace_period,
                reduction_factor=study.reduction_factor,
            )
        return self._asha[sid]

    def on_trial_add(self, tune_controller, trial) -> None:
        self._for(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._for(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._for(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        asha = self._for(trial)
        if trial.trial_id in asha._trial_info:
            asha.on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._for(trial).on_trial_error(tune_controller, trial)

    def debug_string(self) -> str:
        stopped = sum(a._num_stopped for a in self._asha.values())
        return f"ASHA per study: {len(self._asha)} studies, {stopped} trials stopped early"


__all__ = ["StudySearcher", "StudyScheduler", "TrialScheduler", "METRIC", "MODE"]
