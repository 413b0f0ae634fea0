"""Fold manifests: which images each study trains and validates on, written beside the
results under a content digest that every results row carries.

The driver computes each study's split once (the same pure functions a trial would use),
writes it to ``<results>/manifests/<digest>.json`` (a path or URI) and hands the trial the file: the trial
reads its split from there, so the digest in a row is exactly the split that trial used.
Studies that differ only by backbone or mode share a manifest.
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

import numpy as np

from sweep.spec import StudySpec
from trainables import storage
from trainables.data.datasets import LoadedDataset
from trainables.data.splits import SplitError, balanced_subset, fold_split


def study_manifest(spec: StudySpec, data: LoadedDataset, skipped: tuple = ()) -> dict:
    labels, groups = data.pool.labels, data.pool.groups
    try:
        subset = balanced_subset(labels, spec.n_train, spec.seed)
        train, val = fold_split(labels, subset, spec.n_folds, spec.fold, spec.seed, groups)
    except SplitError as exc:
        raise SplitError(f"study {spec.study_id}: {exc}") from exc
    present = np.unique(labels[val])
    if len(present) < 2:
        raise SplitError(
            f"study {spec.study_id}: validation fold {spec.fold} of {spec.n_folds} holds only class "
            f"{data.classes[present[0]] if len(present) else '-'} ({len(val)} images): its score is undefined. "
            f"The smallest class of {spec.n_train} images cannot fill {spec.n_folds} folds: use fewer folds "
            f"or a larger subset"
        )
    return {
        "dataset": spec.dataset,
        "fingerprint": data.fingerprint,
        "n_train": spec.n_train,
        "n_folds": spec.n_folds,
        "fold": spec.fold,
        "seed": spec.seed,
        "train_rows": train.tolist(),
        "val_rows": val.tolist(),
        "train_ids": [data.pool.ids[i] for i in train],
        "val_ids": [data.pool.ids[i] for i in val],
        # Images --skip-unreadable left out of this data set (reasons in skipped/<dataset>.json).
        "skipped_ids": sorted(skipped),
    }


class StudySplit(NamedTuple):
    """A study's split as written: its digest and file, and its pool rows (which the driver
    extracts embeddings of)."""

    digest: str
    path: str
    train_rows: tuple
    val_rows: tuple


def manifest_digest(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def write_manifests(
    directory: str, studies: list[StudySpec], datasets: dict[str, LoadedDataset], skips: dict | None = None,
    write: bool = True,
) -> dict[str, StudySplit]:
    """study_id -> StudySplit; each distinct split written once, atomically. With
    ``write=False`` only checked: every split computed, nothing written."""
    for name, data in datasets.items():
        too_large = sorted({(s.subset, s.n_train) for s in studies if s.dataset == name and s.n_train > len(data.pool.labels)},
                           key=lambda t: t[1])
        if too_large:
            asked = ", ".join(f"{subset} ({n})" for subset, n in too_large)
            raise SplitError(
                f"the {name} training pool holds {len(data.pool.labels)} images, fewer than the subset(s) {asked} "
                f"of this sweep ask for: give the whole data set (--data {name}=ROOT), or keep the subsets that fit "
                f"(--where subset=...)"
            )
    out, by_split = {}, {}
    for spec in studies:
        key = (spec.dataset, spec.n_train, spec.n_folds, spec.fold, spec.seed)
        if key not in by_split:
            manifest = study_manifest(spec, datasets[spec.dataset], tuple((skips or {}).get(spec.dataset, ())))
            digest = manifest_digest(manifest)
            path = storage.join(directory, f"{digest}.json")
            if write and not storage.exists(path):
                storage.write_atomic(path, json.dumps(manifest).encode())
            by_split[key] = StudySplit(digest, path, tuple(manifest["train_rows"]), tuple(manifest["val_rows"]))
        out[spec.study_id] = by_split[key]
    return out
