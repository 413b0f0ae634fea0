"""Kaggle-scored data sets (test labels hidden): submission files and the paper's weighting.

For each cell, the selected trial of every fold saved its test probabilities
(``predictions/<study_id>/<trial_id>.npy``); this writes, in the columns of the dataset's
``sample_submission.csv``, one CSV per fold and one for the fold ensemble (mean of the 5
folds' probabilities). AUC-scored sets (PatchCam) submit the positive-class probability;
kappa-scored sets (APTOS) the most probable grade.

Example::

    >>> final_score("aptos", private=0.80, public=0.70)
    0.785
"""

from __future__ import annotations

import csv
import io

import numpy as np

from trainables import storage
from trainables.datasets import DatasetError, get_dataset_info


def final_score(dataset: str, private: float, public: float) -> float:
    """The paper's section 5.6: alpha * private + (1 - alpha) * public."""
    info = get_dataset_info(dataset)
    if info.kaggle is None:
        raise DatasetError(f"dataset {dataset!r} is not scored on Kaggle: its test labels ship with it")
    alpha = info.kaggle[2]
    return round(alpha * private + (1 - alpha) * public, 10)


def _column(dataset: str, probs: np.ndarray) -> list:
    if get_dataset_info(dataset).metric == "auc" and probs.shape[1] == 2:
        return [f"{p:.6f}" for p in probs[:, 1]]
    return [int(c) for c in probs.argmax(axis=1)]


def _write_csv(path: str, header: tuple[str, str], ids: list[str], values: list) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(zip(ids, values))
    storage.write_atomic(path, text.getvalue().encode())


def write_submissions(root: str, studies: list[dict], test_ids: dict[str, list[str]]) -> list[str]:
    """Write submissions for every hidden-label cell among ``studies`` (selected trials)."""
    written = []
    cells: dict[str, list[dict]] = {}
    for row in studies:
        if get_dataset_info(row["dataset"]).kaggle is not None and row["dataset"] in test_ids:
            cells.setdefault(row["cell_id"], []).append(row)
    for cell_id, rows in cells.items():
        first = rows[0]
        id_col, label_col, _ = get_dataset_info(first["dataset"]).kaggle
        ids = test_ids[first["dataset"]]
        folder = storage.join(root, "submissions", f"{first['dataset']}-{first['mode']}-{first['backbone']}-n{first['n_train']}-{cell_id}")
        fold_probs = []
        for row in sorted(rows, key=lambda r: r["fold"]):
            path = storage.join(root, "predictions", row["study_id"], f"{row['trial_id']}.npy")
            if not storage.exists(path):
                continue
            probs = np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False)
            if len(probs) != len(ids):
                raise DatasetError(f"{path}: {len(probs)} predictions for a test set of {len(ids)}")
            fold_probs.append(probs)
            out = storage.join(folder, f"fold{row['fold']}.csv")
            _write_csv(out, (id_col, label_col), ids, _column(first["dataset"], probs))
            written.append(out)
        if fold_probs:
            out = storage.join(folder, "ensemble.csv")
            _write_csv(out, (id_col, label_col), ids, _column(first["dataset"], np.mean(fold_probs, axis=0)))
            written.append(out)
    return written
