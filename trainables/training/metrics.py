"""Scores of the paper: ROC AUC (binary; one-vs-rest macro for multi-class) and quadratic
weighted Cohen's kappa (APTOS). A split with a single class has no AUC: that is an error that
says so, never a silent nan.

AUC, defined: with two classes, the AUC of the positive class's probability. With more, the
mean over the classes *present in the split* of the binary AUC of each class's own predicted
probability against every other image (one-vs-rest, macro). With every class present this is
scikit-learn's ``multi_class="ovr", average="macro"``; a class absent from a small fold has no
AUC of its own and is left out of the mean (the probabilities are used as they are: no
renormalisation over the classes present).

AUC is computed from ranks (the Mann-Whitney form, ties counted half), which equals
scikit-learn's ``roc_auc_score`` (the tests compare the two) at a fiftieth of the cost: the
score runs every epoch of every trial, and for a linear probe on cached embeddings
scikit-learn's input checks were 70% of the trial's time.

Example::

    >>> score("auc", np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]))
    1.0
"""

from __future__ import annotations

import numpy as np

from trainables.errors import UserError

METRICS = ("auc", "kappa_quadratic")
# The values each metric can take: a score outside is not one (a Kaggle score typed in, say).
METRIC_RANGES = {"auc": (0.0, 1.0), "kappa_quadratic": (-1.0, 1.0)}


class MetricError(UserError):
    pass


def score(metric: str, labels: np.ndarray, probs: np.ndarray, where: str = "split") -> float:
    """``probs``: (N, C) class probabilities, rows summing to 1."""
    labels = np.asarray(labels)
    if metric not in METRICS:
        raise MetricError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    present = np.unique(labels)
    if metric == "auc":
        if len(present) < 2:
            raise MetricError(
                f"the {where} holds only class {present.tolist()}: AUC needs at least two classes "
                f"(use a larger subset or fewer folds)"
            )
        if probs.shape[1] == 2:
            return float(_auc(labels[:, None] == 1, probs[:, 1:])[0])
        # One-vs-rest over the classes present (a small fold may miss one): the module's definition.
        return float(np.mean(_auc(labels[:, None] == present[None, :], probs[:, present])))
    from sklearn.metrics import cohen_kappa_score  # here, as rankdata below: see _auc

    return float(cohen_kappa_score(labels, probs.argmax(axis=1), weights="quadratic"))


def _auc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per column j: the binary ROC AUC of ``scores[:, j]`` for ``positive[:, j]``, i.e.
    P(score of a positive > score of a negative), ties counting half."""
    # Imported where scoring happens: the dataset registry reads METRICS, and every process
    # that loads a dataset (the CLI, the extraction tasks) would pay scipy.stats and
    # scikit-learn's metrics, above 1 CPU-s, for two names.
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)  # average ranks: tied scores share the mean rank
    n_pos = positive.sum(axis=0)
    n_neg = len(positive) - n_pos
    return ((ranks * positive).sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
