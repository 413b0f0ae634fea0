"""Published weight files: read safely, detect the layout from the keys, convert explicitly.

Layouts (the README's "Backbones and weight files"):

| format | what it is | conversion |
|---|---|---|
| ``vissl`` | VISSL model zoo checkpoint (SwAV, SimCLR) | ``classy_state_dict.base_model.model.trunk``, strip ``_feature_blocks.``, heads dropped |
| ``swav_hub`` | official SwAV ``swav_800ep_pretrain.pth.tar`` | strip ``module.``, drop ``projection_head.*``, ``prototypes.*`` |
| ``simclr_tf`` | TF->PyTorch ``resnet50-1x.pth``: ``{"state_dict": ...}`` | drop ``fc.*``; inputs in [0, 1], no mean/std |
| ``dino_full`` | DINO training checkpoint | the ``teacher``, strip ``backbone.``, drop the DINO head |
| ``state_dict`` | a flat torchvision/timm state dict (supervised, DINO) | drop the classifier |

Files load with ``torch.load(weights_only=True)``; the only class allowed beyond tensors and
plain containers is ``argparse.Namespace`` (DINO checkpoints keep their ``args`` in one). A
file that needs any other code to unpickle is refused, naming the class it asked for.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from trainables.errors import UserError


class WeightsError(UserError):
    """A weight file that cannot be used; the message names the file and what was found."""


SAFE_GLOBALS = [argparse.Namespace]
NO_NORMALISATION = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@dataclass
class ConvertedWeights:
    format: str
    state_dict: dict
    dropped: list  # keys of the file deliberately left out (heads, classifier)
    # (mean, std) the weights were trained with, where it differs from the backbone's default.
    normalisation: tuple | None = None


def read_checkpoint(path: str):
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{path}: file not found") from None
    except Exception as exc:
        text = str(exc)
        hint = ""
        if "Unsupported global" in text or "weights_only" in text.lower():
            hint = " (it needs code to unpickle, which medsweep never runs: re-save its tensors as a plain state dict)"
        raise WeightsError(f"{path}: cannot load as a weights-only checkpoint{hint}: {text.splitlines()[0]}") from exc


def _tensors(mapping: dict, path: str, where: str) -> dict:
    bad = [k for k, v in mapping.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: {where} holds non-tensor entries {bad[:5]}")
    return dict(mapping)


def detect_format(obj, path: str = "<file>") -> str:
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: a checkpoint must be a dict, found {type(obj).__name__}")
    if "classy_state_dict" in obj:
        return "vissl"
    if "teacher" in obj and isinstance(obj["teacher"], dict):
        return "dino_full"
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        return "simclr_tf"
    if obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        return "swav_hub"
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return "state_dict"
    raise WeightsError(f"{path}: unrecognised checkpoint layout (top-level keys {sorted(obj)[:8]})")


def _split(state: dict, drop_prefixes: tuple[str, ...]) -> tuple[dict, list]:
    kept = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    return kept, sorted(set(state) - set(kept))


def convert(obj, path: str = "<file>") -> ConvertedWeights:
    """Any supported layout -> a timm state dict without classifier."""
    fmt = detect_format(obj, path)
    if fmt == "vissl":
        try:
            model = obj["classy_state_dict"]["base_model"]["model"]
            trunk = model["trunk"]
        except (KeyError, TypeError):
            raise WeightsError(f"{path}: VISSL checkpoint without classy_state_dict.base_model.model.trunk") from None
        trunk = _tensors(trunk, path, "the VISSL trunk")
        prefix = "_feature_blocks."
        state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in trunk.items()}
        heads = [f"heads.{k}" for k in model.get("heads", {})]
        return ConvertedWeights(fmt, state, heads)
    if fmt == "dino_full":
        teacher = _tensors(obj["teacher"], path, "teacher")
        state = {k[len("backbone."):]: v for k, v in teacher.items() if k.startswith("backbone.")}
        dropped = sorted(f"teacher.{k}" for k in teacher if not k.startswith("backbone."))
        return ConvertedWeights(fmt, state, dropped)
    if fmt == "simclr_tf":
        state, dropped = _split(_tensors(obj["state_dict"], path, "state_dict"), ("fc.",))
        return ConvertedWeights(fmt, state, dropped, NO_NORMALISATION)
    if fmt == "swav_hub":
        stripped = {k[len("module."):]: v for k, v in _tensors(obj, path, "the state dict").items()}
        state, dropped = _split(stripped, ("projection_head.", "prototypes."))
        return ConvertedWeights(fmt, state, dropped)
    state, dropped = _split(_tensors(obj, path, "the state dict"), ("fc.", "head."))
    return ConvertedWeights(fmt, state, dropped)


def read_weights(path: str) -> ConvertedWeights:
    return convert(read_checkpoint(path), path)
