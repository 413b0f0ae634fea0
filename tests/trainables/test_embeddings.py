import os

import numpy as np
import pytest
import torch

from trainables.backbones import create_backbone, embed
from trainables.datasets import get_dataset_info, load_dataset
from trainables.embeddings import cache_key, ensure_embeddings, load_embeddings
from trainables.transforms import build_transform


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return cache, ensure_embeddings("digits", None, "test_resnet", None, cache)


def test_cache_file_holds_both_splits_with_labels(cached):
    _, path = cached
    data = load_dataset("digits")
    emb = load_embeddings(path)
    assert emb["pool"].features.shape == (1257, 96) and emb["test"].features.shape == (540, 96)
    assert np.array_equal(emb["pool"].labels, data.pool.labels)
    assert np.array_equal(emb["test"].labels, data.test.labels)
    assert emb["pool"].groups is None


def test_cached_features_equal_a_fresh_forward(cached):
    _, path = cached
    data = load_dataset("digits")
    model, info = create_backbone("test_resnet", img_size=32)
    tf = build_transform(get_dataset_info("digits"), info, train=False)
    with torch.no_grad():
        fresh = embed(model.eval(), info, torch.stack([tf(img) for img in data.test.images[:5]]))
    np.testing.assert_allclose(load_embeddings(path)["test"].features[:5], fresh.numpy(), atol=1e-5)


def test_features_are_a_zero_copy_view_of_the_mapped_file(cached):
    _, path = cached
    feats = load_embeddings(path)["pool"].features
    assert not feats.flags.owndata and not feats.flags.writeable


def test_second_call_extracts_nothing(cached):
    cache, path = cached
    before = os.stat(path).st_mtime_ns
    assert ensure_embeddings("digits", None, "test_resnet", None, cache) == path
    assert os.stat(path).st_mtime_ns == before
    assert [f for f in os.listdir(cache) if f.endswith(".tmp")] == []


def test_key_changes_with_every_part():
    base = cache_key("digits-abc", "test_resnet", "init-seed0", "Resize(32)")
    assert len({base,
                cache_key("digits-abd", "test_resnet", "init-seed0", "Resize(32)"),
                cache_key("digits-abc", "test_vit", "init-seed0", "Resize(32)"),
                cache_key("digits-abc", "test_resnet", "sha-1", "Resize(32)"),
                cache_key("digits-abc", "test_resnet", "init-seed0", "Resize(64)")}) == 5
