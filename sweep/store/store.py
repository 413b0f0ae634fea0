"""The results store: one Parquet file per finished trial, written atomically.

Layout under ``--results DIR``::

    store.json                       schema version and the grid this store belongs to
    trials/<study_id>/<trial_id>.parquet
    manifests/<digest>.json          each study's training and validation ids
    predictions/<study_id>/<trial_id>.npz   the selected epoch's test probabilities and the test labels
    bootstrap/<study_id>/<trial_id>.npy     its scores on the test set's 1,000 bootstrap resamples
    dvme_features/<study_id>/<trial_id>.npz   DVME: fused embeddings of 500 test images (t-SNE)
    submissions/<cell>/fold<k>.csv, ensemble.csv   Kaggle submission files
    skipped/<dataset>.json           what --skip-unreadable left out, file by file
    history/<study_id>/<trial_id>.parquet   the trial's epochs, one row each (HISTORY_SCHEMA)
    checkpoints/<study_id>/<trial_id>.pt, .json   trials in flight (trainables/training/checkpoints.py)
    driver.lock                      the running driver (host, pid): one driver per store
    quarantine/trials|history/...    damaged files --resume moved aside (their trials ran again)
    index/*.parquet                  every trial row with its file's name, size and mtime (a read
                                     cache in a few segments: the driver appends one per 1,000
                                     rows it writes, and merges them once there are 8)
    cache/                           the embedding cache (Arrow IPC files; files/: data file digests)
    ray/                             Ray Tune's experiment directory

``--results`` is a path or a URI (``s3://bucket/prefix``, ``file:///...``): on a cluster the
store lives on shared storage, and every node writes and reads it through pyarrow's
filesystems (trainables/storage.py). A trial file is written atomically (a temporary name
renamed into place, or one object PUT), so a crash never leaves half a row, and a trial
written twice (a resumed sweep) replaces itself instead of adding a duplicate row.

Example::

    >>> store = ResultsStore("/tmp/results"); store.open_for("demo")   # doctest: +SKIP
    >>> store.read_trials().num_rows                                    # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Optional

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables import artifacts, storage
from trainables.errors import UserError
from trainables.artifacts import TrialFiles

MIN_FREE_MIB = 64  # refuse to start a sweep on a nearly full disk rather than fail mid-way
# 2: views, embedding_dtype, peak_rss_mib, peak_gpu_mib, gpu_ids, started_at; 3: resumed_from_epoch;
# 4: qkv_bias, no_attention_head (every study id changed with them: a store of 3 is another sweep's);
# 5: shots, episodes, test_score_std (few-shot; study ids changed again)
SCHEMA_VERSION = 5
STORE_FILE = "store.json"

# One row per trial. Every StudySpec field, then what the trial did, then what reproduces it.
TRIAL_SCHEMA = pa.schema(
    [
        ("grid", pa.string()),
        ("dataset", pa.string()),
        ("backbone", pa.string()),
        ("backbones", pa.list_(pa.string())),
        ("mode", pa.string()),
        ("subset", pa.string()),
        ("n_train", pa.int64()),
        ("fold", pa.int64()),
        ("n_folds", pa.int64()),
        ("seed", pa.int64()),
        ("lr_min", pa.float64()),
        ("lr_max", pa.float64()),
        ("n_trials", pa.int64()),
        ("max_epochs", pa.int64()),
        ("grace_period", pa.int64()),
        ("reduction_factor", pa.int64()),
        ("batch_size", pa.int64()),
        ("cpus", pa.float64()),
        ("gpus", pa.float64()),
        ("views", pa.int64()),
        ("embedding_dtype", pa.string()),
        ("proj_dim", pa.int64()),
        ("attention", pa.bool_()),
        ("attention_form", pa.string()),
        ("qkv_bias", pa.bool_()),
        ("no_attention_head", pa.string()),
        ("shots", pa.int64()),
        ("episodes", pa.int64()),
        ("study_id", pa.string()),
        ("cell_id", pa.string()),
        ("trial_id", pa.string()),
        ("lr", pa.float64()),
        ("epochs", pa.int64()),
        ("best_epoch", pa.int64()),
        ("stopped_early", pa.bool_()),
        ("val_score", pa.float64()),
        ("test_score", pa.float64()),
        ("test_score_std", pa.float64()),  # few-shot: sample std of the test score over the fold's episodes
        ("metric", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("wall_s", pa.float64()),  # training time of every attempt (a resumed trial's included)
        ("resumed_from_epoch", pa.int64()),  # the checkpoint's epoch a killed trial resumed from; null: none
        ("peak_rss_mib", pa.float64()),  # the trial process's resident memory, highest at an epoch's end
        ("peak_gpu_mib", pa.float64()),  # torch's peak GPU allocation in the trial; null on a CPU
        ("node_id", pa.string()),
        ("gpu_ids", pa.string()),  # JSON list: the GPU(s) Ray gave the trial on its node ([] on a CPU)
        ("started_at", pa.float64()),  # Unix time the trial started (wall_s later it ended)
        ("finished_at", pa.string()),
        ("data_fingerprint", pa.string()),
        ("manifest_digest", pa.string()),  # the fold manifest: manifests/<digest>.json
        ("backbone_attention", pa.string()),  # DVME: JSON matrix, row i = backbone i's attention to each, test mean
        ("weights_digests", pa.string()),  # JSON: backbone -> file sha256 or init seed
        ("embedding_keys", pa.string()),  # JSON: backbone -> cache keys, view 0 first (frozen modes)
        ("versions", pa.string()),  # JSON: medsweep, torch, timm, ray, optuna, ...
    ]
)


# One row per epoch of every trial: the learning curves behind each trials row.
HISTORY_SCHEMA = pa.schema(
    [
        ("study_id", pa.string()),
        ("trial_id", pa.string()),
        ("epoch", pa.int64()),
        ("train_loss", pa.float64()),
        ("val_loss", pa.float64()),
        ("val_score", pa.float64()),
        ("best_val_score", pa.float64()),
        ("test_score", pa.float64()),  # of the best epoch so far; null where test labels are hidden
        ("lr_now", pa.float64()),  # after ReduceLROnPlateau
        ("time_total_s", pa.float64()),  # the trial's training time up to this epoch's end
        ("peak_rss_mib", pa.float64()),
    ]
)

INDEX_COLUMNS = ("_file", "_size", "_mtime_ns")
# The read index as a table format keeps one: rows appended in segments, merged when many.
INDEX_SEGMENT_ROWS = 1000
INDEX_MAX_SEGMENTS = 8
_SEGMENT_COUNTER = itertools.count()
READ_THREADS = 8  # trial files read at once where the index lacks them


def _indexed_schema() -> pa.Schema:
    return TRIAL_SCHEMA.append(pa.field("_file", pa.string())).append(pa.field("_size", pa.int64())).append(
        pa.field("_mtime_ns", pa.int64())
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return pid > 0


def _create_exclusive(path: str, data: bytes) -> None:
    """Create ``path`` only if it does not exist (two drivers starting at once: one wins). On
    object stores there is no such primitive: a plain write, the race window left open."""
    if storage.is_local(path):
        local = storage.filesystem(path)[1]
        try:
            fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise StoreError(f"{os.path.dirname(local)} was locked by another sweep a moment ago") from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return
    storage.write_atomic(path, data)


class StoreError(UserError):
    """A results directory that cannot be used as asked; the message says why and what to do."""


def _warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class ResultsStore:
    def __init__(self, root: str, warn: Callable[[str], None] = _warn_stderr):
        self.root = storage.absolute(root)
        # Files a read found damaged (an interrupted copy or sync): path -> why. Reads leave
        # them out and say so once each; `sweep run --resume` moves them to quarantine/.
        self.unreadable: dict[str, str] = {}
        self._warn = warn
        self._unindexed: list = []  # rows written with index=True, not yet in a segment
        self.trials_dir = artifacts.folder(self.root, "row")
        self.cache_dir = storage.join(self.root, "cache")
        self.ray_dir = storage.join(self.root, "ray")
        self.manifests_dir = storage.join(self.root, "manifests")
        self.predictions_dir = artifacts.folder(self.root, "predictions")
        self.skipped_dir = storage.join(self.root, "skipped")
        self.history_dir = artifacts.folder(self.root, "history")
        self.features_dir = artifacts.folder(self.root, "dvme_features")
        self.checkpoints_dir = artifacts.folder(self.root, "checkpoint")
        self.quarantine_dir = storage.join(self.root, "quarantine")

    def require(self) -> "ResultsStore":
        """This store if it is one (it has a store.json), else a StoreError naming the folder."""
        if self.meta() is None:
            raise StoreError(f"{self.root} is not a medsweep results directory (no store.json)")
        return self

    def cache_at(self, cache: Optional[str] = None) -> str:
        """The embedding cache: ``--cache`` when given (a path or URI), else RESULTS/cache."""
        return storage.absolute(cache) if cache else self.cache_dir

    @property
    def meta_path(self) -> str:
        return storage.join(self.root, STORE_FILE)

    def meta(self) -> Optional[dict]:
        """store.json's contents; None where there is none (not a store yet)."""
        try:
            data = storage.read_bytes(self.meta_path)
        except FileNotFoundError:
            return None
        try:
            meta = json.loads(data)
        except ValueError as exc:  # cut short or overwritten: every command refuses it, named
            meta = exc
        if not isinstance(meta, dict) or not isinstance(meta.get("grids"), list):
            why = f"not JSON ({meta})" if isinstance(meta, Exception) else "not the object medsweep writes"
            raise StoreError(
                f"{self.meta_path}: damaged, {why}; expected {{\"schema_version\": {SCHEMA_VERSION}, \"grids\": "
                f"[GRID, ...], \"holdout\": null}}: restore it from a copy, or write that with the store's grid names"
            )
        return meta

    def open_for(self, grid: str, allow_other_grid: bool = False, holdout: Optional[float] = None) -> None:
        """Create the store for ``grid``, or check that an existing one may take its results.

        The holdout fraction is fixed per store: test scores on the dataset's own test set and
        on a holdout must never be mixed in one table."""
        probe = storage.join(self.root, f".write-probe-{uuid.uuid4().hex}")
        try:
            storage.makedirs(self.trials_dir)
            storage.write_atomic(probe, b"")
            storage.remove(probe)
        except OSError as exc:
            raise StoreError(f"results directory {self.root} is not writable: {exc}") from exc
        if storage.is_local(self.root):
            free = shutil.disk_usage(storage.filesystem(self.root)[1]).free
            if free < MIN_FREE_MIB * 2**20:
                raise StoreError(
                    f"results directory {self.root} has {free / 2**20:.1f} MiB free; a sweep needs at least "
                    f"{MIN_FREE_MIB} MiB for its rows, manifests and cache: free some space or use another --results"
                )
        meta = self.meta()
        if meta is None:
            self._write_json(self.meta_path, {"schema_version": SCHEMA_VERSION, "grids": [grid], "holdout": holdout})
            return
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(
                f"{self.meta_path}: schema version {meta.get('schema_version')} is not this "
                f"medsweep's {SCHEMA_VERSION}; use another --results directory"
            )
        if meta.get("holdout") != holdout:
            raise StoreError(
                f"{self.root} was swept with --holdout {meta.get('holdout')}, not {holdout}: "
                f"use the same --holdout, or another --results"
            )
        grids = meta.get("grids", [])
        if grid not in grids:
            if not allow_other_grid:
                raise StoreError(
                    f"results directory {self.root} holds results of grid(s) {', '.join(grids)}, "
                    f"not {grid!r}; pass --allow-other-grid to add to it, or use another --results"
                )
            self._write_json(self.meta_path, {**meta, "grids": grids + [grid]})

    @contextmanager
    def driver_lock(self, take_over: bool = False):
        """One driver per store. A second one is refused while the first runs; a lock left by
        a driver that died (killed, its machine gone) is taken over only with ``take_over``
        (``--resume``). On the same host a dead driver is recognised by its pid; on another
        host it cannot be, so the lock then needs ``--resume`` too."""
        path = storage.join(self.root, "driver.lock")
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            holder = json.loads(storage.read_bytes(path))
        except FileNotFoundError:
            holder = None
        except (OSError, ValueError):
            holder = {"host": "?", "pid": -1, "since": "?"}  # unreadable: treat as a dead driver's
        if holder is not None:
            where = f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}"
            if holder.get("host") == me["host"] and _pid_alive(holder.get("pid", -1)):
                raise StoreError(f"{self.root} is in use by another sweep ({where}): wait for it to end, or use another --results")
            if not take_over:
                raise StoreError(f"{self.root} holds the lock of a sweep that did not finish ({where}); "
                                 f"pass --resume to take over and continue it")
            storage.remove(path)
        _create_exclusive(path, json.dumps(me).encode())
        try:
            yield
        finally:
            try:
                if json.loads(storage.read_bytes(path)).get("pid") == me["pid"]:
                    storage.remove(path)
            except (OSError, ValueError):
                pass

    def _write_json(self, path: str, obj: dict) -> None:
        storage.write_atomic(path, json.dumps(obj, indent=2).encode())

    def trial_path(self, study_id: str, trial_id: str) -> str:
        return TrialFiles(self.root, study_id, trial_id).row

    def write_trial(self, row: dict, index: bool = False) -> str:
        """Write one trial row atomically; returns its path. ``index``: the row also goes into
        the read index (flushed as a segment every ``INDEX_SEGMENT_ROWS`` rows and by
        :meth:`flush_index`), so that the first read after a sweep opens no trial file."""
        table = pa.Table.from_pylist([{name: row.get(name) for name in TRIAL_SCHEMA.names}], TRIAL_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        path = self.trial_path(row["study_id"], row["trial_id"])
        storage.write_atomic(path, sink.getvalue().to_pybytes())
        if index:
            fs, where = storage.filesystem(path)
            info = fs.get_file_info(where)  # the stat a later listing will see
            self._unindexed.append((table, where, info.size, info.mtime_ns or 0))
            if len(self._unindexed) >= INDEX_SEGMENT_ROWS:
                self.flush_index()
        return path

    @property
    def index_dir(self) -> str:
        return storage.join(self.root, "index")

    def flush_index(self) -> None:
        """The rows written since the last flush, as one index segment (merged with the others
        once there are ``INDEX_MAX_SEGMENTS``)."""
        if not self._unindexed:
            return
        tables = [t.append_column("_file", pa.array([f], pa.string()))
                  .append_column("_size", pa.array([size], pa.int64()))
                  .append_column("_mtime_ns", pa.array([mtime], pa.int64())) for t, f, size, mtime in self._unindexed]
        self._unindexed = []
        self._write_segment(pa.concat_tables(tables))

    def history_path(self, study_id: str, trial_id: str) -> str:
        return TrialFiles(self.root, study_id, trial_id).history

    def write_history(self, study_id: str, trial_id: str, epochs: list[dict]) -> str:
        """One trial's per-epoch records, atomically (written before its trials row)."""
        rows = [{**{n: e.get(n) for n in HISTORY_SCHEMA.names}, "study_id": study_id, "trial_id": trial_id} for e in epochs]
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows, HISTORY_SCHEMA), sink)
        path = self.history_path(study_id, trial_id)
        storage.write_atomic(path, sink.getvalue().to_pybytes())
        return path

    def read_history(self, study_ids: Optional[set] = None) -> pa.Table:
        """Per-epoch rows, of every trial or of the given studies' trials."""
        if not storage.exists(self.history_dir):
            return HISTORY_SCHEMA.empty_table()
        fs, base = storage.filesystem(self.history_dir)
        folders = [base] if study_ids is None else [f"{base}/{sid}" for sid in sorted(study_ids)]
        paths = [
            info.path
            for folder in folders
            for info in fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
            if info.type == pafs.FileType.File and not info.base_name.startswith(".")
        ]
        table, _ = self._read_files(fs, paths, HISTORY_SCHEMA)
        return table

    def _read_files(self, fs: pafs.FileSystem, paths: list[str], schema: pa.Schema) -> tuple[pa.Table, list[str]]:
        """The rows of Parquet files as one table, and the paths read. A damaged file (a
        truncated copy: "magic bytes not found") is left out, named once, and remembered in
        ``unreadable``; the rest are read all the same."""
        if not paths:
            return schema.empty_table(), []

        def read(path: str):
            try:
                with fs.open_input_file(path) as f:
                    return storage.read_parquet(f, schema)
            except (pa.ArrowInvalid, OSError) as exc:
                return exc

        # Threads: Parquet's reader releases the GIL, and on object stores each file is a request.
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            read_back = list(pool.map(read, paths))
        parts, good = [], []
        for path, table in zip(paths, read_back):
            if isinstance(table, pa.Table):
                parts.append(table)
                good.append(path)
                continue
            where = self._uri_of(path)
            if where not in self.unreadable:
                self.unreadable[where] = f"{type(table).__name__}: {table}"
                self._warn(f"{where}: unreadable ({table}); left out. `sweep store check` lists every "
                           f"problem, `sweep run --resume` moves such files to quarantine/ and runs their trials again")
        return (pa.concat_tables(parts) if parts else schema.empty_table()), good

    def _uri_of(self, path: str) -> str:
        """A filesystem path under this store as the store names it (a path or a URI)."""
        fs_root = storage.filesystem(self.root)[1].rstrip("/")
        return storage.join(self.root, path[len(fs_root) + 1:]) if path.startswith(fs_root + "/") else path

    def trials_with_history(self) -> set[tuple[str, str]]:
        """(study_id, trial_id) of every history file (a trial that failed before its first
        epoch has one too, empty)."""
        if not storage.exists(self.history_dir):
            return set()
        fs, base = storage.filesystem(self.history_dir)
        found = set()
        for info in fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File and info.base_name.endswith(".parquet") and not info.base_name.startswith("."):
                found.add((info.path.rsplit("/", 2)[-2], info.base_name[: -len(".parquet")]))
        return found

    def quarantine_unreadable(self) -> dict[str, str]:
        """Move to ``quarantine/`` (same relative path) every damaged trial or history file a
        read found, and the row of every trial whose history is damaged or gone, so that each
        such trial counts as missing and runs again (a row alone would count it done, its
        epochs lost for good); the moved paths, each with why."""
        rows = self.read_trials().select(["study_id", "trial_id"]).to_pylist()
        self.read_history()
        moving = {where: "unreadable" for where in self.unreadable}
        history = self.trials_with_history()
        for study_id, trial_id in history:
            files = TrialFiles(self.root, study_id, trial_id)
            if files.row in self.unreadable and files.history not in moving:
                moving[files.history] = "the history of an unreadable row"  # its trial runs again
        for row in rows:
            files = TrialFiles(self.root, row["study_id"], row["trial_id"])
            if files.history in self.unreadable:
                moving[files.row] = "its history file is unreadable"
            elif (row["study_id"], row["trial_id"]) not in history:
                moving[files.row] = "its history file is gone"
        for where in sorted(moving):
            storage.move(where, storage.join(self.quarantine_dir, where[len(self.root) + 1:]))
        self.unreadable.clear()
        return dict(sorted(moving.items()))

    def read_trials(self) -> pa.Table:
        """Every trial row in the store (temporary files of interrupted writes are ignored).

        The trial files stay the truth; the segments under ``index/`` hold their rows with
        each file's name, size and mtime, so a read lists the files and opens only those the
        index does not hold as they are. The driver adds the rows it writes as it goes
        (``write_trial(index=True)``), so the first read after a sweep opens no trial file; a
        read that found files the index lacks adds them as a segment.
        """
        if not storage.exists(self.trials_dir):
            if not storage.exists(self.root):
                raise StoreError(f"no results directory at {self.root}")
            return TRIAL_SCHEMA.empty_table()
        fs, base = storage.filesystem(self.trials_dir)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        files = {
            info.path: (info.size, info.mtime_ns or 0)
            for info in fs.get_file_info(selector)
            if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
            and not info.base_name.startswith(".")
        }
        index, segments = self._read_index()
        known = {
            (f, size, mtime): i
            for i, (f, size, mtime) in enumerate(zip(*(index[c].to_pylist() for c in INDEX_COLUMNS)))
        } if index is not None else {}
        keep = [known[(f, *stat)] for f, stat in files.items() if (f, *stat) in known]
        fresh = sorted(f for f, stat in files.items() if (f, *stat) not in known)
        parts = [index.take(keep)] if index is not None and keep else []
        if fresh:
            table, fresh = self._read_files(fs, fresh, TRIAL_SCHEMA)
        if fresh:
            # A trial file holds one row: the file of each row is its path.
            names = pa.array(fresh, pa.string())
            table = table.append_column("_file", names)
            table = table.append_column("_size", pa.array([files[f][0] for f in fresh], pa.int64()))
            table = table.append_column("_mtime_ns", pa.array([files[f][1] for f in fresh], pa.int64()))
            parts.append(table)
            self._write_segment(table)
        combined = pa.concat_tables(parts) if parts else _indexed_schema().empty_table()
        stale = (index.num_rows if index is not None else 0) - len(keep)
        if stale > max(100, len(keep) // 10):
            # Rows of rewritten or removed files pile up in the segments: keep what is current.
            self._replace_segments(combined, segments)
        return combined.drop_columns(list(INDEX_COLUMNS))

    def _segments(self) -> list[str]:
        if not storage.exists(self.index_dir):
            return []
        return sorted(storage.join(self.index_dir, name) for name in storage.listdir(self.index_dir)
                      if name.endswith(".parquet") and not name.startswith("."))

    def _read_index(self) -> tuple[Optional[pa.Table], list[str]]:
        """Every segment's rows (a damaged one or one of another schema is left out: its rows
        are read again from their trial files) and the segments read."""
        segments, tables, good = self._segments(), [], []
        for path in segments:
            try:
                table = storage.read_parquet(storage.read_bytes(path))
            except (FileNotFoundError, pa.ArrowInvalid, OSError):
                continue  # merged away by another reader meanwhile, or unreadable
            if table.schema.equals(_indexed_schema()):
                tables.append(table)
                good.append(path)
        return (pa.concat_tables(tables) if tables else None), good

    def _put_segment(self, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        name = f"segment-{time.time_ns():020d}-{os.getpid()}-{next(_SEGMENT_COUNTER)}.parquet"
        storage.write_atomic(storage.join(self.index_dir, name), sink.getvalue().to_pybytes())

    def _write_segment(self, table: pa.Table) -> None:
        """One more segment; once there are INDEX_MAX_SEGMENTS, all merged into one."""
        try:
            self._put_segment(table)
            if len(self._segments()) >= INDEX_MAX_SEGMENTS:
                index, read = self._read_index()
                if index is not None:
                    self._replace_segments(index, read)
        except OSError:
            pass  # a read-only store still reads, only more slowly next time

    def _replace_segments(self, table: pa.Table, segments: list[str]) -> None:
        """``table`` as one segment in place of ``segments``: written first, then the old ones
        removed (a reader in between sees rows twice, which the file stats make harmless)."""
        try:
            self._put_segment(table)
        except OSError:
            return
        for path in segments:
            try:
                storage.remove(path)
            except OSError:
                pass

    def checkpoints_in_flight(self) -> dict[str, list[dict]]:
        """study_id -> the checkpoints of its trials that were in flight when a sweep stopped
        (killed driver, lost node). Checkpoints of trials that have a row (a trial stopped
        while it saved one) are leftovers, and deleted here."""
        from trainables.training.checkpoints import list_checkpoints, remove_checkpoint

        metas = list_checkpoints(self.checkpoints_dir)
        if not metas:
            return {}  # the usual end of a sweep: no need to read the trials table
        recorded = set(self.read_trials().column("trial_id").to_pylist())
        out: dict[str, list[dict]] = {}
        for meta in metas:
            if meta["trial_id"] in recorded:
                remove_checkpoint(self.checkpoints_dir, meta["study_id"], meta["trial_id"])
            else:
                out.setdefault(meta["study_id"], []).append(meta)
        return out

    def done_trials(self) -> dict[str, list[tuple[float, float]]]:
        """study_id -> [(lr, best validation score)] of trials that finished without error."""
        return self.trial_outcomes()[0]

    def trial_outcomes(self) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[float]]]:
        """(done, failed): study_id -> [(lr, best validation score)] of the trials that
        finished without error, and study_id -> [lr] of those recorded as errors (Optuna is
        told of both on --resume)."""
        table = self.read_trials()
        done: dict[str, list[tuple[float, float]]] = {}
        failed: dict[str, list[float]] = {}
        for row in table.select(["study_id", "lr", "val_score", "status"]).to_pylist():
            if row["status"] == "ok" and row["val_score"] is not None:
                done.setdefault(row["study_id"], []).append((row["lr"], row["val_score"]))
            elif row["status"] == "error":
                failed.setdefault(row["study_id"], []).append(row["lr"])
        return done, failed
