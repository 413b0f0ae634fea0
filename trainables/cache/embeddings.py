"""The embedding cache: each (dataset, backbone, weights, transform, view) extracted once, as
an Arrow IPC file that frozen-mode trials memory-map (many trials on a node share one copy in
the page cache) instead of running the backbone every epoch.

The key is content-addressed: the dataset's fingerprint (the ids, labels and file sha256 of
pool and test, after any holdout and skipped files: trainables/data/filedigests.py), the backbone
name, the weights' digest (file sha256 or init seed), the transform's text (resolution
included), the view index and the stored dtype. A changed file, transform or split gives
another key, so a stale cache can never be served.

Views: view 0 is the evaluation transform over pool and test, the only view by default.
View v >= 1 is an augmented copy of the pool under the training transform (random crop, flip,
rotation as the dataset's modality allows), each image's draw seeded by (seed, view, row) so
it does not depend on batch size or worker count. ``--views K`` trains frozen heads on K such
views (epoch e reads view 1 + e mod K); validation and test always read view 0.

Location: a folder path or a URI (``s3://...``): files are written locally and uploaded;
trials on another node read a node-local copy (``storage.localize``), memory-mapped.

Extraction: batched, in eval mode, images decoded by DataLoader workers, on a GPU with bf16
autocast and channels_last, on a CPU in fp32 (bf16 autocast is about 10x slower on CPUs).
A progress bar shows images/s, and the file's metadata keeps the rate and the device.

File columns: ``split`` ("pool" or "test"), ``row`` (index within the split), ``label``
(-1 where hidden), ``group`` (patient, null where none) and ``embedding``
(fixed-size list of float32, or float16 on request: half the disk and page cache).

Example::

    >>> path = ensure_embeddings("digits", None, "test_resnet", None, "/tmp/cache")  # doctest: +SKIP
    >>> load_embeddings(path)["pool"].features.shape                                 # doctest: +SKIP
    (1257, 96)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import torch
from torch.utils.data import DataLoader, Dataset

from trainables.errors import UserError
from trainables import storage
from trainables.models.backbones import create_backbone, embed, resolve_info, weights_digest
from trainables.data.datasets import ImageSet, get_dataset_info, load_dataset
from trainables.data.filedigests import content_fingerprint
from trainables.data.transforms import build_transform, describe

EXTRACT_BATCH = 256
DTYPES = {"float32": (np.float32, pa.float32()), "float16": (np.float16, pa.float16())}


class CacheError(UserError):
    """A cache request that cannot be served; the message names the value and what was expected."""


@dataclass
class EmbeddedSplit:
    features: np.ndarray  # (N, D) float32 or float16, a zero-copy view of the memory-mapped file
    labels: np.ndarray
    groups: Optional[np.ndarray]


def cache_key(fingerprint: str, backbone: str, digest: str, transform: str, view: int = 0,
              dtype: str = "float32") -> str:
    blob = json.dumps([fingerprint, backbone, digest, transform, view, dtype]).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def cached_views(views: int) -> tuple[int, ...]:
    """The view indices a study with ``views`` training views reads: view 0 (evaluation)
    always, and views 1..K when it trains on K > 1 augmented views."""
    return tuple(range(views + 1)) if views > 1 else (0,)


def views_problem(ds_info, views: int):
    """Why ``views`` cannot be cached for a dataset, or None."""
    if views > 1 and ds_info.augment == "none":
        return (f"views {views} asks for augmented views, but {ds_info.name} has no training augmentation "
                f"(every view would equal the evaluation one)")
    return None


def _check_request(view: int, dtype: str) -> None:
    if dtype not in DTYPES:
        raise CacheError(f"embedding dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if not isinstance(view, int) or view < 0:
        raise CacheError(f"view {view!r}: expected an integer >= 0 (0 = the evaluation transform)")


def view_transform(ds_info, bb_info, view: int):
    """View 0: the evaluation transform; every other view: the training transform."""
    return build_transform(ds_info, bb_info, train=view > 0)


def embedding_key(dataset: str, data, backbone: str, weights_path: Optional[str], seed: int = 0,
                  view: int = 0, dtype: str = "float32") -> str:
    """The cache key of ``backbone`` on an already loaded ``data`` (a LoadedDataset)."""
    _check_request(view, dtype)
    ds_info, bb_info = get_dataset_info(dataset), resolve_info(backbone, weights_path)
    transform = describe(view_transform(ds_info, bb_info, view))
    return cache_key(data.fingerprint, backbone, weights_digest(backbone, weights_path, seed), transform, view, dtype)


def files_index_dir(cache_dir: str) -> str:
    """Where the cache keeps the digests of the data files it was keyed on (filedigests.py)."""
    return storage.join(cache_dir, "files")


def cache_path(cache_dir: str, key: str) -> str:
    return storage.join(cache_dir, f"{key}.arrow")


class _ViewImages(Dataset):
    """Transformed images of one split; an augmented view seeds each image's draw by its row."""

    def __init__(self, images, transform, view_seed: Optional[int]):
        self.images, self.transform, self.view_seed = images, transform, view_seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.view_seed is not None:
            # transforms v2 draw from torch's global generator: seeding it per image makes the
            # view independent of batch size, worker count and order.
            torch.manual_seed(self.view_seed + i)
        return self.transform(self.images[i])


