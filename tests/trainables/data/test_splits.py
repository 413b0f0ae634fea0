import numpy as np
import pytest

from trainables.data.splits import SplitError, balanced_order, balanced_subset, fold_split

LABELS = np.array([0] * 40 + [1] * 25 + [2] * 6)  # class 2 is rare


def test_subset_is_balanced_when_the_pool_allows():
    sub = balanced_subset(LABELS, 15, seed=3)
    assert len(sub) == 15 and len(set(sub)) == 15
    assert np.bincount(LABELS[sub]).tolist() == [5, 5, 5]


def test_uneven_size_differs_by_at_most_one_per_class():
    counts = np.bincount(LABELS[balanced_subset(LABELS, 17, seed=0)], minlength=3)
    assert counts.sum() == 17 and counts.max() - counts.min() <= 1


def test_short_class_gives_all_it_has_and_the_others_share_the_rest_equally():
    counts = np.bincount(LABELS[balanced_subset(LABELS, 40, seed=1)])
    # class 2 has 6: the 34 left are split 17/17 between classes 0 and 1
    assert counts.tolist() == [17, 17, 6]


def test_subsets_are_nested_across_sizes():
    small, medium, full = (set(balanced_subset(LABELS, n, seed=7)) for n in (9, 30, len(LABELS)))
    assert small < medium < full and full == set(range(len(LABELS)))


def test_deterministic_from_seed_and_varies_with_it():
    a = balanced_subset(LABELS, 20, seed=5)
    assert np.array_equal(a, balanced_subset(LABELS, 20, seed=5))
    assert not np.array_equal(a, balanced_subset(LABELS, 20, seed=6))
    assert np.array_equal(balanced_order(LABELS, 2), balanced_order(LABELS, 2))


def test_subset_larger_than_pool_is_an_error_naming_sizes():
    with pytest.raises(SplitError, match="subset of 100 images asked from a pool of 71"):
        balanced_subset(LABELS, 100, seed=0)


def test_folds_partition_the_subset_and_are_stratified():
    sub = balanced_subset(LABELS, 15, seed=0)  # 5 per class: 1 per class per fold
    vals = []
    for fold in range(5):
        train, val = fold_split(LABELS, sub, 5, fold, seed=0)
        assert not set(train) & set(val)
        assert set(train) | set(val) == set(sub)
        assert np.bincount(LABELS[val], minlength=3).tolist() == [1, 1, 1]
        vals.append(set(val))
    assert set().union(*vals) == set(sub) and sum(len(v) for v in vals) == len(sub)
    again = fold_split(LABELS, sub, 5, 3, seed=0)
    assert np.array_equal(again[1], fold_split(LABELS, sub, 5, 3, seed=0)[1])


def test_grouped_folds_never_split_a_patient():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 3)  # 30 patients, 3 images each, one label per patient
    labels = np.repeat(rng.integers(0, 2, 30), 3)
    sub = np.arange(90)
    for fold in range(5):
        train, val = fold_split(labels, sub, 5, fold, seed=1, groups=groups)
        assert not set(groups[train]) & set(groups[val])


def test_single_class_subset_is_an_error():
    with pytest.raises(SplitError, match="single class"):
        fold_split(np.zeros(10, int), np.arange(10), 5, 0, seed=0)
