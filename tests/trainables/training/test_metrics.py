import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from trainables.training.metrics import MetricError, score


def test_binary_auc_uses_the_positive_column():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.9])
    probs = np.stack([1 - p1, p1], axis=1)
    assert score("auc", y, probs) == pytest.approx(roc_auc_score(y, p1)) == pytest.approx(0.75)


def test_multiclass_auc_is_one_vs_rest_macro():
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 10)
    probs = rng.dirichlet(np.ones(3), size=30)
    expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert score("auc", y, probs) == pytest.approx(expected)


def test_multiclass_auc_with_a_class_absent_from_the_split_is_the_mean_of_the_present_classes_ovr_auc():
    """The definition (trainables/training/metrics.py): each present class's own probability scored
    one-vs-rest by scikit-learn, then the mean; the absent class is left out."""
    rng = np.random.default_rng(3)
    y = rng.choice([0, 2, 3], size=40)  # class 1 of 4 absent
    probs = rng.dirichlet(np.ones(4), size=40)
    expected = np.mean([roc_auc_score(y == c, probs[:, c]) for c in (0, 2, 3)])
    assert score("auc", y, probs) == pytest.approx(expected, abs=1e-12)
    # With every class present it is scikit-learn's ovr macro AUC itself.
    y[:4] = [0, 1, 2, 3]
    assert score("auc", y, probs) == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))


def test_quadratic_kappa_of_the_argmax():
    y = np.array([0, 1, 2, 3, 4, 4])
    probs = np.eye(5)[[0, 1, 1, 3, 4, 2]]
    assert score("kappa_quadratic", y, probs) == pytest.approx(
        cohen_kappa_score(y, [0, 1, 1, 3, 4, 2], weights="quadratic")
    )


def test_single_class_split_is_a_named_error_not_nan():
    with pytest.raises(MetricError, match="validation fold holds only class \\[1\\]"):
        score("auc", np.ones(4, int), np.full((4, 2), 0.5), where="validation fold")


def test_unknown_metric_lists_valid_ones():
    with pytest.raises(MetricError, match="auc, kappa_quadratic"):
        score("f1", np.array([0, 1]), np.eye(2))


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_rank_auc_equals_scikit_learn_with_ties_and_absent_classes(n_classes):
    rng = np.random.default_rng(n_classes)
    for trial in range(20):
        n = int(rng.integers(12, 80))
        y = rng.integers(0, n_classes, n)
        y[:2] = [0, 1]  # at least two classes present
        # Rounded probabilities: many tied scores, the case a rank formula gets wrong easily.
        probs = np.round(rng.dirichlet(np.ones(n_classes), size=n), 1) + 1e-3
        probs = probs / probs.sum(axis=1, keepdims=True)
        present = np.unique(y)
        if n_classes == 2:
            expected = roc_auc_score(y, probs[:, 1])
        elif len(present) == n_classes:
            expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
        else:
            expected = np.mean([roc_auc_score(y == c, probs[:, c]) for c in present])
        assert score("auc", y, probs) == pytest.approx(expected, abs=1e-12), (n_classes, trial)
