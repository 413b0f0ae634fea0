import os

import numpy as np
import pytest
import torch

from tests import layouts
from trainables.models.backbones import create_backbone, embed
from trainables.data.datasets import get_dataset_info, load_dataset
from trainables.cache.embeddings import cache_key, ensure_embeddings, load_embeddings
from trainables.data.transforms import build_transform


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


def test_an_extraction_that_fails_at_its_last_step_leaves_no_file(tmp_path, monkeypatch):
    """Written under a temporary name (.tmp-*) and moved under its key at the end: a failure
    then leaves neither a half file under the key nor the temporary file."""
    import trainables.cache.embeddings

    def fail(local_file, where):
        assert os.path.basename(local_file).startswith(".tmp-") and os.path.exists(local_file)
        raise OSError("disk full")

    monkeypatch.setattr(trainables.cache.embeddings.storage, "upload", fail)
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="disk full"):
        ensure_embeddings("digits", None, "test_resnet", None, str(cache), progress=False)
    assert os.listdir(cache) == []


def test_key_changes_with_every_part():
    base = cache_key("digits-abc", "test_resnet", "init-seed0", "Resize(32)")
    assert len({base,
                cache_key("digits-abd", "test_resnet", "init-seed0", "Resize(32)"),
                cache_key("digits-abc", "test_vit", "init-seed0", "Resize(32)"),
                cache_key("digits-abc", "test_resnet", "sha-1", "Resize(32)"),
                cache_key("digits-abc", "test_resnet", "init-seed0", "Resize(64)")}) == 5


def test_key_changes_with_view_and_dtype():
    keys = {cache_key("d", "b", "w", "t", view, dtype) for view in (0, 1, 2) for dtype in ("float32", "float16")}
    assert len(keys) == 6


@pytest.fixture(scope="module")
def patchcam(tmp_path_factory):
    from tests import layouts

    root = str(tmp_path_factory.mktemp("patchcam"))
    layouts.patchcam(root, labels=(0, 1) * 6, n_test=3)
    return root


@pytest.fixture(scope="module")
def pneumonia(tmp_path_factory):
    """X-rays: augmented by random crops and rotations (no flips: the heart sits on the left)."""
    from tests import layouts

    root = str(tmp_path_factory.mktemp("pneumonia"))
    layouts.pneumonia(root)
    return root


def test_augmented_views_cover_the_pool_differ_from_each_other_and_from_evaluation(pneumonia, tmp_path):
    cache = str(tmp_path)
    evaluation = load_embeddings(ensure_embeddings("pneumonia", pneumonia, "test_resnet", None, cache))
    one = load_embeddings(ensure_embeddings("pneumonia", pneumonia, "test_resnet", None, cache, view=1))
    two = load_embeddings(ensure_embeddings("pneumonia", pneumonia, "test_resnet", None, cache, view=2))
    assert one["pool"].features.shape == evaluation["pool"].features.shape == (9, 96)
    assert len(one["test"].labels) == 0 and len(evaluation["test"].labels) == 3  # only the pool trains
    assert np.array_equal(one["pool"].labels, evaluation["pool"].labels)
    for a, b in ((one, evaluation), (two, evaluation), (one, two)):
        assert not np.allclose(a["pool"].features, b["pool"].features)


def test_an_augmented_view_does_not_depend_on_batch_size_or_workers(pneumonia, tmp_path):
    a = ensure_embeddings("pneumonia", pneumonia, "test_resnet", None, str(tmp_path / "a"), view=1,
                          workers=0, batch_size=5, progress=False)
    b = ensure_embeddings("pneumonia", pneumonia, "test_resnet", None, str(tmp_path / "b"), view=1,
                          workers=2, batch_size=4, progress=False)
    assert os.path.basename(a) == os.path.basename(b)
    np.testing.assert_array_equal(load_embeddings(a)["pool"].features, load_embeddings(b)["pool"].features)


