"""The embedding cache: each (dataset, backbone, weights, transform) extracted once, as an
Arrow IPC file that frozen-mode trials memory-map (many trials on a node share one copy in
the page cache) instead of running the backbone every epoch.

The key is content-addressed: the dataset's fingerprint, the backbone name, the weights'
digest (file sha256 or init seed) and the evaluation transform's text. A changed file or
transform gives another key, so a stale cache can never be served.

File columns: ``split`` ("pool" or "test"), ``row`` (index within the split), ``label``
(-1 where hidden), ``group`` (patient, null where none) and ``embedding``
(fixed-size list of float32).

Example::

    >>> path = ensure_embeddings("digits", None, "test_resnet", None, "/tmp/cache")  # doctest: +SKIP
    >>> load_embeddings(path)["pool"].features.shape                                 # doctest: +SKIP
    (1257, 96)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import torch

from trainables.backbones import create_backbone, embed, resolve_info, weights_digest
from trainables.datasets import ImageSet, get_dataset_info, load_dataset
from trainables.transforms import build_transform, describe

EXTRACT_BATCH = 256


@dataclass
class EmbeddedSplit:
    features: np.ndarray  # (N, D) float32, a zero-copy view of the memory-mapped file
    labels: np.ndarray
    groups: Optional[np.ndarray]


def cache_key(fingerprint: str, backbone: str, digest: str, transform: str) -> str:
    blob = json.dumps([fingerprint, backbone, digest, transform]).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def embedding_key(dataset: str, data, backbone: str, weights_path: Optional[str], seed: int = 0) -> str:
    """The cache key of ``backbone`` on an already loaded ``data`` (a LoadedDataset)."""
    ds_info, bb_info = get_dataset_info(dataset), resolve_info(backbone, weights_path)
    transform = describe(build_transform(ds_info, bb_info, train=False))
    return cache_key(data.fingerprint, backbone, weights_digest(backbone, weights_path, seed), transform)


def cache_path(cache_dir: str, key: str) -> str:
    return os.path.join(cache_dir, f"{key}.arrow")


@torch.no_grad()
def _embed_split(model, info, transform, images: ImageSet, device) -> np.ndarray:
    out = []
    for start in range(0, len(images), EXTRACT_BATCH):
        batch = torch.stack([transform(img) for img in images.images[start : start + EXTRACT_BATCH]])
        out.append(embed(model, info, batch.to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _split_table(name: str, split: ImageSet, features: np.ndarray) -> pa.Table:
    dim = features.shape[1]
    flat = pa.array(features.astype(np.float32).reshape(-1), type=pa.float32())
    groups = None if split.groups is None else [str(g) for g in split.groups]
    return pa.table(
        {
            "split": pa.array([name] * len(split), pa.string()),
            "row": pa.array(np.arange(len(split), dtype=np.int32)),
            "label": pa.array(split.labels.astype(np.int64)),
            "group": pa.array(groups if groups is not None else [None] * len(split), pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )


def ensure_embeddings(
    dataset: str,
    data_root: Optional[str],
    backbone: str,
    weights_path: Optional[str],
    cache_dir: str,
    seed: int = 0,
    holdout: Optional[float] = None,
    skip: Optional[list] = None,
) -> str:
    """Extract unless the cache already holds this key; return the file's path.

    Written to a temporary file and renamed, so a crash never leaves a half file under a key.
    """
    data = load_dataset(dataset, data_root, holdout=holdout, skip=skip)
    key = embedding_key(dataset, data, backbone, weights_path, seed)
    path = cache_path(cache_dir, key)
    if os.path.exists(path):
        return path
    os.makedirs(cache_dir, exist_ok=True)
    ds_info = get_dataset_info(dataset)
    model, bb_info = create_backbone(backbone, img_size=ds_info.image_size, weights_path=weights_path, seed=seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.eval().to(device)
    transform = build_transform(ds_info, bb_info, train=False)
    started = time.perf_counter()
    tables = [
        _split_table(name, part, _embed_split(model, bb_info, transform, part, device))
        for name, part in (("pool", data.pool), ("test", data.test))
    ]
    table = pa.concat_tables(tables).replace_schema_metadata(
        {
            "dataset": dataset,
            "backbone": backbone,
            "key": key,
            "transform": describe(transform),
            "extract_s": f"{time.perf_counter() - started:.3f}",
        }
    )
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".arrow.tmp")
    os.close(fd)
    try:
        with pa.OSFile(tmp, "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=len(table) or None)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_embeddings(path: str) -> dict[str, EmbeddedSplit]:
    """Memory-map a cache file; features are zero-copy views into the mapped pages."""
    # No context manager: the arrays below keep the mapping alive after this returns.
    table = ipc.open_file(pa.memory_map(path, "r")).read_all()
    dim = table.schema.field("embedding").type.list_size
    # Written pool first, then test: each split is one contiguous slice, so no copy is made.
    n_pool = int(pa.compute.sum(pa.compute.equal(table["split"], "pool")).as_py() or 0)
    out = {}
    for name, part in (("pool", table.slice(0, n_pool)), ("test", table.slice(n_pool))):
        part = part.combine_chunks()
        if part.num_rows:
            features = part["embedding"].chunk(0).flatten().to_numpy(zero_copy_only=True)
            features = features.reshape(part.num_rows, dim)
        else:
            features = np.zeros((0, dim), np.float32)
        groups = part["group"].to_pylist()
        out[name] = EmbeddedSplit(
            features=features,
            labels=part["label"].to_numpy(),
            groups=None if all(g is None for g in groups) else np.asarray(groups),
        )
    return out


def list_cache(cache_dir: str) -> list[dict]:
    """One dict per cache file: its key, dataset, backbone, rows, dim, size; nothing read
    beyond the schema and footer."""
    entries = []
    if not os.path.isdir(cache_dir):
        return entries
    for name in sorted(os.listdir(cache_dir)):
        if not name.endswith(".arrow"):
            continue
        path = os.path.join(cache_dir, name)
        reader = ipc.open_file(pa.memory_map(path, "r"))
        meta = {k.decode(): v.decode() for k, v in (reader.schema.metadata or {}).items()}
        rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
        entries.append({
            "key": name[: -len(".arrow")],
            "dataset": meta.get("dataset"),
            "backbone": meta.get("backbone"),
            "rows": rows,
            "dim": reader.schema.field("embedding").type.list_size,
            "mib": round(os.path.getsize(path) / 2**20, 2),
            "extract_s": float(meta.get("extract_s", "nan")),
            "path": path,
        })
    return entries
