"""The results store: one Parquet file per finished trial, written atomically.

Layout under ``--results DIR``::

    store.json                       schema version and the grid this store belongs to
    trials/<study_id>/<trial_id>.parquet
    manifests/<digest>.json          each study's training and validation ids
    predictions/<study_id>/<trial_id>.npy   test probabilities where test labels are hidden
    submissions/<cell>/fold<k>.csv, ensemble.csv   Kaggle submission files
    skipped/<dataset>.json           what --skip-unreadable left out, file by file
    cache/                           the embedding cache (Arrow IPC files)
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

import json
import uuid
from typing import Optional

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from trainables import storage

SCHEMA_VERSION = 2  # 2: views, embedding_dtype, peak_rss_mib, peak_gpu_mib, gpu_ids, started_at
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
        ("study_id", pa.string()),
        ("cell_id", pa.string()),
        ("trial_id", pa.string()),
        ("lr", pa.float64()),
        ("epochs", pa.int64()),
        ("best_epoch", pa.int64()),
        ("stopped_early", pa.bool_()),
        ("val_score", pa.float64()),
        ("test_score", pa.float64()),
        ("metric", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("wall_s", pa.float64()),
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


class StoreError(RuntimeError):
    """A results directory that cannot be used as asked; the message says why and what to do."""


class ResultsStore:
    def __init__(self, root: str):
        self.root = storage.absolute(root)
        self.trials_dir = storage.join(self.root, "trials")
        self.cache_dir = storage.join(self.root, "cache")
        self.ray_dir = storage.join(self.root, "ray")
        self.manifests_dir = storage.join(self.root, "manifests")
        self.predictions_dir = storage.join(self.root, "predictions")
        self.skipped_dir = storage.join(self.root, "skipped")

    @property
    def meta_path(self) -> str:
        return storage.join(self.root, STORE_FILE)

    def meta(self) -> Optional[dict]:
        try:
            return json.loads(storage.read_bytes(self.meta_path))
        except FileNotFoundError:
            return None

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

    def _write_json(self, path: str, obj: dict) -> None:
        storage.write_atomic(path, json.dumps(obj, indent=2).encode())

    def trial_path(self, study_id: str, trial_id: str) -> str:
        return storage.join(self.trials_dir, study_id, f"{trial_id}.parquet")

    def write_trial(self, row: dict) -> str:
        """Write one trial row atomically; returns its path."""
        table = pa.Table.from_pylist([{name: row.get(name) for name in TRIAL_SCHEMA.names}], TRIAL_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        path = self.trial_path(row["study_id"], row["trial_id"])
        storage.write_atomic(path, sink.getvalue().to_pybytes())
        return path

    def read_trials(self) -> pa.Table:
        """Every trial row in the store (temporary files of interrupted writes are ignored)."""
        if not storage.exists(self.trials_dir):
            if not storage.exists(self.root):
                raise StoreError(f"no results directory at {self.root}")
            return TRIAL_SCHEMA.empty_table()
        fs, path = storage.filesystem(self.trials_dir)
        dataset = pads.dataset(
            path, filesystem=fs, schema=TRIAL_SCHEMA, format="parquet", exclude_invalid_files=False,
            ignore_prefixes=[".tmp-", "."],
        )
        return dataset.to_table()

    def done_trials(self) -> dict[str, list[tuple[float, float]]]:
        """study_id -> [(lr, best validation score)] of trials that finished without error."""
        table = self.read_trials()
        done: dict[str, list[tuple[float, float]]] = {}
        for row in table.select(["study_id", "lr", "val_score", "status"]).to_pylist():
            if row["status"] == "ok" and row["val_score"] is not None:
                done.setdefault(row["study_id"], []).append((row["lr"], row["val_score"]))
        return done
