"""The probes: each fit is what its reference computes, on the cached features."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sweep.spec import SpecError, StudySpec
from trainables.models.modes import get_mode
from trainables.training.probes import KNN_TEMPERATURE, knn_probabilities, logistic_torch, standardise


def _blobs(n=300, dim=16, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 2
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.standard_normal((n, dim))).astype(np.float32), y


@pytest.mark.parametrize("C", [1e-2, 1.0, 100.0])
def test_the_gpu_logistic_fit_is_scikit_learns_objective(C):
    """The torch L-BFGS path (run on a GPU share) and scikit-learn's lbfgs (on a CPU) fit the
    same regularised multinomial objective: their probabilities agree."""
    x, y = _blobs()
    (x,) = standardise(x)
    ours = logistic_torch(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y), 3, C).double()
    with torch.no_grad():
        p_torch = torch.softmax(ours(torch.as_tensor(x, dtype=torch.float64)), 1).numpy()
    p_sklearn = LogisticRegression(C=C, max_iter=5000, tol=1e-10).fit(x, y).predict_proba(x)
    np.testing.assert_allclose(p_torch, p_sklearn, atol=2e-3)


def test_knn_votes_are_dinos_weighted_votes_computed_by_hand():
    x, y = _blobs(n=120, dim=8)
    train_x, train_y, queries = x[:100], y[:100], x[100:]
    ours = knn_probabilities(torch.as_tensor(train_x), torch.as_tensor(train_y), torch.as_tensor(queries), 7, 3).numpy()
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    similarity = unit(queries) @ unit(train_x).T
    expected = np.zeros((len(queries), 3))
    for i, row in enumerate(similarity):
        nearest = np.argsort(-row)[:7]
        for j in nearest:
            expected[i, train_y[j]] += np.exp(row[j] / KNN_TEMPERATURE)
    np.testing.assert_allclose(ours, expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_knn_with_more_neighbours_than_rows_votes_with_them_all():
    x, y = _blobs(n=10, dim=4)
    probs = knn_probabilities(torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(x[:2]), 200, 3)
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(1), torch.ones(2))


def test_each_probe_searches_its_own_value_and_fits_view_0_only():
    study = StudySpec(grid="t", dataset="digits", backbones=("test_resnet",), mode="knn", subset="S", n_train=50,
                      fold=0, n_folds=5, max_epochs=1, grace_period=1)
    assert get_mode("knn").search.distribution(study) == optuna.distributions.IntDistribution(1, 200)
    assert get_mode("logistic").search.distribution(study.replace(mode="logistic")) == \
        optuna.distributions.FloatDistribution(1e-6, 1e5, log=True)
    assert get_mode("linear").search.distribution(study.replace(mode="linear")).low == study.lr_min
    with pytest.raises(SpecError, match="views 4: mode 'logistic' fits on the evaluation view \\(view 0\\) only"):
        study.replace(mode="logistic", views=4)
    assert study.replace(backbones=("test_resnet", "test_vit")).backbones == ("test_resnet", "test_vit")


def test_views_given_to_a_sweep_leave_the_probes_on_view_0():
    from sweep.grids import load_grid, with_embedding_options

    studies = with_embedding_options(load_grid("demo"), views=4, dtype="float16")
    views = {(s.mode, s.views, s.embedding_dtype) for s in studies}
    assert ("linear", 4, "float16") in views and ("dvme", 4, "float16") in views
    assert ("logistic", 1, "float16") in views and ("knn", 1, "float16") in views
    assert ("finetune", 1, "float32") in views
