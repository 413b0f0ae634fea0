"""The driver -> trial contract: everything a trial reads, in one typed, frozen value.

``sweep/`` fills a ``TrialContext`` per study (sweep/driver/runner.py); the searcher puts it in every
trial config of that study beside the learning rate (``trial_config``); ``trainables/``
reads it, field by field, with no defaults: a field the driver forgot is an error when the
context is made, not a silent fallback inside a trial.

Example::

    >>> config = trial_config(context, lr=3e-4, resume_trial_id=None)   # doctest: +SKIP
    >>> TrialRun.of(config, tune_trial_id="a_00001").files.row             # doctest: +SKIP
    '/results/trials/<study_id>/a_00001.parquet'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from trainables.cache.parts import key_of
from trainables.artifacts import TrialFiles
from trainables.study import StudySpec

CONTEXT, LR, RESUME = "context", "lr", "resume_trial_id"  # the keys of a trial's Tune config


@dataclass(frozen=True)
class TrialContext:
    study: StudySpec
    # Resources the trial was given (GPU 0 on a machine without one).
    cpus: float
    gpus: float
    # The data: its folder (None for data that ships with a package), --holdout, and the ids
    # --skip-unreadable leaves out (None: none left out, every problem an error).
    data_root: Optional[str]
    holdout: Optional[float]
    skip: Optional[tuple[str, ...]]
    # backbone -> weight file, for the study's backbones that load one.
    weights: dict
    # The study's backbones built by code their hub repo ships, which the user trusts by name
    # (--trust-remote-code NAME); any other such backbone is refused.
    trusted_code: tuple
    n_classes: int
    # The study's split, as the driver wrote it (sweep/driver/manifests.py).
    manifest_file: str
    manifest_digest: str
    # Frozen modes: backbone -> one tuple of cache files per view, view 0 (evaluation) first,
    # then the augmented views; a view's files are the parts of its key that hold the study's
    # rows (trainables/cache/parts.py). Empty for a mode that trains its backbone.
    embedding_files: dict
    store_root: str
    # A checkpoint at an epoch's end once this many seconds passed since the last (0: every
    # epoch; None: never).
    checkpoint_every_s: Optional[float]

    def __deepcopy__(self, memo) -> "TrialContext":
        # A frozen value that nothing mutates: Tune deep-copies every trial's config several
        # times (when it creates the trial, when it hands it a reused actor), and copying the
        # context field by field was 1.3 of the driver's 14 CPU-s in the demo's profile.
        return self

    @property
    def embedding_keys(self) -> dict:
        """backbone -> cache keys (the files are named by their keys), view 0 first."""
        return {b: [key_of(parts[0]) for parts in views] for b, views in self.embedding_files.items()}


def trial_config(context: TrialContext, lr: float, resume_trial_id: Optional[str]) -> dict:
    """The Tune config of one trial: its study's context, its learning rate, and the id of the
    trial it continues (after a killed driver or a lost node), or None."""
    return {CONTEXT: context, LR: float(lr), RESUME: resume_trial_id}


@dataclass(frozen=True)
class TrialRun:
    """One trial as it runs: its context, learning rate and id (a continued trial keeps the id
    of its first attempt, and with it every file)."""

    context: TrialContext
    lr: float
    trial_id: str

    @classmethod
    def of(cls, config: dict, tune_trial_id: str) -> "TrialRun":
        return cls(config[CONTEXT], config[LR], config[RESUME] or tune_trial_id)

    @property
    def study(self) -> StudySpec:
        return self.context.study

    @property
    def files(self) -> TrialFiles:
        return TrialFiles(self.context.store_root, self.study.study_id, self.trial_id)
