"""The selected model's test outputs, per trial, in the results store (trainables/artifacts.py
names the files): its test probabilities with the test labels, and its scores on the test
set's bootstrap resamples (trainables/training/bootstrap.py). numpy only: the queries and
Kaggle's submission files read them without torch.

Example::

    >>> save_predictions(path, probs, labels)            # doctest: +SKIP
    >>> load_predictions(path)[0].shape                  # doctest: +SKIP
    (540, 10)
"""

from __future__ import annotations

import io
from typing import Optional

import numpy as np

from trainables import storage


def save_predictions(path: str, probs: np.ndarray, labels: np.ndarray) -> None:
    """Test-set class probabilities of the selected epoch and the test labels (-1 where hidden),
    written atomically (.npz: ``probs`` float32, ``labels`` int64; a path or URI)."""
    buffer = io.BytesIO()
    np.savez(buffer, probs=np.asarray(probs, np.float32), labels=np.asarray(labels, np.int64))
    storage.write_atomic(path, buffer.getvalue())


def load_predictions(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(probs, labels) of a predictions file."""
    with np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False) as saved:
        return saved["probs"], saved["labels"]


def save_bootstrap(path: str, scores: np.ndarray) -> None:
    """A trial's scores on the test set's resamples, written atomically (.npy float64)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(scores, np.float64))
    storage.write_atomic(path, buffer.getvalue())


def load_bootstrap(path: str) -> Optional[np.ndarray]:
    """A trial's resample scores, or None where it left none."""
    try:
        return np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False)
    except FileNotFoundError:
        return None
