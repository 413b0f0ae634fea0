"""Trial contexts for tests, filled as the driver fills them: the study's split written as a
manifest in a store (sweep.driver.runner.standalone_context), or placeholders for code that reads
only plain values (the routers, the recorder)."""

from __future__ import annotations

from typing import Optional

from sweep.driver.runner import standalone_context
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
    values = dict(study=spec, cpus=spec.cpus, gpus=0.0, data_root=None, holdout=None, skip=None, weights={}, trusted_code=(),
                  n_classes=10, manifest_file="/nowhere/manifest.json", manifest_digest="m0", embedding_files={},
                  store_root="/nowhere", checkpoint_every_s=None)
    return TrialContext(**{**values, **fields})


def run_options(**flat):
    """``RunOptions`` from the flat names of ``sweep run``'s options (results=, resume=,
    data_roots=, weights=, holdout=, max_failures=, ...), each put in its group."""
    from dataclasses import fields

    from sweep.options import Inputs, Resources, RunOptions, StoreOptions, TrialPolicy

    groups = {}
    for name, group in (("inputs", Inputs), ("resources", Resources), ("store", StoreOptions), ("policy", TrialPolicy)):
        names = {f.name for f in fields(group)}
        groups[name] = group(**{k: flat.pop(k) for k in list(flat) if k in names})
    return RunOptions(**groups, **flat)