def test_patchcams_four_views_are_its_four_flips_of_every_image(patchcam, tmp_path):
    """View k is flip combination k (identity, horizontal, vertical, both) for every image: an
    independent random flip per view left most images without some combinations."""
    from trainables.cache.embeddings import extract_views_if_missing
    from trainables.data.images import decode_file

    out = extract_views_if_missing("patchcam", patchcam, "test_resnet", None, str(tmp_path), progress=False, workers=0,
                                   views={v: range(12) for v in range(5)})
    data = load_dataset("patchcam", patchcam)
    model, info = create_backbone("test_resnet", img_size=96)
    evaluation = build_transform(get_dataset_info("patchcam"), info, train=False)
    images = torch.stack([evaluation(decode_file(p)) for p in data.pool.images.paths])
    flips = {1: images, 2: images.flip(-1), 3: images.flip(-2), 4: images.flip(-1).flip(-2)}
    with torch.no_grad():
        for view, flipped in flips.items():
            expected = embed(model.eval(), info, flipped).numpy()
            np.testing.assert_allclose(load_embeddings(out[view][0])["pool"].features, expected, atol=1e-5)
    # A fifth view would repeat one: refused before anything runs.
    from click.testing import CliRunner

    from sweep.cli import main

    result = CliRunner().invoke(main, ["plan", "--grid", "paper", "--where", "dataset=patchcam", "--views", "5"])
    assert result.exit_code == 2 and "patchcam's augmentation is its flips, 4 combinations" in result.output


def test_rows_extracted_in_parts_equal_the_whole_pools_and_each_row_is_extracted_once(patchcam, tmp_path):
    from trainables.cache.embeddings import CacheError, extract_if_missing, list_cache

    whole = {v: load_embeddings(ensure_embeddings("patchcam", patchcam, "test_resnet", None, str(tmp_path / "w"),
                                                  view=v, progress=False)) for v in (0, 1)}
    cache = str(tmp_path / "parts")
    for view in (0, 1):
        first, fresh = extract_if_missing("patchcam", patchcam, "test_resnet", None, cache, view=view,
                                          rows=[7, 2, 3], progress=False)
        assert fresh and len(first) == 1
        written = layouts.file_state(first[0])
        again, fresh = extract_if_missing("patchcam", patchcam, "test_resnet", None, cache, view=view,
                                          rows=[3, 2], progress=False)
        assert not fresh and again == first
        # 2 is held: only 0 and 9 are extracted, into a second part; rows 7 and 3 are not
        # asked now, but the first part holds 2.
        both, fresh = extract_if_missing("patchcam", patchcam, "test_resnet", None, cache, view=view,
                                         rows=[0, 2, 9], progress=False)
        assert fresh and both[0] == first[0] and len(both) == 2
        assert layouts.file_state(first[0]) == written  # a part is never rewritten: same file, mtime, bytes
        loaded = load_embeddings(both)
        assert loaded["pool"].rows.tolist() == [0, 2, 3, 7, 9]
        # An augmented view seeds each image by its pool row: the same draw whichever rows
        # were extracted with it.
        np.testing.assert_allclose(loaded["pool"].features[[9, 0, 7]], whole[view]["pool"].features[[9, 0, 7]],
                                   atol=1e-5)
        np.testing.assert_array_equal(loaded["pool"].labels[[0, 9]], whole[view]["pool"].labels[[0, 9]])
        assert len(loaded["test"].labels) == (3 if view == 0 else 0)
    parts = {(e["view"], e["pool_rows"], e["rows"]) for e in list_cache(cache)}
    assert parts == {(0, 3, 3 + 3), (0, 2, 2), (1, 3, 3), (1, 2, 2)}  # the test set (3) once, in view 0
    with pytest.raises(CacheError, match=r"rows of patchcam: expected pool rows in 0\.\.11, got 0\.\.12"):
        extract_if_missing("patchcam", patchcam, "test_resnet", None, cache, rows=[0, 12], progress=False)


