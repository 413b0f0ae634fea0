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


def test_simpleshot_is_cl2n_nearest_centroid_computed_by_hand():
    from trainables.training.probes import simpleshot_probabilities

    x, y = _blobs(n=60, dim=8, classes=3)
    support_x, support_y, queries = x[:12], y[:12], x[12:]
    probs = simpleshot_probabilities(torch.as_tensor(support_x), torch.as_tensor(support_y),
                                     torch.as_tensor(queries), 3).numpy()
    mean = support_x.mean(0)
    unit = lambda a: (a - mean) / np.linalg.norm(a - mean, axis=1, keepdims=True)  # noqa: E731
    centroids = np.stack([unit(support_x)[support_y == c].mean(0) for c in range(3)])
    distances = ((unit(queries)[:, None, :] - centroids[None]) ** 2).sum(-1)
    assert np.array_equal(probs.argmax(1), distances.argmin(1))  # SimpleShot's nearest centroid
    expected = np.exp(-distances) / np.exp(-distances).sum(1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-6)


def test_simpleshot_gives_a_class_without_support_no_probability():
    from trainables.training.probes import simpleshot_probabilities

    x, y = _blobs(n=40, dim=4, classes=3)
    keep = y != 2
    probs = simpleshot_probabilities(torch.as_tensor(x[keep]), torch.as_tensor(y[keep]), torch.as_tensor(x), 3)
    assert torch.all(probs[:, 2] == 0) and torch.allclose(probs.sum(1), torch.ones(len(x)))


def test_episode_supports_are_balanced_nested_across_shots_and_seeded_per_episode():
    from trainables.data.splits import episode_support

    labels = np.array([0] * 20 + [1] * 20 + [2] * 3)
    previous = set()
    for shots in (1, 2, 4, 8, 16):
        support = episode_support(labels, shots, seed=0, fold=2, episode=5)
        assert np.bincount(labels[support]).tolist() == [shots, shots, min(shots, 3)]  # a small class gives all
        assert previous <= set(support.tolist())
        previous = set(support.tolist())
    one = episode_support(labels, 4, seed=0, fold=2, episode=5)
    assert np.array_equal(one, episode_support(labels, 4, seed=0, fold=2, episode=5))
    others = [episode_support(labels, 4, seed=0, fold=f, episode=e) for f, e in ((2, 6), (3, 5))]
    assert all(not np.array_equal(one, o) for o in others)


def test_fewshot_studies_need_shots_and_episodes_and_search_nothing():
    study = StudySpec(grid="t", dataset="digits", backbones=("test_vit",), mode="fewshot", subset="4-shot",
                      n_train=250, fold=0, n_trials=1, max_epochs=1, grace_period=1, shots=4, episodes=10)
    assert get_mode("fewshot").search.fixed and not get_mode("knn").search.fixed
    with pytest.raises(SpecError, match="mode 'fewshot' searches nothing: n_trials must be 1, got 3"):
        study.replace(n_trials=3)
    with pytest.raises(SpecError, match="needs shots >= 1 .* got shots=0, episodes=10"):
        study.replace(shots=0)
    with pytest.raises(SpecError, match="shots and episodes apply to the episodic modes \\(fewshot\\); mode 'knn'"):
        study.replace(mode="knn", n_trials=3)
