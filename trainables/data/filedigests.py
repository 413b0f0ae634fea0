"""Content fingerprints of data sets on disk, and the check that every image decodes.

An embedding-cache key must change whenever an image changes, whatever its size: the
fingerprint covers each image file's sha256, not its size or mtime (mtimes differ between the
nodes of a cluster and between copies of one data set). Reading every byte at every sweep
would cost minutes on the paper's data, so, as git's index does, the digest of each file is
kept with the stat it was computed for (size, mtime) in an index beside the embedding cache,
and recomputed only for files whose stat changed. The stat decides when to re-read; it never
enters the fingerprint.

The same pass decodes each image once (``check``): a file that does not decode is named
before any trial starts, and is remembered as checked (its digest with the outcome), so the
next sweep on the same files decodes nothing.

Index: ``<cache>/files/<dataset>-<digest of the folder>.parquet``, columns path, size,
mtime_ns, sha256, decoded (bool: the decode was tried), problem (null: decodes).

Example::

    >>> data, problems = content_fingerprint(load_dataset("folder", root), "/cache/files", check=True)  # doctest: +SKIP
    >>> data.fingerprint, problems                                                                     # doctest: +SKIP
    ('folder-3f9a0c1d2e4b5a69', [])
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from trainables import storage
from trainables.data.datasets import LoadedDataset
from trainables.gcfreeze import freeze_at_exit, freeze_long_lived
from trainables.data.images import FileImages, H5Images, ImageDecodeError, decode_bytes

CHUNK = 256  # files per task: large enough that a Ray task's overhead (~ms) is noise
INDEX_SCHEMA = pa.schema([
    ("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("sha256", pa.string()),
    ("decoded", pa.bool_()), ("problem", pa.string()),
])
# A fingerprint's readable tail: what load_dataset did to the files' set (holdout, skip list).
_SUFFIXES = re.compile(r"((-holdout[0-9.e-]+)|(-skip[0-9a-f]{8}))*$")

# (chunks of paths, decode) -> inspect_files' result per chunk, in order: threads here, Ray tasks
# on the driver of a sweep.
ChunkRunner = Callable[[list, bool], list]


def inspect_files_in_worker(paths: Sequence[str], decode: bool) -> list[tuple[str, Optional[str]]]:
    """:func:`inspect_files` as a sweep's Ray task runs it: the worker keeps its imports
    (torch, the decoders) for its life, frozen out of the collector's reach once, and again as
    its exit begins, so that the exit when Ray stops it (as the Tuner's actors start) costs a
    tenth (trainables/gcfreeze.py)."""
    freeze_long_lived(once=True)
    freeze_at_exit()
    return inspect_files(paths, decode)


def inspect_files(paths: Sequence[str], decode: bool) -> list[tuple[str, Optional[str]]]:
    """(sha256, problem) of each file, reading it once; ``problem`` is None when it decodes
    (or when ``decode`` is False). Runs in a Ray task or a thread."""
    out = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            out.append(("", f"{path}: cannot be read ({type(exc).__name__}: {exc})"))
            continue
        problem = None
        if decode:
            try:
                decode_bytes(data, path)
            except ImageDecodeError as exc:
                problem = str(exc)
        out.append((hashlib.sha256(data).hexdigest(), problem))
    return out


def run_in_threads(chunks: list, decode: bool) -> list:
    """The default chunk runner: threads (hashing and Pillow's decoders release the GIL)."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda chunk: inspect_files(chunk, decode), chunks))


def _files(data: LoadedDataset) -> tuple[list[str], list[str]]:
    """(image files to decode, other data files to digest only) of a data set."""
    images, others = [], []
    for part in (data.pool, data.test):
        if isinstance(part.images, FileImages):
            images += part.images.paths
        elif isinstance(part.images, H5Images):
            others += [f for f in part.images.files if f not in others]
    return list(dict.fromkeys(images)), others


def index_path(index_dir: str, data: LoadedDataset, files: list[str]) -> str:
    folder = os.path.commonpath(files) if files else ""
    return storage.join(index_dir, f"{data.name}-{hashlib.sha256(folder.encode()).hexdigest()[:12]}.parquet")


def _read_index(path: str) -> dict:
    try:
        table = storage.read_parquet(storage.read_bytes(path))
    except (FileNotFoundError, pa.ArrowInvalid, OSError):
        return {}  # none yet, or damaged: rebuilt, at the cost of one read of every file
    if not table.schema.equals(INDEX_SCHEMA):
        return {}
    return {r["path"]: r for r in table.to_pylist()}


def file_digests(files: list[str], decode: set, index_file: str, run_chunks: ChunkRunner = run_in_threads) -> dict:
    """path -> index record (sha256, problem, ...) of each file, reading only the files whose
    stat the index does not hold (or, for those in ``decode``, not yet decoded)."""
    index = _read_index(index_file)
    todo, stats = [], {}
    for path in files:
        try:
            st = os.stat(path)
            stats[path] = (st.st_size, st.st_mtime_ns)
        except OSError:
            stats[path] = (-1, -1)
        known = index.get(path)
        if (known is None or (known["size"], known["mtime_ns"]) != stats[path]
                or (path in decode and not known["decoded"]) or not known["sha256"]):
            todo.append(path)
    if todo:
        for check in (True, False):
            group = [p for p in todo if (p in decode) == check]
            chunks = [group[i:i + CHUNK] for i in range(0, len(group), CHUNK)]
            results = run_chunks(chunks, check) if chunks else []
            for chunk, found in zip(chunks, results):
                for path, (digest, problem) in zip(chunk, found):
                    size, mtime = stats[path]
                    index[path] = {"path": path, "size": size, "mtime_ns": mtime, "sha256": digest,
                                   "decoded": check, "problem": problem}
        table = pa.Table.from_pylist(list(index.values()), INDEX_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        try:
            storage.write_atomic(index_file, sink.getvalue().to_pybytes())
        except OSError:
            pass  # a read-only cache: correct all the same, only slower next time
    return {p: index[p] for p in files}


def content_fingerprint(data: LoadedDataset, index_dir: str, check: bool = True,
                        run_chunks: ChunkRunner = run_in_threads) -> tuple[LoadedDataset, list[str]]:
    """``data`` with a fingerprint over its files' contents (sha256), ids and labels, and the
    problems found (files that do not read, or, with ``check``, do not decode: each named).
    Data sets held in memory (digits, MedMNIST) already carry a content fingerprint."""
    images, others = _files(data)
    if not images and not others:
        return data, []
    records = file_digests(images + others, set(images) if check else set(),
                           index_path(index_dir, data, images + others), run_chunks)
    problems = [r["problem"] for r in records.values() if r["problem"]]
    sha = hashlib.sha256(data.name.encode())
    for name, part in (("pool", data.pool), ("test", data.test)):
        if isinstance(part.images, FileImages):
            for image_id, label, path in zip(part.ids, part.labels.tolist(), part.images.paths):
                sha.update(f"{name}\0{image_id}\0{label}\0{records[path]['sha256']}\n".encode())
        else:
            sha.update(name.encode() + part.labels.tobytes())
            if isinstance(part.images, H5Images):
                for f in part.images.files:
                    sha.update(f"{os.path.basename(f)}\0{records[f]['sha256']}\n".encode())
                sha.update(part.images.rows.tobytes())
    suffix = _SUFFIXES.search(data.fingerprint).group(0)
    return dataclasses.replace(data, fingerprint=f"{data.name}-{sha.hexdigest()[:16]}{suffix}"), problems
