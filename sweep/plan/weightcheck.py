"""``sweep weights check``: detect a weight file's layout, convert, load, embed one image.

Example::

    >>> check_weights("dino", "dino_deitsmall8_pretrain.pth")["dim"]   # doctest: +SKIP
    1536
"""

from __future__ import annotations

import torch

from trainables.models.backbones import build_architecture, compare_keys, embed, get_backbone_info, load_weights, weights_digest
from trainables.errors import UserError
from trainables.models.weights import WeightsError, read_weights


def check_weights(name: str, path: str, trust_remote_code: bool = False) -> dict:
    """The report; ``ok`` is True when the file loads whole into the backbone."""
    info = get_backbone_info(name)
    report = {"backbone": name, "file": path, "format": None, "tensors": 0, "missing": [], "unexpected": [],
              "wrong_shape": [], "dropped": [], "dim": None, "sha256": None, "mean": list(info.mean),
              "std": list(info.std), "licence": info.licence or None, "ok": False, "error": None}
    if info.foundation:
        return _check_foundation(name, info, path, report, trust_remote_code)
    if info.hub:
        return _check_hub(name, info, path, report)
    try:
        converted = read_weights(path)
        report["sha256"] = weights_digest(name, path)
    except (WeightsError, OSError) as exc:
        report["error"] = str(exc)
        return report
    model = build_architecture(info)
    missing, unexpected, wrong = compare_keys(model, converted.state_dict)
    report.update(format=converted.format, tensors=len(converted.state_dict), missing=missing,
                  unexpected=unexpected, wrong_shape=wrong, dropped=converted.dropped)
    if converted.normalisation:
        report["mean"], report["std"] = map(list, converted.normalisation)
    if missing or unexpected or wrong:
        report["error"] = f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} of another shape"
        return report
    load_weights(model, info, path)
    size = 224
    with torch.no_grad():
        report["dim"] = int(embed(model.eval(), info, torch.zeros(1, 3, size, size)).shape[1])
    report["ok"] = True
    return report


def _check_hub(name, info, path: str, report: dict) -> dict:
    """A hub backbone's file through timm's own loader (strict: the classifier alone may go)."""
    from timm.models import load_state_dict

    from trainables.models.backbones import create_backbone

    report.update(format="timm-hub", architecture=info.timm_name, input_size=info.input_size)
    try:
        report["sha256"] = weights_digest(name, path)
        report["tensors"] = len(load_state_dict(path))  # safetensors, or torch.load(weights_only=True)
        model, _ = create_backbone(name, weights_path=path)
    except Exception as exc:  # a broken or mismatched file: the report says what timm said
        report["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return report
    size = info.input_size or 224
    with torch.no_grad():
        report["dim"] = int(embed(model.eval(), info, torch.zeros(1, 3, size, size)).shape[1])
    report["ok"] = True
    return report


def _check_foundation(name, info, path: str, report: dict, trust_remote_code: bool) -> dict:
    """A named foundation model's files through its loader (strict; errors name the keys)."""
    from trainables.models.backbones import create_backbone
    from trainables.models.foundation.loading import tensor_count

    report.update(format=f"{info.loader} ({info.repo})", architecture=info.timm_name, input_size=info.input_size,
                  embedding=info.embedding, card=info.card, gated=info.gated)
    try:
        report["sha256"] = weights_digest(name, path)
        report["tensors"] = tensor_count(path)
        model, _ = create_backbone(name, weights_path=path, trust_remote_code=trust_remote_code)
    except (UserError, OSError) as exc:
        report["error"] = str(exc)
        return report
    size = info.input_size
    with torch.no_grad():
        report["dim"] = int(embed(model.eval(), info, torch.zeros(1, 3, size, size)).shape[1])
    report["ok"] = True
    return report
