"""``sweep weights check``: detect a weight file's layout, convert, load, embed one image.

Example::

    >>> check_weights("dino", "dino_deitsmall8_pretrain.pth")["dim"]   # doctest: +SKIP
    1536
"""

from __future__ import annotations

import torch

from trainables.models.backbones import build_architecture, compare_keys, embed, get_backbone_info, load_weights, weights_digest
from trainables.models.weights import WeightsError, read_weights


def check_weights(name: str, path: str) -> dict:
    """The report; ``ok`` is True when the file loads whole into the backbone."""
    info = get_backbone_info(name)
    report = {"backbone": name, "file": path, "format": None, "tensors": 0, "missing": [], "unexpected": [],
              "wrong_shape": [], "dropped": [], "dim": None, "sha256": None, "mean": list(info.mean),
              "std": list(info.std), "ok": False, "error": None}
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
