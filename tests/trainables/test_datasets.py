import numpy as np
import pytest

from trainables.datasets import DatasetError, dataset_names, get_dataset_info, load_dataset


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
        assert info.sizes["F"] == info.pool_size and info.n_classes >= 2
    if info.needs_root:
        with pytest.raises(DatasetError, match=f"--data {name}=ROOT"):
            load_dataset(name)


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'; valid datasets: aptos, digits, folder, medmnist, nih, patchcam, pneumonia"):
        get_dataset_info("cifar")


def test_paper_metrics_match_the_protocol():
    assert get_dataset_info("aptos").metric == "kappa_quadratic"
    assert {get_dataset_info(d).metric for d in ("patchcam", "pneumonia", "nih")} == {"auc"}