def test_views_extracted_together_decode_each_image_once_and_equal_each_view_extracted_alone(patchcam, tmp_path,
                                                                                              monkeypatch):
    """The paper's 4 augmented views and the evaluation one in one pass: each image decoded
    once (not once per view), each view's file what extracting it alone writes, rows and all."""
    import trainables.data.images as images
    from trainables.cache.embeddings import extract_views_if_missing, list_cache

    alone = {v: load_embeddings(ensure_embeddings("patchcam", patchcam, "test_resnet", None, str(tmp_path / "alone"),
                                                  view=v, progress=False, workers=0)) for v in (0, 1, 2)}
    decoded = []
    real = images.decode_file
    monkeypatch.setattr(images, "decode_file", lambda path: decoded.append(path) or real(path))
    cache = str(tmp_path / "together")
    # View 0 wants rows 0..7 (train and validation), the augmented views 0..5 (train), as a sweep asks.
    out = extract_views_if_missing("patchcam", patchcam, "test_resnet", None, cache, progress=False, workers=0,
                                   views={0: range(8), 1: range(6), 2: range(6)})
    assert len(decoded) == len(set(decoded)) == 8 + 3  # the 8 pool images and 3 test images, once each
    assert all(fresh and len(files) == 1 for files, fresh in out.values())
    for view in (0, 1, 2):
        together = load_embeddings(out[view][0])
        rows = list(range(8 if view == 0 else 6))
        assert together["pool"].rows.tolist() == rows
        np.testing.assert_array_equal(together["pool"].features[rows], alone[view]["pool"].features[rows])
    np.testing.assert_array_equal(load_embeddings(out[0][0])["test"].features, alone[0]["test"].features)
    held = sorted((e["view"], e["pool_rows"], e["rows"]) for e in list_cache(cache))
    assert held == [(0, 8, 8 + 3), (1, 6, 6), (2, 6, 6)]
    assert sum(e["extract_s"] for e in list_cache(cache)) > 0  # the shared pass, shared out
    again = extract_views_if_missing("patchcam", patchcam, "test_resnet", None, cache, progress=False,
                                     views={0: range(8), 1: range(6), 2: range(6)})
    assert not any(fresh for _, fresh in again.values()) and len(decoded) == 11
    # Two DataLoader worker processes give the same features, view for view.
    workers = extract_views_if_missing("patchcam", patchcam, "test_resnet", None, str(tmp_path / "w2"), progress=False,
                                       workers=2, views={0: range(8), 1: range(6), 2: range(6)})
    for view in (0, 1, 2):
        rows = list(range(8 if view == 0 else 6))
        np.testing.assert_array_equal(load_embeddings(workers[view][0])["pool"].features[rows],
                                      load_embeddings(out[view][0])["pool"].features[rows])


def test_float16_cache_is_half_the_size_and_close_to_float32(cached, tmp_path):
    _, full = cached
    half = ensure_embeddings("digits", None, "test_resnet", None, str(tmp_path), dtype="float16")
    assert os.path.basename(half) != os.path.basename(full)
    assert os.path.getsize(half) < 0.6 * os.path.getsize(full)
    h, f = load_embeddings(half)["test"].features, load_embeddings(full)["test"].features
    assert h.dtype == np.float16
    np.testing.assert_allclose(h.astype(np.float32), f, rtol=2e-3, atol=1e-3)


def test_unknown_dtype_and_negative_view_are_named_errors(tmp_path):
    from trainables.cache.embeddings import CacheError

    with pytest.raises(CacheError, match="'bfloat8'.*float32, float16"):
        ensure_embeddings("digits", None, "test_resnet", None, str(tmp_path), dtype="bfloat8")
    with pytest.raises(CacheError, match="view -1"):
        ensure_embeddings("digits", None, "test_resnet", None, str(tmp_path), view=-1)


def test_a_changed_image_file_or_weight_file_is_never_served_from_the_old_key(tmp_path):
    import timm

    from tests import layouts

    root, cache = str(tmp_path / "data"), str(tmp_path / "cache")
    layouts.folder(root)
    first = ensure_embeddings("folder", root, "test_resnet", None, cache, progress=False)
    with open(os.path.join(root, "train", "benign", "benign_0.png"), "ab") as f:
        f.write(b"\0" * 16)  # the file changed (it still decodes): a new key, a new extraction
    second = ensure_embeddings("folder", root, "test_resnet", None, cache, progress=False)
    assert second != first and os.path.exists(first) and os.path.exists(second)
    weights = tmp_path / "w.pth"
    torch.save(timm.create_model("test_resnet", num_classes=0).state_dict(), weights)
    with_weights = ensure_embeddings("folder", root, "test_resnet", str(weights), cache, progress=False)
    torch.save({k: v + 1 for k, v in torch.load(weights, weights_only=True).items()}, weights)
    assert ensure_embeddings("folder", root, "test_resnet", str(weights), cache, progress=False) != with_weights
