"""Extraction at the batch a GPU can hold, streamed to the cache: the features are those an
unhindered, unchunked extraction gives."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import torch

from trainables.cache import embeddings
from trainables.cache.embeddings import ensure_embeddings, extract_views_if_missing, list_cache, load_embeddings
from trainables.cache.parts import RowFeatures
from trainables.cache.views import View, embed_views
from trainables.data.datasets import get_dataset_info, load_dataset
from trainables.data.transforms import build_transform
from trainables.models.backbones import create_backbone


class HoldsAtMost(torch.nn.Module):
    """A backbone on a device that holds at most ``limit`` images a batch: more is CUDA's
    out-of-memory error, as a GPU shared with other trials raises it."""

    def __init__(self, model, limit: int):
        super().__init__()
        self.model, self.limit, self.num_features = model, limit, model.num_features
        self.sizes: list[int] = []

    def forward(self, images):
        self.sizes.append(len(images))
        if len(images) > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate for {len(images)} images")
        return self.model(images)


def test_out_of_memory_halves_the_batch_and_goes_on_with_the_same_features(capsys):
    model, info = create_backbone("test_resnet", img_size=32)
    model.eval()
    data = load_dataset("digits")
    view = View(0, build_transform(get_dataset_info("digits"), info, train=False), None)
    plan = {view: np.arange(100)}
    plain = embed_views(model, info, data.pool.images, plan, torch.device("cpu"), batch_size=32)[0]
    limited = HoldsAtMost(model, limit=10)
    halved = embed_views(limited, info, data.pool.images, plan, torch.device("cpu"), batch_size=32)[0]
    np.testing.assert_allclose(halved, plain, rtol=1e-5, atol=1e-6)
    assert max(s for s in limited.sizes if s <= 10) == 8 and limited.sizes[:3] == [32, 16, 8]
    assert "CUDA out of memory embedding 16 images: going on at 8 a batch" in capsys.readouterr().err


def test_one_image_that_does_not_fit_is_the_error_it_is():
    model, info = create_backbone("test_resnet", img_size=32)
    data = load_dataset("digits")
    view = View(0, build_transform(get_dataset_info("digits"), info, train=False), None)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        embed_views(HoldsAtMost(model.eval(), limit=0), info, data.pool.images, {view: np.arange(4)}, torch.device("cpu"))


def test_the_cache_file_records_the_batch_extraction_ended_at(tmp_path, monkeypatch):
    built = embeddings.create_backbone

    def on_a_full_gpu(*args, **kwargs):
        model, info = built(*args, **kwargs)
        return HoldsAtMost(model.eval(), limit=40), info

    monkeypatch.setattr(embeddings, "create_backbone", on_a_full_gpu)
    path = ensure_embeddings("digits", None, "test_resnet", None, str(tmp_path / "held"), batch_size=128, progress=False)
    (entry,) = list_cache(str(tmp_path / "held"))
    assert entry["batch_size"] == 32 and entry["path"] == path
    monkeypatch.setattr(embeddings, "create_backbone", built)
    plain = ensure_embeddings("digits", None, "test_resnet", None, str(tmp_path / "plain"), batch_size=128, progress=False)
    assert list_cache(str(tmp_path / "plain"))[0]["batch_size"] == 128
    np.testing.assert_allclose(load_embeddings(path)["pool"].features, load_embeddings(plain)["pool"].features,
                               rtol=1e-5, atol=1e-6)


def test_a_pool_larger_than_a_chunk_streams_into_several_record_batches(tmp_path, monkeypatch):
    whole = load_embeddings(ensure_embeddings("digits", None, "test_resnet", None, str(tmp_path / "one"), progress=False))
    assert isinstance(whole["pool"].features, np.ndarray)  # one record batch: the mapped matrix itself
    monkeypatch.setattr(embeddings, "CHUNK_BYTES", 100 * 96 * 4)  # ~100 rows of 96-d float32 a chunk
    done = extract_views_if_missing("digits", None, "test_resnet", None, str(tmp_path / "many"),
                                    views={0: None, 1: None}, batch_size=64, progress=False)
    path = done[0][0][0]
    with pa.memory_map(path, "r") as source:
        reader = ipc.open_file(source)
        assert reader.num_record_batches > 10
        assert set(reader.schema.metadata) >= {b"extract_s", b"batch_size", b"key"}
    chunked = load_embeddings(path)
    assert isinstance(chunked["pool"].features, RowFeatures)
    rows = np.arange(len(whole["pool"].labels))
    np.testing.assert_array_equal(chunked["pool"].features[rows], whole["pool"].features[rows])
    np.testing.assert_array_equal(chunked["pool"].labels, whole["pool"].labels)
    np.testing.assert_array_equal(chunked["test"].features[np.arange(len(whole["test"].labels))], whole["test"].features)
    augmented = load_embeddings(done[1][0][0])["pool"]
    assert augmented.features.shape == whole["pool"].features.shape
