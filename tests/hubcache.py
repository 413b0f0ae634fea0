"""A Hugging Face Hub cache built in a test, in the hub's own layout, from a tiny timm model.

``models--ORG--REPO/refs/main`` holds the revision; ``snapshots/<rev>/`` the files timm's
``save_for_hf`` writes (config.json with the architecture and pretrained_cfg, and
model.safetensors or pytorch_model.bin). Nothing is downloaded.
"""

from __future__ import annotations

import os

import timm
import torch
from timm.models import save_for_hf

REVISION = "0123456789abcdef0123456789abcdef01234567"


def make_hub_cache(cache: str, repo: str, arch: str = "test_vit", seed: int = 1, safetensors: bool = True,
                   pretrained_cfg: dict | None = None) -> tuple[str, torch.nn.Module]:
    """Write ``repo`` (ORG/REPO) into the hub cache folder ``cache``; (snapshot folder, model)."""
    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=10)
    if pretrained_cfg:
        model.pretrained_cfg = {**model.pretrained_cfg, **pretrained_cfg}
    folder = os.path.join(cache, "models--" + repo.replace("/", "--"))
    snapshot = os.path.join(folder, "snapshots", REVISION)
    os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
    with open(os.path.join(folder, "refs", "main"), "w") as f:
        f.write(REVISION)
    save_for_hf(model, snapshot, safe_serialization=safetensors)
    return snapshot, model
