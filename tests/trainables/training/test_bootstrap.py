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


# All resamples scored at once, and a few at a time (the chunks of a large test set).
@pytest.mark.parametrize("metric", ["auc", "kappa_quadratic"])
@pytest.mark.parametrize("chunk_elements", [bootstrap.CHUNK_ELEMENTS, 150])
@settings(max_examples=30, deadline=None)
@given(data=scored_sets())
def test_each_resample_scores_as_the_resampled_test_set_would(metric, chunk_elements, data):
    labels, probs = data
    saved, bootstrap.CHUNK_ELEMENTS = bootstrap.CHUNK_ELEMENTS, chunk_elements
    try:
        resamples = BootstrapResamples(labels, resamples=20)
        assert (resamples._float is None) == (chunk_elements // len(labels) < 20)
        counts = resamples.counts.numpy()
        expected = [score(metric, np.repeat(labels, c), np.repeat(probs, c, axis=0)) for c in counts]
        np.testing.assert_allclose(resamples.scores(metric, probs), expected, atol=1e-12)
    finally:
        bootstrap.CHUNK_ELEMENTS = saved


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


def test_a_process_draws_a_test_sets_resamples_once_and_keeps_the_last_few():
    first, second, third = np.array([0, 1, 1, 0, 1]), np.array([1, 0, 0, 1, 1, 0]), np.array([0, 0, 1, 1])
    kept = bootstrap.resamples_of(first)
    assert bootstrap.resamples_of(first.copy()) is kept  # equal labels, another array: the same draw
    assert np.array_equal(kept.counts.numpy(), BootstrapResamples(first).counts.numpy())
    # Same bytes, another dtype: other labels.
    assert bootstrap.resamples_of(first.astype(np.int32)) is not kept
    bootstrap.resamples_of(second)
    bootstrap.resamples_of(third)
    assert len(bootstrap._kept) == bootstrap.KEPT_TEST_SETS
    assert bootstrap.resamples_of(first) is not kept  # evicted, drawn again
    assert np.array_equal(bootstrap.resamples_of(first).counts.numpy(), kept.counts.numpy())