class _Reported:
    """A bar that hands its count to ``report(done, total, seconds)`` (the driver draws it: every
    extraction in one status line on its terminal, none interleaved), at most twice a second."""

    def __init__(self, report: Callable[[int, int, float], None], total: int):
        self.report, self.total, self.done = report, total, 0
        self.started = self.last = time.monotonic()
        report(0, total, 0.0)

    def update(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self.last >= 0.5:
            self.last = time.monotonic()
            self.report(self.done, self.total, self.last - self.started)

    def close(self) -> None:
        self.report(self.done, self.total, time.monotonic() - self.started)


def _progress(total: int, desc: str, progress):
    """``progress``: a callable (done, total, seconds) the driver gave, or True for tqdm on stderr."""
    if callable(progress):
        return _Reported(progress, total)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, mininterval=1 if sys.stderr.isatty() else 10)


def default_workers() -> int:
    """DataLoader workers for decoding: the CPUs this process may use, less one for the model."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # Ray sets it to a task's num_cpus
        cpus = min(cpus, int(os.environ["OMP_NUM_THREADS"]))
    return min(8, max(0, cpus - 1))


@torch.no_grad()
def embed_images(model, info, dataset: Dataset, device, batch_size: int = EXTRACT_BATCH, workers: int = 0,
                 bar=None) -> np.ndarray:
    """(N, D) float32 features of a dataset of transformed images, in order."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    on_gpu = device.type == "cuda"
    out = []
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        if on_gpu:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
            out.append(embed(model, info, batch).float().cpu().numpy())
        if bar is not None:
            bar.update(len(batch))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _split_table(name: str, split: ImageSet, features: np.ndarray, dtype: str) -> pa.Table:
    dim = features.shape[1]
    np_type, pa_type = DTYPES[dtype]
    flat = pa.array(features.astype(np_type).reshape(-1), type=pa_type)
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


def ensure_embeddings(*args, **kwargs) -> str:
    """The cache file of a (dataset, backbone, view, dtype), extracted unless the cache holds
    it; arguments as :func:`extract_if_missing`."""
    return extract_if_missing(*args, **kwargs)[0]


