"""Where every file of one trial lives in the results store: one place names them all.

Layout under the store's root (a path or a URI)::

    trials/<study_id>/<trial_id>.parquet        the trial's row (sweep/store/store.py)
    history/<study_id>/<trial_id>.parquet       its epochs
    predictions/<study_id>/<trial_id>.npz       the selected model's test probabilities and the test labels
    bootstrap/<study_id>/<trial_id>.npy         the selected model's scores on the test set's
                                                bootstrap resamples (trainables/training/bootstrap.py)
    dvme_features/<study_id>/<trial_id>.npz     DVME: fused embeddings of test images
    checkpoints/<study_id>/<trial_id>.pt, .json a trial in flight (trainables/training/checkpoints.py)

Example::

    >>> TrialFiles("/r", "s", "t").predictions
    '/r/predictions/s/t.npz'
"""

from __future__ import annotations

from dataclasses import dataclass

from trainables import storage

# kind -> (folder under the store, file suffix)
KINDS = {
    "row": ("trials", ".parquet"),
    "history": ("history", ".parquet"),
    "predictions": ("predictions", ".npz"),
    "bootstrap": ("bootstrap", ".npy"),
    "dvme_features": ("dvme_features", ".npz"),
    "checkpoint": ("checkpoints", ".pt"),
    "checkpoint_meta": ("checkpoints", ".json"),
}


def folder(root: str, kind: str) -> str:
    """The store's folder of one kind of per-trial file (``trials``, ``history``, ...)."""
    return storage.join(root, KINDS[kind][0])


@dataclass(frozen=True)
class TrialFiles:
    root: str  # the results store
    study_id: str
    trial_id: str

    def _path(self, kind: str) -> str:
        name, suffix = KINDS[kind]
        return storage.join(self.root, name, self.study_id, f"{self.trial_id}{suffix}")

    @property
    def row(self) -> str:
        return self._path("row")

    @property
    def history(self) -> str:
        return self._path("history")

    @property
    def predictions(self) -> str:
        return self._path("predictions")

    @property
    def bootstrap(self) -> str:
        return self._path("bootstrap")

    @property
    def dvme_features(self) -> str:
        return self._path("dvme_features")

    @property
    def checkpoint(self) -> str:
        return self._path("checkpoint")

    @property
    def checkpoint_meta(self) -> str:
        return self._path("checkpoint_meta")
