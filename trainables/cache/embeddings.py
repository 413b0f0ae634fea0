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
views (epoch e reads view 1 + e mod K); validation and test always read view 0. The views a
backbone lacks are extracted in one pass, each image decoded once for all of them
(trainables/cache/views.py: ``extract_views_if_missing``).

Rows: a sweep asks for the pool rows its studies draw (``rows=``), and only those no part of the
key holds yet are extracted, into a new part file (trainables/cache/parts.py); ``sweep embed``
and a call without ``rows`` extract the whole pool into one file. Each row keeps its pool
index, and an augmented view seeds its draw by that index, so a row's features do not depend
on which sweep extracted it.

Location: a folder path or a URI (``s3://...``): files are written locally and uploaded;
trials on another node read a node-local copy (``storage.localize``), memory-mapped.

Extraction: batched, in eval mode, on a GPU with bf16 autocast and channels_last, on a CPU in
fp32 (bf16 autocast is about 10x slower on CPUs). Images are decoded and transformed by
DataLoader workers; on a GPU, JPEG files are decoded (nvJPEG) and transformed on the GPU, the
workers only reading them (trainables/cache/device_decode.py).
A progress bar shows images/s, and the file's metadata keeps the rate and the device.

File columns: ``split`` ("pool" or "test"), ``row`` (index within the split's whole set), ``label``
(-1 where hidden), ``group`` (patient, null where none) and ``embedding``
(fixed-size list of float32, or float16 on request: half the disk and page cache).

Example::

    >>> path = ensure_embeddings("digits", None, "test_resnet", None, "/tmp/cache")  # doctest: +SKIP
    >>> load_embeddings(path)["pool"].features.shape                                 # doctest: +SKIP
    (1257, 96)
    >>> parts, _ = extract_if_missing("digits", None, "test_resnet", None, "/tmp/c", rows=[0, 5])  # doctest: +SKIP
    >>> load_embeddings(parts)["pool"].features[[5]].shape                                          # doctest: +SKIP
    (1, 96)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import torch

from trainables.errors import UserError
from trainables.gcfreeze import freeze_at_exit, freeze_long_lived
from trainables import storage
from trainables.models.backbones import create_backbone, resolve_info, weights_digest
from trainables.data.datasets import ImageSet, get_dataset_info, load_dataset
from trainables.data.filedigests import content_fingerprint
from trainables.data.transforms import FLIPS, build_transform, describe, flips_only
from trainables.cache.device_decode import decoder_missing, describe_decode, resolve_decode
from trainables.cache.views import View, stream_views
from trainables.cache.parts import (Part, RowFeatures, encode_rows, key_of, part_path, read_part,
                                    whole_path)

EXTRACT_BATCH = 256
DTYPES = {"float32": (np.float32, pa.float32()), "float16": (np.float16, pa.float16())}


class CacheError(UserError):
    """A cache request that cannot be served; the message names the value and what was expected."""


@dataclass
class EmbeddedSplit:
    # (N, D) float32 or float16 indexed by the split's row: a zero-copy view of the memory-mapped
    # file when one file holds every row, else a RowFeatures gathering rows across parts.
    features: Union[np.ndarray, RowFeatures]
    labels: np.ndarray  # by row; -1 where hidden or not held
    groups: Optional[np.ndarray]
    rows: np.ndarray  # the rows the cache holds, sorted


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
    if views > len(FLIPS) and flips_only(ds_info):
        return (f"views {views}: {ds_info.name}'s augmentation is its flips, {len(FLIPS)} combinations "
                f"(a view each); views at most {len(FLIPS)}")
    return None


def _check_request(view: int, dtype: str) -> None:
    if dtype not in DTYPES:
        raise CacheError(f"embedding dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if not isinstance(view, int) or view < 0:
        raise CacheError(f"view {view!r}: expected an integer >= 0 (0 = the evaluation transform)")


def view_transform(ds_info, bb_info, view: int):
    """View 0: the evaluation transform; every other view: the training transform, for a
    flips-only dataset (PatchCam) view k's one flip combination (1 identity, 2 horizontal,
    3 vertical, 4 both), so that 4 views are its 4 flips of every image, not 4 random draws."""
    if view > 0 and flips_only(ds_info):
        return build_transform(ds_info, bb_info, train=True, flips=FLIPS[(view - 1) % len(FLIPS)])
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


def cached_parts(cache_dir: str, key: str) -> list[Part]:
    """The files of ``key`` in the cache (its whole file alone when there is one), each with
    the rows it holds, read from the footers."""
    whole = whole_path(cache_dir, key)
    if storage.exists(whole):
        return [Part(whole, None, True)]
    found = []
    for name in sorted(storage.listdir(cache_dir)):
        if name.startswith(key + ".") and name.endswith(".arrow"):
            path = storage.join(cache_dir, name)
            found.append(read_part(path, _footer(path)[0]))
    return found


def _footer(path: str):
    """(schema metadata as str -> str, the reader) of a cache file, reading its footer only."""
    fs, inner = storage.filesystem(path)
    reader = ipc.open_file(fs.open_input_file(inner))
    return _metadata(reader.schema), reader


def _metadata(schema: pa.Schema) -> dict:
    """A cache file's schema metadata as str -> str (what it holds: parts.read_part)."""
    return {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}


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


def _split_table(name: str, split: ImageSet, rows: np.ndarray, features: np.ndarray, dtype: str) -> pa.Table:
    dim = features.shape[1]
    np_type, pa_type = DTYPES[dtype]
    flat = pa.array(features.astype(np_type).reshape(-1), type=pa_type)
    groups = None if split.groups is None else [str(split.groups[r]) for r in rows]
    return pa.table(
        {
            "split": pa.array([name] * len(rows), pa.string()),
            "row": pa.array(rows.astype(np.int32)),
            "label": pa.array(split.labels[rows].astype(np.int64)),
            "group": pa.array(groups if groups is not None else [None] * len(rows), pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )


def ensure_embeddings(*args, **kwargs) -> str:
    """The whole-pool cache file of a (dataset, backbone, view, dtype), extracted unless the
    cache holds it; arguments as :func:`extract_if_missing` (without ``rows``)."""
    if kwargs.get("rows") is not None:
        raise TypeError("ensure_embeddings extracts the whole pool: call extract_if_missing with rows=")
    return extract_if_missing(*args, **kwargs)[0][0]


def extract_if_missing(dataset: str, data_root: Optional[str], backbone: str, weights_path: Optional[str],
                       cache_dir: str, seed: int = 0, holdout: Optional[float] = None, skip: Optional[list] = None,
                       view: int = 0, dtype: str = "float32", rows: Optional[Sequence[int]] = None,
                       **options) -> tuple[tuple[str, ...], bool]:
    """One view of :func:`extract_views_if_missing`: (the files that hold the asked rows,
    whether this call extracted any)."""
    return extract_views_if_missing(dataset, data_root, backbone, weights_path, cache_dir, seed=seed,
                                    holdout=holdout, skip=skip, views={view: rows}, dtype=dtype, **options)[view]


@dataclass
class _ViewPlan:
    """What one view of a key lacks, and where it goes."""
    view: int
    key: str
    whole: bool  # the whole pool, into <key>.arrow
    missing: np.ndarray  # pool rows to extract
    need_test: bool
    used: list  # the files already held that hold asked rows
    path: Optional[str] = None  # the file this call writes (None: nothing lacking)


def extract_views_in_worker(*args, **kwargs) -> dict:
    """:func:`extract_views_if_missing` as a Ray task runs it (sweep/driver/runner.py): the
    worker's imports (torch, timm) stay for its life, and Ray stops the worker when the
    Tuner's first actors need its CPUs, while they import; frozen as it begins, that exit
    costs a tenth (trainables/gcfreeze.py). Only in a worker: a process that goes on (the CLI's
    ``sweep embed``, a test) keeps its collector as it is."""
    freeze_long_lived(once=True)
    freeze_at_exit()
    return extract_views_if_missing(*args, **kwargs)


def extract_views_if_missing(dataset: str, data_root: Optional[str], backbone: str, weights_path: Optional[str],
                             cache_dir: str, seed: int = 0, holdout: Optional[float] = None,
                             skip: Optional[list] = None, views: Optional[dict] = None, dtype: str = "float32",
                             workers: Optional[int] = None, batch_size: int = EXTRACT_BATCH,
                             progress: Union[bool, Callable[[int, int, float], None]] = True,
                             fingerprint: Optional[str] = None, decode: str = "auto",
                             trust_remote_code: bool = False) -> dict:
    """Extract what the cache lacks of a backbone's ``views`` (view -> the pool rows wanted, or
    None for the whole pool; default ``{0: None}``): view -> (the files that hold its asked
    rows, whether this call extracted any). Each image is decoded once for all the views that
    lack it (trainables/cache/views.py).

    Rows: only those no part of a view's key holds are extracted, into a new part; None: the
    whole pool, into one file. View 0 adds the test set (once per key); an augmented view
    (>= 1) holds pool rows only, which is all that trains. Each file is written to a temporary
    file and renamed, so a crash never leaves a half file under a key.

    ``fingerprint``: the data's content fingerprint, as the driver computed it for the whole
    sweep (trainables/data/filedigests.py); without it, computed here (reading only the files
    whose stat the cache's file index does not hold).

    ``decode``: ``auto`` (JPEG files decoded on the GPU when there is one), ``workers`` or
    ``device`` (trainables/cache/device_decode.py).

    ``trust_remote_code``: the backbone's hub repo may run its own code to build it (the
    user said so for this backbone by name).
    """
    views = {0: None} if views is None else views
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    decode = resolve_decode(decode, device)
    data = load_dataset(dataset, data_root, holdout=holdout, skip=skip)
    if fingerprint is None:
        data = content_fingerprint(data, files_index_dir(cache_dir), check=False)[0]
    else:
        data = dataclasses.replace(data, fingerprint=fingerprint)
    plans = [_plan_view(dataset, data, backbone, weights_path, cache_dir, seed, view, dtype, rows)
             for view, rows in sorted(views.items())]
    lacking = [p for p in plans if p.path is not None]
    if lacking:
        _extract_views(dataset, data, backbone, weights_path, cache_dir, seed, lacking, dtype, workers, batch_size,
                       progress, decode, device, trust_remote_code)
    return {p.view: ((() if p.whole and p.path else tuple(p.used)) + ((p.path,) if p.path else ()), p.path is not None)
            for p in plans}


def _plan_view(dataset: str, data, backbone: str, weights_path: Optional[str], cache_dir: str, seed: int, view: int,
               dtype: str, rows: Optional[Sequence[int]]) -> _ViewPlan:
    key = embedding_key(dataset, data, backbone, weights_path, seed, view, dtype)
    n_pool = len(data.pool)
    held = cached_parts(cache_dir, key)
    nothing = np.zeros(0, np.int64)
    if held and held[0].pool_rows is None:  # a whole file
        return _ViewPlan(view, key, False, nothing, False, [held[0].path])
    whole = rows is None
    wanted = np.arange(n_pool) if whole else np.unique(np.asarray(rows, np.int64))
    if len(wanted) and (wanted[0] < 0 or wanted[-1] >= n_pool):
        raise CacheError(f"rows of {dataset}: expected pool rows in 0..{n_pool - 1}, got {wanted[0]}..{wanted[-1]}")
    have = np.unique(np.concatenate([p.pool_rows for p in held])) if held else nothing
    # The whole pool goes into one file of its own; rows into a part beside the parts held.
    missing = wanted if whole else np.setdiff1d(wanted, have, assume_unique=True)
    need_test = view == 0 and len(data.test) > 0 and (whole or not any(p.test for p in held))
    # The parts the asked rows are in (and the test set's, for view 0): a trial maps no other.
    used = [p.path for p in held
            if np.intersect1d(p.pool_rows, wanted, assume_unique=True).size or (view == 0 and p.test)]
    plan = _ViewPlan(view, key, whole, missing, need_test, used)
    if len(missing) or need_test:
        plan.path = whole_path(cache_dir, key) if whole else part_path(cache_dir, key, missing, need_test)
    return plan


def extraction_name(dataset: str, backbone: str, views) -> str:
    """How an extraction is named in progress bars and log lines: ``pneumonia x dino views 0, 1``."""
    views = sorted(views)
    return f"{dataset} x {backbone} view{'s' if len(views) > 1 else ''} {', '.join(map(str, views))}"


def _extract_views(dataset: str, data, backbone: str, weights_path: Optional[str], cache_dir: str, seed: int,
                   plans: list, dtype: str, workers: Optional[int], batch_size: int, progress, decode: str,
                   device: torch.device, trust_remote_code: bool = False) -> None:
    """One pass per split over the images the views of ``plans`` lack, one file written per view."""
    ds_info = get_dataset_info(dataset)
    model, bb_info = create_backbone(backbone, img_size=ds_info.image_size, weights_path=weights_path, seed=seed,
                                     trust_remote_code=trust_remote_code)
    model.eval().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    views = {p.view: View(p.view, view_transform(ds_info, bb_info, p.view),
                          None if p.view == 0 else (seed * 1_000_003 + p.view) * 10_000_019) for p in plans}
    splits = {"pool": (data.pool, {views[p.view]: p.missing for p in plans if len(p.missing)}),
              "test": (data.test, {views[p.view]: np.arange(len(data.test)) for p in plans if p.need_test})}
    counts = {p.view: len(p.missing) + (len(data.test) if p.need_test else 0) for p in plans}
    total = sum(counts.values())
    workers = default_workers() if workers is None else workers
    name = extraction_name(dataset, backbone, [p.view for p in plans])
    bar = _progress(total, name, progress) if progress else None
    fallback = decoder_missing(decode, device)
    if fallback:  # said before the extraction, which it slows
        print(f"JPEG files decoded by the workers: {fallback}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    local_dir = storage.absolute(cache_dir) if not storage.is_uri(cache_dir) else None
    with contextlib.ExitStack() as stack:
        # Each view's file is written as its features come (host memory: one chunk per view);
        # renamed or uploaded under its key only once whole.
        files = {p.view: ViewFile(stack.enter_context(storage.temporary_file(local_dir, suffix=".arrow")))
                 for p in plans}
        for f in files.values():  # closed before its temporary file goes, also on an error
            stack.callback(f.close)
        try:
            for split_name, (split, plan) in splits.items():
                if not plan:
                    continue
                rows = {view.index: iter_rows(r) for view, r in plan.items()}

                def sink(index, features, split_name=split_name, split=split, rows=rows):
                    files[index].add(_split_table(split_name, split, rows[index](len(features)), features, dtype))

                batch_size = stream_views(model, bb_info, split.images, plan, device, sink, batch_size, workers,
                                          bar, decode)
                for f in files.values():  # a record batch never holds two splits
                    f.flush()
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - started
        _finish_files(files, plans, views, data, dataset, backbone, dtype, elapsed, counts, total, device, decode,
                      batch_size, cache_dir)
    print(f"extracted {name}: {total:,} images in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f} img/s, "
          f"{device.type} {'bf16 autocast' if device.type == 'cuda' else 'fp32'}, {workers} workers, "
          f"batch {batch_size}, decoded by {describe_decode(decode, device, data.pool.images)})",
          file=sys.stderr, flush=True)


def iter_rows(rows: np.ndarray) -> Callable[[int], np.ndarray]:
    """The next ``n`` of ``rows`` at each call: a view's features come in its rows' order."""
    position = [0]

    def take(n: int) -> np.ndarray:
        start = position[0]
        position[0] += n
        return rows[start:start + n]

    return take


CHUNK_BYTES = 256 * 2**20  # features a view buffers before writing them as one record batch


class ViewFile:
    """One view's cache file as it is extracted: tables buffered up to CHUNK_BYTES, then
    written as one record batch to a local temporary file. A pool that fits in one chunk
    (every pool up to ~26,000 images of 2,560-d float32) is one record batch, which trials map
    as one zero-copy matrix; a larger one is several, read as row pieces (parts.RowFeatures)."""

    def __init__(self, path: str):
        self.path = path
        self.buffer: list = []
        self.bytes = 0
        self.sink = self.writer = None
        self.schema = None

    def add(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.bytes += table.nbytes
        if self.bytes >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        table = pa.concat_tables(self.buffer).combine_chunks()
        if self.writer is None:
            self.schema = table.schema
            self.sink = pa.OSFile(self.path, "wb")
            self.writer = ipc.new_file(self.sink, self.schema)
        self.writer.write_table(table, max_chunksize=len(table))
        self.buffer, self.bytes = [], 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
            self.writer = self.sink = None

    def finish(self, metadata: dict, cache_dir: str, final: str) -> None:
        """Close it, then write it again with its metadata (known only now: the time taken),
        record batch by record batch from the mapped file, and move or upload it under its key."""
        self.flush()
        self.close()
        local_dir = storage.absolute(cache_dir) if not storage.is_uri(cache_dir) else None
        with storage.temporary_file(local_dir, suffix=".arrow") as tmp:
            with pa.memory_map(self.path, "r") as source:
                reader = ipc.open_file(source)
                with pa.OSFile(tmp, "wb") as sink, ipc.new_file(sink, self.schema.with_metadata(metadata)) as writer:
                    for i in range(reader.num_record_batches):
                        writer.write_batch(reader.get_batch(i))
            storage.upload(tmp, final)


def _finish_files(files: dict, plans: list, views: dict, data, dataset: str, backbone: str, dtype: str, elapsed: float,
                  counts: dict, total: int, device, decode: str, batch_size: int, cache_dir: str) -> None:
    precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    decoded_by = describe_decode(decode, device, data.pool.images)
    for p in plans:
        # The pass is shared: each view is charged its share of it, by the images it got.
        seconds = elapsed * counts[p.view] / max(total, 1)
        metadata = {
            "dataset": dataset,
            "backbone": backbone,
            "key": p.key,
            "view": str(p.view),
            "dtype": dtype,
            "transform": describe(views[p.view].transform),
            "extract_s": f"{seconds:.3f}",
            "images_per_s": f"{total / max(elapsed, 1e-9):.1f}",  # the pass's rate
            "device": f"{device.type} {precision}",
            "decode": decoded_by,
            "pool_size": str(len(data.pool)),
            "test": "1" if p.need_test else "0",
            # The batch extraction ended at (smaller than asked where the GPU ran out of memory).
            "batch_size": str(batch_size),
        }
        if not p.whole:
            metadata["pool_rows"] = encode_rows(p.missing, len(data.pool))
        files[p.view].finish(metadata, cache_dir, p.path)


def _read_file(path: str) -> tuple[dict, int, type, dict]:
    """(split -> [(rows, features, labels, groups) per record batch], width, dtype, metadata)
    of one cache file, features zero-copy views of the mapped file."""
    # No context manager: the arrays below keep the mapping alive after this returns.
    reader = ipc.open_file(pa.memory_map(path, "r"))
    metadata = _metadata(reader.schema)
    field = reader.schema.field("embedding").type
    dim = field.list_size
    out = defaultdict(list)
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        # Written pool first, then test: each split is one contiguous slice, so no copy is made.
        n_pool = int(pa.compute.sum(pa.compute.equal(batch.column("split"), "pool")).as_py() or 0)
        for name, part in (("pool", batch.slice(0, n_pool)), ("test", batch.slice(n_pool))):
            if not part.num_rows:
                continue
            features = part.column("embedding").flatten().to_numpy(zero_copy_only=True).reshape(part.num_rows, dim)
            out[name].append((part.column("row").to_numpy().astype(np.int64), features,
                              part.column("label").to_numpy(), part.column("group").to_pylist()))
    return dict(out), dim, field.value_type.to_pandas_dtype(), metadata


def load_embeddings(paths: Union[str, Sequence[str]]) -> dict[str, EmbeddedSplit]:
    """Memory-map a key's cache files (one path, or the parts a sweep handed a trial);
    features are zero-copy views into the mapped pages when one file holds a split's rows
    0..N-1, else gathered across the parts row by row (float32 or float16 as stored; trials
    convert one batch at a time). Files are localized first (a node-local copy of a URI)."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    files = [_read_file(storage.localize(p)) for p in paths]
    dim, np_type = files[0][1], files[0][2]
    out = {}
    for name in ("pool", "test"):
        pieces = [piece for f in files for piece in f[0].get(name, ())]
        size = max((int(rows[-1]) + 1 for rows, *_ in pieces), default=0)
        if name == "pool":
            size = max([size] + [int(f[3]["pool_size"]) for f in files if "pool_size" in f[3]])
        labels = np.full(size, -1, np.int64)
        groups = np.full(size, None, object)
        for rows, _, piece_labels, piece_groups in pieces:
            labels[rows] = piece_labels
            groups[rows] = piece_groups
        held = np.unique(np.concatenate([p[0] for p in pieces])) if pieces else np.zeros(0, np.int64)
        if len(pieces) == 1 and len(held) == size:  # one file, rows 0..N-1 in order: the matrix itself
            features = pieces[0][1]
        elif pieces:
            features = RowFeatures([(p[0], p[1]) for p in pieces], size, f"{name} of {key_of(paths[0])}")
        else:
            features = np.zeros((0, dim), np_type)
        out[name] = EmbeddedSplit(
            features=features,
            labels=labels,
            groups=None if all(g is None for g in groups) else groups,
            rows=held,
        )
    return out


def list_cache(cache_dir: str) -> list[dict]:
    """One dict per cache file (a path or URI): its key, dataset, backbone, view, dtype, rows
    (pool rows held and test rows), dim, size, extraction time and rate, the device and what
    decoded the images; read from the footer and message headers only."""
    entries = []
    for name in sorted(storage.listdir(cache_dir)):
        if not name.endswith(".arrow"):
            continue
        path = storage.join(cache_dir, name)
        meta, reader = _footer(path)
        rows = reader.count_rows()
        part = read_part(path, meta)
        entries.append({
            "key": key_of(name),
            "part": "whole" if part.pool_rows is None else name.split(".")[1],
            "dataset": meta.get("dataset"),
            "backbone": meta.get("backbone"),
            "view": int(meta.get("view", "0")),
            "dtype": meta.get("dtype", "float32"),
            "rows": rows,
            # Pool rows held (None: a whole file written before files recorded their pool size).
            "pool_rows": len(part.pool_rows) if part.pool_rows is not None else (
                int(meta["pool_size"]) if "pool_size" in meta else None),
            "dim": reader.schema.field("embedding").type.list_size,
            "mib": round(storage.size(path) / 2**20, 2),
            "extract_s": float(meta.get("extract_s", "nan")),
            "images_per_s": float(meta.get("images_per_s", "nan")),
            "device": meta.get("device"),
            "batch_size": int(meta["batch_size"]) if "batch_size" in meta else None,  # files before it: not recorded
            "decode": meta.get("decode", "workers (Pillow)"),  # files written before it was recorded
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
