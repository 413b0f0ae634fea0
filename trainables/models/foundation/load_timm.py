"""Foundation models timm builds (UNI, UNI2-h, Virchow, Virchow2, H-optimus, Prov-GigaPath,
DINOv2): architecture arguments from the repo's config.json ``model_args`` (they describe
the weights), the card's arguments where the config is silent, and the card's layer classes
always (a JSON config cannot hold a class: Virchow's ``mlp_layer=SwiGLUPacked,
act_layer=SiLU``). Built at the card's input size, weights loaded strictly.
"""

from __future__ import annotations

import timm
import torch
from timm.layers import SwiGLUPacked
from torch import nn

from trainables.models.foundation import recipes
from trainables.models.backbones import compare_keys, resample_pos_embed
from trainables.models.hub import read_config
from trainables.models.foundation.loading import FoundationError, beside, key_problem, read_tensors

# The layer classes cards pass (and some repos' config.json name as dotted strings): the only
# classes an entry or a config may name.
LAYER_CLASSES = {"SwiGLUPacked": SwiGLUPacked, "SiLU": nn.SiLU,
                 "timm.layers.SwiGLUPacked": SwiGLUPacked, "torch.nn.SiLU": nn.SiLU}
LAYER_ARGS = ("mlp_layer", "act_layer")


class TimmEncoder(nn.Module):
    """A timm ViT whose output is its card's embedding of the final-norm'd tokens."""

    def __init__(self, model: nn.Module, recipe: str):
        super().__init__()
        self.model, self.recipe = model, recipe
        self.num_features = recipes.width(recipe, model.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.model.forward_features(images)  # (B, prefix + patches, D), final norm applied
        if self.recipe == "cls":
            return recipes.class_token(tokens)
        return recipes.class_and_mean_patch(tokens, self.model.num_prefix_tokens)


def creation_arguments(info, config: dict) -> dict:
    """timm.create_model arguments of ``info`` given its repo's config.json."""
    card = dict(info.timm_kwargs)
    layers = {k: card.pop(k) for k in LAYER_ARGS if k in card}
    unknown = [v for v in layers.values() if v not in LAYER_CLASSES]
    if unknown:
        raise FoundationError(f"{info.name}: layer classes {unknown}: expected one of {', '.join(LAYER_CLASSES)}")
    configured = dict(config.get("model_args") or {})
    for k in LAYER_ARGS:  # a config's dotted class name, as the class
        if isinstance(configured.get(k), str) and configured[k] in LAYER_CLASSES:
            configured[k] = LAYER_CLASSES[configured[k]]
    args = {**card, **configured, **{k: LAYER_CLASSES[v] for k, v in layers.items()}}
    # Ours: no classifier, the card's input size, weights loaded below (never fetched by timm).
    args.update(num_classes=0, img_size=info.input_size, pretrained=False)
    return args


def build_timm(info, weights_path: str, seed: int = 0) -> TimmEncoder:
    config_path = beside(weights_path, "config.json")
    config = read_config(config_path)
    arch = config.get("architecture")
    if arch != info.timm_name:
        raise FoundationError(f"{config_path}: architecture {arch!r}, but {info.name}'s card builds {info.timm_name!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(info.timm_name, **creation_arguments(info, config))
    state = read_tensors(weights_path)
    expected = model.state_dict()
    # A classifier the file carries: the entry is built without one (its repo may keep one).
    head = (model.pretrained_cfg or {}).get("classifier") or "head"
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(head + ".")}
    resample_pos_embed(model, state)  # trained at another size (DINOv2 at 518): the card's grid
    missing, unexpected, wrong = compare_keys(model, state)
    problem = key_problem(f"{info.name} ({info.timm_name})", weights_path, missing, unexpected, wrong)
    if problem:
        raise FoundationError(problem)
    model.load_state_dict(state, strict=True)
    return TimmEncoder(model.eval(), info.embedding)
