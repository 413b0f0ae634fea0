"""Parameters and FLOPs per image of a named foundation model, counted on PyTorch's meta
device (no memory, no weights, well under a second even for a ViT-g): what ``sweep plan
--estimate`` scales a measured reference by instead of timing a 1.1B-parameter model.

Models timm builds are counted as their entry creates them; the others as the timm ViT of
the same shape (Phikon: ViT-B/16; Phikon-v2: ViT-L/16; hibou-B: ViT-B/14 with 4 registers;
RAD-DINO: ViT-B/14 at 518; BiomedCLIP's image tower: ViT-B/16; CONCH's: ViT-B/16 at 448).

Example::

    >>> params, flops = model_size("uni2-h")
    >>> round(params / 1e6), round(flops / 1e9)
    (681, 371)
"""

from __future__ import annotations

import functools

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

SAME_SHAPE = {
    "phikon": ("vit_base_patch16_224", {}),
    "phikon-v2": ("vit_large_patch16_224", {}),
    "hibou-b": ("vit_base_patch14_reg4_dinov2", {}),
    "rad-dino": ("vit_base_patch14_dinov2", {}),
    "biomedclip": ("vit_base_patch16_224", {}),
    "conch": ("vit_base_patch16_224", {}),
}


@functools.lru_cache(maxsize=None)
def model_size(name: str) -> tuple[int, float]:
    """(parameters, forward FLOPs per image at the card's input size) of foundation model ``name``."""
    from trainables.models.backbones import get_backbone_info
    from trainables.models.foundation.load_timm import creation_arguments

    info = get_backbone_info(name)
    if name in SAME_SHAPE:
        arch, args = SAME_SHAPE[name]
        args = {**args, "num_classes": 0, "img_size": info.input_size, "pretrained": False}
    else:
        arch, args = info.timm_name, creation_arguments(info, {})
    with torch.device("meta"):
        model = timm.create_model(arch, **args)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model.forward_features(torch.zeros(1, 3, info.input_size, info.input_size))
    return sum(p.numel() for p in model.parameters()), float(counter.get_total_flops())
