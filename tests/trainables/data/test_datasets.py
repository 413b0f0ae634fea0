import numpy as np
import pytest

from trainables.data.datasets import DatasetError, dataset_names, get_dataset_info, load_dataset


def test_digits_ships_and_splits_into_a_fixed_pool_and_test_set():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert len(a.pool) == get_dataset_info("digits").pool_size == 1257
    assert len(a.test) == 540
    assert not set(a.pool.ids) & set(a.test.ids)
    assert a.pool.ids == b.pool.ids and a.fingerprint == b.fingerprint
    assert a.pool.images.dtype.is_floating_point is False and tuple(a.pool.images.shape[1:]) == (3, 8, 8)
    assert np.bincount(a.test.labels).min() >= 50  # stratified: every digit in the test set


@pytest.mark.parametrize("name", dataset_names())
def test_every_dataset_has_its_paper_metadata(name):
    info = get_dataset_info(name)
    if info.pool_size is not None:  # the paper's datasets and the demo's
        assert info.published_counts[0] >= info.pool_size and info.n_classes >= 2
    if info.needs_root:
        with pytest.raises(DatasetError, match=f"--data {name}=ROOT"):
            load_dataset(name)


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'; valid datasets: aptos, digits, folder, medmnist, nih, patchcam, pneumonia"):
        get_dataset_info("cifar")


def test_paper_metrics_match_the_protocol():
    assert get_dataset_info("aptos").metric == "kappa_quadratic"
    assert {get_dataset_info(d).metric for d in ("patchcam", "pneumonia", "nih")} == {"auc"}


def test_holdout_is_a_stratified_labelled_test_set_disjoint_from_the_pool():
    full = load_dataset("digits")
    data = load_dataset("digits", holdout=0.2)
    assert len(data.pool) + len(data.test) == len(full.pool)
    assert not set(data.pool.ids) & set(data.test.ids)
    assert set(data.pool.ids) | set(data.test.ids) == set(full.pool.ids)
    assert (data.test.labels >= 0).all() and np.bincount(data.test.labels).min() >= 20
    assert data.fingerprint != full.fingerprint
    assert load_dataset("digits", holdout=0.2).test.ids == data.test.ids  # never moves


def test_holdout_keeps_patients_on_one_side(tmp_path):
    from tests import layouts

    layouts.pneumonia(str(tmp_path))
    data = load_dataset("pneumonia", str(tmp_path), holdout=0.5)
    assert not set(data.pool.groups) & set(data.test.groups)


def test_holdout_fraction_is_checked():
    with pytest.raises(DatasetError, match="--holdout 0.9: expected a fraction in \\(0, 0.5\\]"):
        load_dataset("digits", holdout=0.9)
