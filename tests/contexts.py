"""Trial contexts for tests, filled as the driver fills them: the study's split written as a
manifest in a store (sweep.runner.standalone_context), or placeholders for code that reads
only plain values (the routers, the recorder)."""

from __future__ import annotations

from typing import Optional

from sweep.runner import standalone_context
from trainables.context import TrialContext, TrialRun
from trainables.study import StudySpec


def make_context(spec: StudySpec, store_root: str, embedding_files: Optional[dict] = None,
                 data_root: Optional[str] = None, checkpoint_every_s: Optional[float] = None) -> TrialContext:
    files = {b: (p,) if isinstance(p, str) else tuple(p) for b, p in (embedding_files or {}).items()}
    return standalone_context(spec, store_root, files, data_root, checkpoint_every_s)


def make_run(context: TrialContext, lr: float = 3e-3, trial_id: str = "trial_1") -> TrialRun:
    return TrialRun(context, lr, trial_id)


def bare_context(spec: StudySpec, **fields) -> TrialContext:
    """A context for code that reads only the study and the context's plain values (the
    routers, the recorder): nothing is written, the files named need not exist."""
    values = dict(study=spec, cpus=spec.cpus, gpus=0.0, data_root=None, holdout=None, skip=None, weights={},
                  n_classes=10, manifest_file="/nowhere/manifest.json", manifest_digest="m0", embedding_files={},
                  store_root="/nowhere", checkpoint_every_s=None)
    return TrialContext(**{**values, **fields})
