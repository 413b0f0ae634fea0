"""Trial checkpoints in the results store: a trial whose process, node or driver died resumes
from its last checkpoint instead of from epoch 1.

Layout under the store's ``checkpoints/``::

    <study_id>/<trial_id>.pt     the training state (weights, Adam, plateau schedule, random
                                 state) and the best-so-far selection; torch.save of tensors and
                                 plain values, loaded with weights_only=True like any checkpoint
    <study_id>/<trial_id>.json   what the driver needs to resume it without reading the .pt:
                                 lr, epoch, fold manifest digest, the epochs reported so far

Tune's own checkpoints are bound to one Tuner's trials: a retry inside the same sweep (a
killed worker) could use them, but ``sweep run --resume`` after a killed driver starts a new
Tuner. Checkpoints keyed by (study, trial) in the store serve both, from any node.

The .json is written after the .pt, each atomically: a .json always names a whole .pt. The
driver deletes both once the trial's row is in the store.

Example::

    >>> save_checkpoint(folder, "study", "trial", state, meta)        # doctest: +SKIP
    >>> load_checkpoint(folder, "study", "trial")["state"]["epoch"]   # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import logging
from typing import Optional

import torch

from trainables import storage
from trainables.artifacts import KINDS

log = logging.getLogger(__name__)

FORMAT = 1


def checkpoint_paths(folder: str, study_id: str, trial_id: str) -> tuple[str, str]:
    """(.pt, .json) of a trial's checkpoint in the store's checkpoints ``folder``: the names
    trainables/artifacts.py gives them."""
    base = storage.join(folder, study_id, trial_id)
    return base + KINDS["checkpoint"][1], base + KINDS["checkpoint_meta"][1]


def save_checkpoint(folder: str, study_id: str, trial_id: str, state: dict, meta: dict) -> None:
    """``state``: tensors and plain values; ``meta``: JSON (lr, epoch, manifest_digest, records)."""
    weights, sidecar = checkpoint_paths(folder, study_id, trial_id)
    meta = {**meta, "format": FORMAT, "study_id": study_id, "trial_id": trial_id}
    buffer = io.BytesIO()
    torch.save({"meta": meta, "state": state}, buffer)
    storage.write_atomic(weights, buffer.getvalue())
    storage.write_atomic(sidecar, json.dumps(meta).encode())


def load_checkpoint(folder: str, study_id: str, trial_id: str) -> Optional[dict]:
    """``{"meta", "state"}`` of the trial's checkpoint, or None when it has none.

    A checkpoint that cannot be read (truncated by a dying disk, of another format, or one
    that needs code to unpickle) is reported and ignored: the trial starts from epoch 1, which
    costs time but never a wrong result."""
    weights, _ = checkpoint_paths(folder, study_id, trial_id)
    try:
        data = storage.read_bytes(weights)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("checkpoint %s cannot be read (%s): the trial starts from epoch 1", weights, exc)
        return None
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if checkpoint["meta"]["format"] != FORMAT:
            raise ValueError(f"format {checkpoint['meta']['format']}, not {FORMAT}")
    except Exception as exc:  # any unreadable file: never fatal, never trusted
        log.warning("checkpoint %s is not usable (%s: %s): the trial starts from epoch 1",
                    weights, type(exc).__name__, str(exc)[:300])
        return None
    return checkpoint


def settle_meta(folder: str, study_id: str, trial_id: str, meta: dict) -> None:
    """Make the .json say what the .pt holds. A process killed between the two writes (the
    .pt replaced, the .json not yet) leaves a .json of the checkpoint before: the .pt, whole
    and newer, is the truth, and the history the driver merges comes from the .json."""
    if read_meta(folder, study_id, trial_id) != meta:
        storage.write_atomic(checkpoint_paths(folder, study_id, trial_id)[1], json.dumps(meta).encode())


def read_meta(folder: str, study_id: str, trial_id: str) -> Optional[dict]:
    """The .json of a trial's checkpoint, or None (none, or unreadable)."""
    try:
        return json.loads(storage.read_bytes(checkpoint_paths(folder, study_id, trial_id)[1]))
    except (OSError, ValueError):
        return None


def list_checkpoints(folder: str) -> list[dict]:
    """The metadata of every checkpoint in the store (unreadable ones left out, with a warning)."""
    out = []
    for study_id in _subfolders(folder):
        for name in storage.listdir(storage.join(folder, study_id)):
            if not name.endswith(".json"):
                continue
            path = storage.join(folder, study_id, name)
            try:
                meta = json.loads(storage.read_bytes(path))
                if meta.get("format") != FORMAT or not {"trial_id", "lr", "epoch"} <= set(meta):
                    raise ValueError("not a medsweep checkpoint description")
            except (OSError, ValueError) as exc:
                log.warning("%s ignored: %s", path, exc)
                continue
            out.append({**meta, "study_id": study_id})
    return out


def remove_checkpoint(folder: str, study_id: str, trial_id: str) -> None:
    """Delete a trial's checkpoint, the .json first (a .pt alone is never resumed from)."""
    weights, sidecar = checkpoint_paths(folder, study_id, trial_id)
    for path in (sidecar, weights):
        try:
            storage.remove(path)
        except FileNotFoundError:
            pass


def _subfolders(folder: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, path = storage.filesystem(folder)
    selector = pafs.FileSelector(path, allow_not_found=True, recursive=False)
    return sorted(info.base_name for info in fs.get_file_info(selector) if info.type == pafs.FileType.Directory)
