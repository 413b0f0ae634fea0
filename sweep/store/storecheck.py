"""``sweep store check``: every problem in a results store, one line each.

What it looks for:

- ``unreadable``: a trial or history Parquet file that does not read (a truncated copy);
  reads leave it out, ``sweep run --resume`` moves it to ``quarantine/``;
- ``no history``: a trial row without its per-epoch history (written before the row);
- ``no manifest``: a row whose fold manifest (``manifests/<digest>.json``) is gone;
- ``orphan checkpoint``: a checkpoint of a trial that already has its row (left by a trial
  stopped while it saved one), half of one (a ``.pt`` without its ``.json`` or the other way),
  or a ``.json`` that is not a medsweep checkpoint's.

Checkpoints of trials without a row are trials in flight (or of a killed sweep, for
``--resume``): not a problem.

Example::

    >>> problems = check_store(ResultsStore("sweep-results"))   # doctest: +SKIP
    >>> [p["kind"] for p in problems]                          # doctest: +SKIP
    ['unreadable']
"""

from __future__ import annotations

import json

from sweep.store.store import ResultsStore
from trainables import storage
from trainables.training.checkpoints import FORMAT, _subfolders


def _problem(kind: str, path: str, detail: str) -> dict:
    return {"kind": kind, "path": path, "detail": detail}


def _checkpoint_problems(store: ResultsStore, recorded: set) -> list[dict]:
    out = []
    for study_id in _subfolders(store.checkpoints_dir):
        folder = storage.join(store.checkpoints_dir, study_id)
        names = storage.listdir(folder)
        stems = {n.rsplit(".", 1)[0] for n in names if n.endswith((".pt", ".json"))}
        for stem in sorted(stems):
            weights, sidecar = f"{stem}.pt", f"{stem}.json"
            path = storage.join(folder, sidecar if sidecar in names else weights)
            if weights not in names or sidecar not in names:
                missing = weights if weights not in names else sidecar
                out.append(_problem("orphan checkpoint", path, f"{missing} is missing beside it"))
                continue
            try:
                meta = json.loads(storage.read_bytes(path))
                if meta.get("format") != FORMAT:
                    raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
            except (OSError, ValueError) as exc:
                out.append(_problem("orphan checkpoint", path, f"not a medsweep checkpoint description ({exc})"))
                continue
            if stem in recorded:
                out.append(_problem("orphan checkpoint", path, f"trial {stem} already has its row"))
    return out


def check_store(store: ResultsStore) -> list[dict]:
    """Every problem found, as {kind, path, detail}; empty for a sound store."""
    rows = store.read_trials().select(["study_id", "trial_id", "manifest_digest"]).to_pylist()
    store.read_history()  # finds the unreadable history files
    problems = [_problem("unreadable", path, why) for path, why in sorted(store.unreadable.items())]
    with_history = store.trials_with_history()
    manifests = set(storage.listdir(store.manifests_dir))
    for row in rows:
        trial = store.trial_path(row["study_id"], row["trial_id"])
        if (row["study_id"], row["trial_id"]) not in with_history:
            problems.append(_problem("no history", trial, f"no {store.history_path(row['study_id'], row['trial_id'])}"))
        digest = row["manifest_digest"]
        if digest and f"{digest}.json" not in manifests:
            problems.append(_problem("no manifest", trial, f"its fold manifest manifests/{digest}.json is gone"))
    problems += _checkpoint_problems(store, {r["trial_id"] for r in rows})
    return problems
