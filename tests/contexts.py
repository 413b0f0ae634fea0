"""Trial contexts for tests, filled as the driver fills them (sweep/runner.py): the study's
split written as a manifest in a store, cache files given per backbone."""

from __future__ import annotations

import os
from typing import Optional

from sweep.manifests import write_manifests
from trainables.context import TrialContext, TrialRun
from trainables.datasets import load_dataset
from trainables.study import StudySpec


def make_context(spec: StudySpec, store_root: str, embedding_files: Optional[dict] = None,
                 data_root: Optional[str] = None, checkpoint_every_s: Optional[float] = None,
                 weights: Optional[dict] = None) -> TrialContext:
    data = load_dataset(spec.dataset, data_root)
    ((digest, manifest_file),) = write_manifests(os.path.join(store_root, "manifests"), [spec],
                                                 {spec.dataset: data}).values()
    files = {b: (paths,) if isinstance(paths, str) else tuple(paths) for b, paths in (embedding_files or {}).items()}
    return TrialContext(study=spec, cpus=spec.cpus, gpus=0.0, data_root=data_root, holdout=None, skip=None,
                        weights=weights or {}, n_classes=len(data.classes), manifest_file=manifest_file,
                        manifest_digest=digest, embedding_files=files, store_root=store_root,
                        checkpoint_every_s=checkpoint_every_s)


def make_run(context: TrialContext, lr: float = 3e-3, trial_id: str = "trial_1") -> TrialRun:
    return TrialRun(context, lr, trial_id)
