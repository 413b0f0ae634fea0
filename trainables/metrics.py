"""Scores of the paper: ROC AUC (binary; one-vs-rest macro for multi-class) and quadratic
weighted Cohen's kappa (APTOS). A split with a single class has no AUC: that is an error that
says so, never a silent nan.

Example::

    >>> score("auc", np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]))
    1.0
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score, roc_auc_score

METRICS = ("auc", "kappa_quadratic")


class MetricError(ValueError):
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
            return float(roc_auc_score(labels, probs[:, 1]))
        if len(present) < probs.shape[1]:
            # A small fold may miss a class: score over the classes present, renormalised
            # (scikit-learn's ovr needs rows that sum to 1 over the columns it is given).
            probs = probs[:, present]
            probs = probs / probs.sum(axis=1, keepdims=True)
            if len(present) == 2:
                return float(roc_auc_score(labels == present[1], probs[:, 1]))
            return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=present))
        return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    return float(cohen_kappa_score(labels, probs.argmax(axis=1), weights="quadratic"))
