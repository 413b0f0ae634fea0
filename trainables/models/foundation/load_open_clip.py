"""CLIP-style foundation models open_clip builds (BiomedCLIP): the image tower alone, from
the repo's open_clip_config.json, its ``visual.*`` weights loaded strictly.

Only the image tower embeds, so the text tower is never built: BiomedCLIP's is a Hugging Face
BERT that open_clip would fetch from a second repo. Every other tensor of the file must be
the text tower's (or the logit scale), or the file is refused naming it.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.models.foundation import recipes
from trainables.models.backbones import compare_keys
from trainables.models.hub import read_config
from trainables.models.foundation.loading import FoundationError, beside, key_problem, read_tensors

VISUAL = "visual."
# What CLIP checkpoints hold besides the image tower: open_clip's own text tower, an HF text
# tower, the contrastive temperature (and SigLIP's bias).
TEXT_SIDE = ("text.", "transformer.", "token_embedding.", "positional_embedding", "ln_final.", "text_projection",
             "logit_scale", "logit_bias", "attn_mask")


class ImageTower(nn.Module):
    """A CLIP model's image tower; its output the normalised image embedding."""

    def __init__(self, visual: nn.Module, width: int):
        super().__init__()
        self.visual, self.num_features = visual, width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return recipes.normalised(self.visual(images))


def build_open_clip(info, weights_path: str) -> ImageTower:
    from open_clip.model import _build_vision_tower  # the builder open_clip's CLIP itself uses

    config_path = beside(weights_path, "open_clip_config.json")
    try:
        model_cfg = read_config(config_path)["model_cfg"]
        embed_dim, vision_cfg = model_cfg["embed_dim"], model_cfg["vision_cfg"]
    except (KeyError, TypeError) as exc:
        raise FoundationError(f"{config_path}: expected model_cfg.embed_dim and model_cfg.vision_cfg "
                              f"({type(exc).__name__}: {exc})") from None
    visual = _build_vision_tower(embed_dim, vision_cfg, quick_gelu=bool(model_cfg.get("quick_gelu", False)))
    state = read_tensors(weights_path)
    tower = {k[len(VISUAL):]: v for k, v in state.items() if k.startswith(VISUAL)}
    stray = [k for k in state if not k.startswith(VISUAL) and not k.startswith(TEXT_SIDE)]
    missing, unexpected, wrong = compare_keys(visual, tower)
    problem = key_problem(f"{info.name}'s image tower", weights_path, missing, unexpected + stray, wrong)
    if problem:
        raise FoundationError(problem)
    visual.load_state_dict(tower, strict=True)
    return ImageTower(visual.eval(), embed_dim)
