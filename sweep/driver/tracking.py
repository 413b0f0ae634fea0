"""``--mlflow URI``: every trial an MLflow run, through Ray Tune's own MLflow callback.

Per run: the study's fields and the learning rate as parameters; per epoch (MLflow's step)
the training and validation loss, the validation score and the best one so far, the learning
rate in use; at its end the test score of its selected epoch. Tags: study_id, cell_id,
trial_id (a trial run again after a fault keeps its id), grid, dataset, mode, backbone, so
that MLflow's search (``tags.cell_id = '...'``) finds a study's or a cell's trials.

Tune's callback would log the whole trial config as one parameter (the typed TrialContext,
thousands of characters); this subclass logs the study's fields one by one instead.

Example::

    >>> callback = mlflow_callback("sqlite:///mlruns.db", "medsweep-demo")    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os

from trainables.context import TrialRun
from trainables.errors import UserError
from trainables.training.reports import records_of, unpack

EPOCH_METRICS = ("train_loss", "val_loss", "val_score", "best_val_score", "lr_now")


def trial_params(run: TrialRun) -> dict:
    """The parameters of a trial's run: every study field (tuples as a,b) and its lr."""
    fields = dataclasses.asdict(run.study)
    params = {k: ",".join(map(str, v)) if isinstance(v, tuple) else v for k, v in fields.items()}
    return {**params, "lr": run.lr}


def trial_tags(run: TrialRun) -> dict:
    study = run.study
    return {"study_id": study.study_id, "cell_id": study.cell_id, "trial_id": run.trial_id, "grid": study.grid,
            "dataset": study.dataset, "mode": study.mode, "backbone": study.backbone}


def require_mlflow() -> None:
    """Before anything runs: --mlflow without MLflow installed is a named error."""
    try:
        import importlib

        importlib.import_module("mlflow")  # Tune's callback imports it lazily, once trials run
    except ImportError:
        raise UserError("--mlflow needs MLflow: pip install -e '.[mlflow]' (the mlflow-skinny client)") from None


def mlflow_callback(tracking_uri: str, experiment: str):
    """A Tune callback logging to ``tracking_uri`` (``sqlite:///mlruns.db``, ``http://host:5000``)."""
    require_mlflow()
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        # MLflow 3 keeps its file store in maintenance mode and refuses it unless told; a
        # user who names a file: store asks for one (sqlite:/// or a server is MLflow's advice,
        # and the README's; reading a file: store back needs the same variable).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    class StudyMLflowCallback(MLflowLoggerCallback):
        def log_trial_start(self, trial):
            if trial in self._trial_runs:
                return
            run = TrialRun.of(trial.config, trial.trial_id)
            started = self.mlflow_util.start_run(tags={**self.tags, **trial_tags(run)},
                                                 run_name=f"{run.study.study_id}/{run.trial_id}")
            self._trial_runs[trial] = started.info.run_id
            self.mlflow_util.log_params(run_id=started.info.run_id, params_to_log=trial_params(run))

        def log_trial_result(self, iteration, trial, result):
            # A report carries the epochs since the one before it (trainables/training/reports.py).
            for record in records_of(result):
                metrics = {k: record[k] for k in EPOCH_METRICS if isinstance(record.get(k), (int, float))}
                self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log=metrics,
                                             step=int(record.get("epoch") or iteration))

        def log_trial_end(self, trial, failed: bool = False):
            last = unpack(trial.last_result or {})
            test = last.get("test_score")
            if isinstance(test, (int, float)) and trial in self._trial_runs:
                self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log={"test_score": test},
                                             step=int(last.get("epoch") or 0))
            super().log_trial_end(trial, failed)

    return StudyMLflowCallback(tracking_uri=tracking_uri, experiment_name=experiment)
