"""Bootstrap resamples of the test set: stratified, seeded, and each weighted score equal to
the metric computed on the resampled images themselves."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainables.training import bootstrap
from trainables.training.bootstrap import BootstrapResamples
from trainables.training.metrics import score


@st.composite
def scored_sets(draw):
    classes = draw(st.integers(2, 5))
    n = draw(st.integers(classes * 2, 60))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(classes), rng.integers(0, classes, n - classes)])
    probs = rng.dirichlet(np.ones(classes), n)
    # Coarse probabilities: many ties, which AUC counts half.
    probs = np.round(probs, draw(st.integers(1, 3)))
    probs = np.clip(probs, 1e-3, None)
    return labels, probs / probs.sum(axis=1, keepdims=True)


# AUC over every pair as one matrix product (small test sets), and by ranks (large ones).
@pytest.mark.parametrize("metric,pairwise_max", [("auc", 10**9), ("auc", 0), ("kappa_quadratic", 10**9)])
@settings(max_examples=30, deadline=None)
@given(data=scored_sets())
def test_each_resample_scores_as_the_resampled_test_set_would(metric, pairwise_max, data):
    labels, probs = data
    resamples = BootstrapResamples(labels, resamples=20)
    counts = resamples.counts.numpy()
    expected = [score(metric, np.repeat(labels, c), np.repeat(probs, c, axis=0)) for c in counts]
    saved, bootstrap.PAIRWISE_MAX = bootstrap.PAIRWISE_MAX, pairwise_max
    try:
        np.testing.assert_allclose(resamples.scores(metric, probs), expected, atol=1e-12)
    finally:
        bootstrap.PAIRWISE_MAX = saved


def test_resamples_are_stratified_seeded_and_the_same_for_every_count_asked():
    labels = np.array([0] * 30 + [1] * 7 + [2] * 3)
    resamples = BootstrapResamples(labels)
    counts = resamples.counts.numpy()
    assert counts.shape == (1000, 40)
    for c in counts:  # every class drawn to its own size
        assert np.bincount(np.repeat(labels, c), minlength=3).tolist() == [30, 7, 3]
    assert np.array_equal(BootstrapResamples(labels).counts.numpy(), counts)
    assert np.array_equal(BootstrapResamples(labels, resamples=10).counts.numpy(), counts[:10])
    assert not np.array_equal(BootstrapResamples(labels, seed=1).counts.numpy(), counts)
    # Resamples differ from each other (not one draw repeated).
    assert len({c.tobytes() for c in counts}) == 1000


def test_a_better_model_scores_higher_on_almost_every_resample():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    good = np.clip(labels + rng.normal(0, 0.4, 400), 0, 1)
    weak = np.clip(labels + rng.normal(0, 1.5, 400), 0, 1)
    resamples = BootstrapResamples(labels, resamples=200)
    a = resamples.scores("auc", np.stack([1 - good, good], 1))
    b = resamples.scores("auc", np.stack([1 - weak, weak], 1))
    assert (a > b).mean() > 0.95
    # The resample scores spread around the full test set's score.
    full = score("auc", labels, np.stack([1 - good, good], 1))
    assert np.percentile(a, 2.5) < full < np.percentile(a, 97.5)
