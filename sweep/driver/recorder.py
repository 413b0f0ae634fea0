"""Driver-side Tune callback: every finished trial becomes one row of the results store.

Trials that ASHA stops, trials that run to the end and trials that fail all land here, once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
from typing import Callable, Optional

from ray.tune import Callback

from sweep.driver.faults import failure_text, is_machine_fault, trial_failure
from trainables.context import CONTEXT, TrialRun
from trainables.study import StudySpec
from sweep.store.store import ResultsStore
from trainables.training.checkpoints import read_meta, remove_checkpoint
from trainables.training.reports import records_of, unpack

log = logging.getLogger(__name__)

SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(StudySpec))


def _finite(value):
    return None if value is None or math.isnan(value) else float(value)


def trial_row(config: dict, result: dict, trial_id: str, status: str, error: str | None, facts: dict) -> dict:
    """One results row from a trial's config (its TrialContext and lr), its last result and
    the sweep's ``facts`` (metric, data fingerprint, weight digests, versions of each)."""
    run = TrialRun.of(config, trial_id)  # a continued trial keeps the id of its first attempt
    study, context = run.study, run.context
    epochs = int(result.get("epoch") or 0)
    row = {name: getattr(study, name) for name in SPEC_FIELDS}
    # The resources the trial was given (--gpus-per-trial / --cpus-per-trial; no GPU on a
    # machine without one), not the grid's request.
    row.update(backbones=list(study.backbones), cpus=context.cpus, gpus=context.gpus)
    row.update(
        backbone=study.backbone,
        study_id=study.study_id,
        cell_id=study.cell_id,
        trial_id=run.trial_id,
        lr=run.lr,
        epochs=epochs,
        best_epoch=result.get("best_epoch"),
        stopped_early=status == "ok" and not result.get("trial_error") and epochs < study.max_epochs,
        val_score=result.get("best_val_score"),
        test_score=_finite(result.get("test_score")),  # null where test labels are hidden
        test_score_std=_finite(result.get("test_score_std")),  # few-shot: over the fold's episodes
        metric=facts["metrics"][study.dataset],
        status=status,
        error=error,
        wall_s=result.get("trial_wall_s", result.get("time_total_s")),
        resumed_from_epoch=result.get("resumed_from_epoch"),
        peak_rss_mib=result.get("peak_rss_mib"),
        peak_gpu_mib=result.get("peak_gpu_mib"),
        node_id=result.get("node_id"),
        gpu_ids=result.get("gpu_ids"),
        started_at=result.get("started_at"),
        finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        data_fingerprint=facts["fingerprints"].get(study.dataset),
        manifest_digest=context.manifest_digest,
        backbone_attention=result.get("backbone_attention"),
        weights_digests=json.dumps({b: facts["weights_digests"][b] for b in study.backbones}),
        embedding_keys=json.dumps(context.embedding_keys),
        versions=json.dumps(facts["versions"]),
    )
    if result.get("trial_error"):
        row.update(status="error", error=result["trial_error"])
    elif status == "ok" and not epochs:
        row.update(status="error", error="trial finished without reporting an epoch")
    return row


def progress_line(row: dict, done: int, total: int) -> str:
    """One line per finished trial, the sweep's progress view."""
    width = len(str(total))
    head = f"[{done:>{width}}/{total}] {row['dataset']} {row['mode']} {row['backbone']} n={row['n_train']} fold {row['fold']}"
    if row["status"] != "ok":
        return f"{head}  lr {row['lr']:.2e}  FAILED: {row['error']}"
    note = "  (stopped early by ASHA)" if row["stopped_early"] else ""
    return (
        f"{head}  lr {row['lr']:.2e}  {row['epochs']} epochs  val {row['val_score']:.4f}  "
        f"test {row['test_score']:.4f}{note}"
    )


