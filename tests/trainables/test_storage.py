"""Files at URIs (the ``bucket`` fixture: a memory:// folder standing in for S3)."""

import os

import numpy as np
import pytest

from trainables import storage

def test_write_read_list_and_remove_at_a_uri(bucket):
    where = storage.join(bucket, "a", "b.json")
    storage.write_atomic(where, b'{"x": 1}')
    storage.write_atomic(storage.join(bucket, "a", ".hidden"), b"")
    assert storage.exists(where) and storage.read_bytes(where) == b'{"x": 1}'
    assert storage.listdir(storage.join(bucket, "a")) == ["b.json"]
    assert storage.listdir(storage.join(bucket, "none")) == []
    storage.remove(where)
    assert not storage.exists(where)


def test_localize_copies_a_remote_file_once_per_node(bucket, tmp_path):
    local = tmp_path / "x.arrow"
    local.write_bytes(b"embeddings")
    where = storage.join(bucket, "cache", "k.arrow")
    storage.upload(str(local), where)
    assert not local.exists() and storage.size(where) == 10
    copy = storage.localize(where)
    assert copy.startswith(str(tmp_path / "node-local")) and open(copy, "rb").read() == b"embeddings"
    os.utime(copy, (1, 1))
    assert storage.localize(where) == copy and os.stat(copy).st_mtime == 1  # not copied again


def test_local_paths_and_file_uris_are_used_in_place(tmp_path):
    target = tmp_path / "d" / "f.bin"
    storage.write_atomic(f"file://{target}", b"1")
    assert target.read_bytes() == b"1" and storage.localize(f"file://{target}") == str(target)
    assert storage.localize(str(target)) == str(target)
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["f.bin"]  # no temporary left


def test_an_unknown_scheme_is_a_named_error():
    with pytest.raises(storage.StorageError, match="nosuchscheme://x"):
        storage.filesystem("nosuchscheme://x/y")


def test_embedding_cache_on_a_uri_is_extracted_once_and_read_through_a_local_copy(bucket):
    from trainables.cache.embeddings import ensure_embeddings, list_cache, load_embeddings

    cache = storage.join(bucket, "cache")
    path = ensure_embeddings("digits", None, "test_resnet", None, cache, progress=False)
    assert path.startswith(cache) and storage.exists(path)
    assert ensure_embeddings("digits", None, "test_resnet", None, cache, progress=False) == path
    (entry,) = list_cache(cache)
    assert entry["path"] == path and entry["rows"] == 1797 and entry["mib"] > 0
    features = load_embeddings(storage.localize(path))["pool"].features
    assert features.shape == (1257, 96) and np.isfinite(features).all()