def extract_if_missing(dataset: str, data_root: Optional[str], backbone: str, weights_path: Optional[str],
                       cache_dir: str, seed: int = 0, holdout: Optional[float] = None, skip: Optional[list] = None,
                       view: int = 0, dtype: str = "float32", workers: Optional[int] = None,
                       batch_size: int = EXTRACT_BATCH, progress: Union[bool, Callable[[int, int, float], None]] = True,
                       fingerprint: Optional[str] = None) -> tuple[str, bool]:
    """Extract unless the cache already holds this key: (the file's path, whether this call
    extracted it).

    View 0 covers pool and test; an augmented view (>= 1) only the pool, which is all that
    trains. Written to a temporary file and renamed, so a crash never leaves a half file
    under a key.

    ``fingerprint``: the data's content fingerprint, as the driver computed it for the whole
    sweep (trainables/data/filedigests.py); without it, computed here (reading only the files
    whose stat the cache's file index does not hold).
    """
    data = load_dataset(dataset, data_root, holdout=holdout, skip=skip)
    if fingerprint is None:
        data = content_fingerprint(data, files_index_dir(cache_dir), check=False)[0]
    else:
        data = dataclasses.replace(data, fingerprint=fingerprint)
    key = embedding_key(dataset, data, backbone, weights_path, seed, view, dtype)
    path = cache_path(cache_dir, key)
    if storage.exists(path):
        return path, False
    ds_info = get_dataset_info(dataset)
    model, bb_info = create_backbone(backbone, img_size=ds_info.image_size, weights_path=weights_path, seed=seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.eval().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    transform = view_transform(ds_info, bb_info, view)
    parts = (("pool", data.pool), ("test", data.test)) if view == 0 else (("pool", data.pool),)
    total = sum(len(part) for _, part in parts)
    workers = default_workers() if workers is None else workers
    bar = _progress(total, f"{dataset} x {backbone} view {view}", progress) if progress else None
    started = time.perf_counter()
    tables = _embed_parts(parts, model, bb_info, transform, device, seed, view, dtype, batch_size, workers, bar)
    elapsed = time.perf_counter() - started
    precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    table = pa.concat_tables(tables).replace_schema_metadata(
        {
            "dataset": dataset,
            "backbone": backbone,
            "key": key,
            "view": str(view),
            "dtype": dtype,
            "transform": describe(transform),
            "extract_s": f"{elapsed:.3f}",
            "images_per_s": f"{total / max(elapsed, 1e-9):.1f}",
            "device": f"{device.type} {precision}",
        }
    )
    _write_cache_file(table, cache_dir, path)
    print(f"extracted {dataset} x {backbone} view {view}: {total:,} images in {elapsed:.1f} s "
          f"({total / max(elapsed, 1e-9):,.0f} img/s, {device.type} {precision}, {workers} decode workers)",
          file=sys.stderr, flush=True)
    return path, True


def _write_cache_file(table: pa.Table, cache_dir: str, path: str) -> None:
    """Written whole to a local temporary file first (beside the cache when it is local, so
    the final rename is atomic), then moved or uploaded under its key."""
    local_dir = storage.absolute(cache_dir) if not storage.is_uri(cache_dir) else None
    with storage.temporary_file(local_dir, suffix=".arrow") as tmp:
        with pa.OSFile(tmp, "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=len(table) or None)
        storage.upload(tmp, path)


def _embed_parts(parts, model, bb_info, transform, device, seed: int, view: int, dtype: str, batch_size: int,
                 workers: int, bar) -> list[pa.Table]:
    """One table per split (pool, test) of the view's embeddings, in row order."""
    tables = []
    try:
        for name, part in parts:
            view_seed = None if view == 0 else (seed * 1_000_003 + view) * 10_000_019
            features = embed_images(model, bb_info, _ViewImages(part.images, transform, view_seed), device,
                                    batch_size, workers, bar)
            tables.append(_split_table(name, part, features, dtype))
    finally:
        if bar is not None:
            bar.close()
    return tables


def load_embeddings(path: str) -> dict[str, EmbeddedSplit]:
    """Memory-map a cache file; features are zero-copy views into the mapped pages (float32 or
    float16 as stored; trials convert one batch at a time)."""
    # No context manager: the arrays below keep the mapping alive after this returns.
    table = ipc.open_file(pa.memory_map(path, "r")).read_all()
    field = table.schema.field("embedding").type
    dim, np_type = field.list_size, field.value_type.to_pandas_dtype()
    # Written pool first, then test: each split is one contiguous slice, so no copy is made.
    n_pool = int(pa.compute.sum(pa.compute.equal(table["split"], "pool")).as_py() or 0)
    out = {}
    for name, part in (("pool", table.slice(0, n_pool)), ("test", table.slice(n_pool))):
        part = part.combine_chunks()
        if part.num_rows:
            features = part["embedding"].chunk(0).flatten().to_numpy(zero_copy_only=True)
            features = features.reshape(part.num_rows, dim)
        else:
            features = np.zeros((0, dim), np_type)
        groups = part["group"].to_pylist()
        out[name] = EmbeddedSplit(
            features=features,
            labels=part["label"].to_numpy(),
            groups=None if all(g is None for g in groups) else np.asarray(groups),
        )
    return out


def list_cache(cache_dir: str) -> list[dict]:
    """One dict per cache file (a path or URI): its key, dataset, backbone, view, dtype, rows,
    dim, size; nothing read beyond the schema and footer."""
    entries = []
    for name in storage.listdir(cache_dir):
        if not name.endswith(".arrow"):
            continue
        path = storage.join(cache_dir, name)
        fs, inner = storage.filesystem(path)
        reader = ipc.open_file(fs.open_input_file(inner))
        meta = {k.decode(): v.decode() for k, v in (reader.schema.metadata or {}).items()}
        rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
        entries.append({
            "key": name[: -len(".arrow")],
            "dataset": meta.get("dataset"),
            "backbone": meta.get("backbone"),
            "view": int(meta.get("view", "0")),
            "dtype": meta.get("dtype", "float32"),
            "rows": rows,
            "dim": reader.schema.field("embedding").type.list_size,
            "mib": round(storage.size(path) / 2**20, 2),
            "extract_s": float(meta.get("extract_s", "nan")),
            "images_per_s": float(meta.get("images_per_s", "nan")),
            "path": path,
        })
    return entries


def remove_cached(cache_dir: str, dataset: Optional[str] = None, backbone: Optional[str] = None) -> int:
    """Delete the cache files of ``dataset`` and/or ``backbone`` (both None: every file); how
    many. A later sweep extracts them again."""
    removed = 0
    for entry in list_cache(cache_dir):
        if (dataset and entry["dataset"] != dataset) or (backbone and entry["backbone"] != backbone):
            continue
        storage.remove(entry["path"])
        removed += 1
    return removed