def merged_epochs(*attempts: list[dict]) -> list[dict]:
    """One record per epoch over a trial's attempts, in epoch order. A retried or resumed
    trial reports again the epochs after its checkpoint (or all, without one): the latest
    attempt's record of an epoch is the one its model went on from."""
    by_epoch = {}
    for records in attempts:
        for r in records:
            if r.get("epoch") is not None:
                by_epoch[int(r["epoch"])] = {**r, "time_total_s": r.get("trial_wall_s", r.get("time_total_s"))}
    return [by_epoch[e] for e in sorted(by_epoch)]


def row_trial_id(trial) -> str:
    """The id a trial's row and files carry: a trial run again (after a killed driver or a
    lost node) keeps the id of its first attempt."""
    return TrialRun.of(trial.config, trial.trial_id).trial_id


class StoreCallback(Callback):
    """Writes each finished trial's row; sends a trial that a fault of the machine ended back
    to its study (``requeue``), up to ``max_failures`` failures a trial, attempts counted
    together (sweep/driver/faults.py)."""

    def __init__(self, store: ResultsStore, facts: dict, total: int = 0, echo=None,
                 requeue: Optional[Callable[[dict, str], None]] = None, max_failures: int = 0,
                 on_written: Optional[Callable[[dict], None]] = None):
        self.store, self.facts = store, facts
        self.on_written = on_written  # told of every row written (the sweep's progress line)
        self.total, self.echo = total, echo
        self.requeue, self.max_failures = requeue, max_failures
        self.written: list[str] = []
        self.epochs: dict[str, list[dict]] = {}  # row trial id -> its reported epochs so far
        self.failures: dict[str, int] = {}  # row trial id -> failures of its earlier attempts

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        # A report carries the epochs since the one before it (trainables/training/reports.py).
        self.epochs.setdefault(row_trial_id(trial), []).extend(records_of(result))

    def _write(self, trial, status: str, error: str | None) -> None:
        row = trial_row(trial.config, unpack(trial.last_result or {}), trial.trial_id, status, error, self.facts)
        epochs = self.epochs.pop(row["trial_id"], [])
        if row["resumed_from_epoch"] is not None:
            # Epochs up to the checkpoint are in its .json: the driver may never have seen them
            # (reported by a driver that died, or lost when the trial was killed mid-report).
            saved = read_meta(self.store.checkpoints_dir, row["study_id"], row["trial_id"]) or {}
            epochs = merged_epochs(saved.get("records", []), epochs)
        else:
            epochs = merged_epochs(epochs)
        # The history first: the trials row is what marks a trial done; then its checkpoint goes.
        self.store.write_history(row["study_id"], row["trial_id"], epochs)
        self.written.append(self.store.write_trial(row, index=True))
        remove_checkpoint(self.store.checkpoints_dir, row["study_id"], row["trial_id"])
        if self.echo is not None:
            self.echo(progress_line(row, len(self.written), self.total))
        if self.on_written is not None:
            self.on_written(row)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._write(trial, "ok", None)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        exc = trial_failure(trial)
        text = failure_text(trial, exc)
        if not is_machine_fault(exc):
            self._write(trial, "error", text)  # the trial's own: trying again would fail again
            return
        row_id = row_trial_id(trial)
        failures = self.failures.get(row_id, 0) + max(1, trial.run_metadata.num_failures)
        if failures <= self.max_failures and self.requeue is not None:
            # Tune gives up on a trial that fails while PENDING (its actor started or reused on
            # a node that just went) without retrying it: run it again ourselves, same id.
            self.failures[row_id] = failures
            self.requeue(trial.config, row_id)
            if self.echo is not None:
                self.echo(f"trial {row_id} ({trial.config[CONTEXT].study.study_id}) lost to a fault of the machine, "
                          f"run again ({failures} of at most {self.max_failures} failures): {text}")
            return
        self._write(trial, "error", f"{text} [failed {failures} time(s) on faults of the machine; "
                                    f"--max-failures {self.max_failures} exhausted]")
