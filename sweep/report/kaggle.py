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

import math
from typing import Optional

import numpy as np

from sweep.store.formatting import csv_text
from trainables import storage
from trainables.artifacts import TrialFiles
from trainables.data.datasets import DatasetError, dataset_names, get_dataset_info
from trainables.training.outputs import load_predictions
from trainables.training.metrics import METRIC_RANGES


def score_problem(dataset: str, value: float) -> Optional[str]:
    """Why ``value`` cannot be a leaderboard score of ``dataset`` (None: it can): NaN, an
    infinity, or outside its metric's range (AUC 0..1, quadratic kappa -1..1)."""
    metric = get_dataset_info(dataset).metric
    low, high = METRIC_RANGES[metric]
    if not (math.isfinite(value) and low <= value <= high):
        return f"{value!r} is not a score of {metric} (expected a number from {low:g} to {high:g})"
    return None


def final_score(dataset: str, private: float, public: float) -> float:
    """The paper's section 5.6: alpha * private + (1 - alpha) * public."""
    info = get_dataset_info(dataset)
    if info.kaggle is None:
        raise DatasetError(f"dataset {dataset!r} is not scored on Kaggle: its test labels ship with it")
    for board, value in (("private", private), ("public", public)):
        problem = score_problem(dataset, value)
        if problem:
            raise DatasetError(f"{dataset} {board} leaderboard score {problem}")
    alpha = info.kaggle[2]
    return round(alpha * private + (1 - alpha) * public, 10)


def _column(dataset: str, probs: np.ndarray) -> list:
    if get_dataset_info(dataset).metric == "auc" and probs.shape[1] == 2:
        return [f"{p:.6f}" for p in probs[:, 1]]
    return [int(c) for c in probs.argmax(axis=1)]


def _write_csv(path: str, header: tuple[str, str], ids: list[str], values: list) -> None:
    rows = [dict(zip(header, pair)) for pair in zip(ids, values)]
    storage.write_atomic(path, (csv_text(rows) or ",".join(header) + "\n").encode())


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
            path = TrialFiles(root, row["study_id"], row["trial_id"]).predictions
            if not storage.exists(path):
                continue
            probs, _ = load_predictions(path)
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


SCORES_COLUMNS = ("submission", "private", "public")


def read_kaggle_scores(path: str) -> dict[str, tuple[float, float]]:
    """submission (its path under ``submissions/``) -> (private, public) of each filled row of a
    ``kaggle_scores.csv`` (the file ``sweep report`` writes to fill in); rows left blank are
    not scored yet. A missing column or a value that is not a score is an error naming it."""
    from trainables.data.readers import read_csv

    filled = {}
    # A submission twice would leave one of its scores unsaid: an error naming both lines.
    for line, row in read_csv(path, SCORES_COLUMNS, id_column="submission"):
        if not row["private"] and not row["public"]:
            continue
        try:
            private, public = float(row["private"]), float(row["public"])
        except ValueError:
            raise DatasetError(f"{path} line {line}: private {row['private']!r} and public {row['public']!r} "
                               f"must both be scores (numbers), or both blank") from None
        dataset = row["submission"].replace("\\", "/").split("/", 1)[0].split("-", 1)[0]
        for board, value in (("private", private), ("public", public)):
            problem = score_problem(dataset, value) if dataset in dataset_names() else (
                None if math.isfinite(value) else f"{value!r} is not a score")
            if problem:
                raise DatasetError(f"{path} line {line}: {board} {problem}")
        filled[row["submission"]] = (private, public)
    return filled


def _fold_submission(name: str) -> tuple[str, int] | None:
    """(cell id, fold) of a per-fold submission ``<dataset>-...-<cell_id>/fold<k>.csv``; None
    for the fold ensemble."""
    folder, _, file = name.replace("\\", "/").rpartition("/")
    if not (file.startswith("fold") and file.endswith(".csv") and file[4:-4].isdigit()):
        return None
    return folder.rsplit("-", 1)[-1], int(file[4:-4])


def with_kaggle_scores(studies: list[dict], filled: dict[str, tuple[float, float]], source: str) -> list[dict]:
    """The selected studies with the alpha-weighted Kaggle score of their fold model as their
    test score where the test labels are hidden (``scored_by`` "kaggle"), as the paper did:
    cells then carry mean ± std over folds of those scores. A filled submission that names no
    fold model of these studies is an error naming it (a file of another store)."""
    by_fold = {(r["cell_id"], r["fold"]): r for r in studies}
    scores = {}
    for name, (private, public) in filled.items():
        key = _fold_submission(name)
        if key is None:
            continue  # the fold ensemble: a score of its own, in the Kaggle table only
        if key not in by_fold:
            raise DatasetError(f"{source}: submission {name!r} is not one of this store's fold models")
        scores[key] = final_score(by_fold[key]["dataset"], private, public)
    out = []
    for row in studies:
        final = scores.get((row["cell_id"], row["fold"]))
        hidden = row.get("test_score") is None or row["test_score"] != row["test_score"]
        out.append({**row, "test_score": final, "scored_by": "kaggle"} if final is not None and hidden else row)
    return out
