"""Bootstrap 95% intervals of the cells' test scores, the fold models held fixed.

Each trial leaves its selected model's scores on the test set's 1,000 stratified resamples
when it ends (``bootstrap/<study>/<trial>.npy``, trainables/training/bootstrap.py); every trial
of one test set draws the same resamples. A trial that left none (ended by ASHA as its actor was
shut down, killed and resumed past its selected epoch) left its selected epoch's test
probabilities (``predictions/``): its resample scores are computed here from them. A cell's score is the mean of its fold models' test scores, so
its resample b is the mean of their scores on resample b, and the interval is the 2.5th and
97.5th percentile of those means. It says how much the cell would move with another test set
of the same size; the fold std says how much it moves with another training split.

Example::

    >>> intervals = cell_intervals(store, select_studies(store.read_trials().to_pylist()))  # doctest: +SKIP
    >>> intervals["3f2a9c01d4"]                                                              # doctest: +SKIP
    (0.9741, 0.9862)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Optional

import numpy as np

from trainables.artifacts import TrialFiles
from trainables.training.outputs import load_bootstrap, load_predictions

READ_THREADS = 8  # on an object store each file is a request
LEVEL = 95.0


def _resample_scores(root: str, study: dict) -> Optional[np.ndarray]:
    files = TrialFiles(root, study["study_id"], study["trial_id"])
    scores = load_bootstrap(files.bootstrap)
    if scores is not None:
        return scores
    try:
        probs, labels = load_predictions(files.predictions)
    except FileNotFoundError:
        return None  # a trial that failed before its first test score
    if (labels < 0).any():
        return None  # hidden test labels (Kaggle)
    from trainables.training.bootstrap import resamples_of

    return resamples_of(labels).scores(study["metric"], probs)


def cell_intervals(root: str, studies: Iterable[dict]) -> dict[str, tuple[float, float]]:
    """cell_id -> (low, high) of every cell whose selected trials all left their resample
    scores (the same number each); a cell missing one has no interval rather than one of
    fewer folds than its mean."""
    studies = [s for s in studies if s.get("test_score") is not None]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        scores = list(pool.map(lambda s: _resample_scores(root, s), studies))
    by_cell: dict[str, list] = {}
    for study, resampled in zip(studies, scores):
        by_cell.setdefault(study["cell_id"], []).append(resampled)
    out = {}
    for cell_id, folds in by_cell.items():
        if any(f is None for f in folds) or len({len(f) for f in folds}) != 1:
            continue
        means = np.mean(folds, axis=0)
        tail = (100.0 - LEVEL) / 2
        low, high = np.nanpercentile(means, [tail, 100.0 - tail])
        out[cell_id] = (float(low), float(high))
    return out
