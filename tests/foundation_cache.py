"""Hugging Face hub caches of the named foundation models, built in a test: each repo under
its real name, in the layout its library publishes (timm: config.json + model.safetensors;
transformers: save_pretrained's config.json + model.safetensors, and for hibou the repo's own
code files named by auto_map; open_clip: open_clip_config.json + open_clip_model.safetensors),
holding a tiny model of the same classes (a ViT with SwiGLUPacked and register tokens,
transformers ViT and Dinov2, an open_clip CLIP with a timm image tower).

Each builder also returns the card's embedding computed by hand from that model's own
outputs (``model(x)``, ``last_hidden_state``, ``pooler_output``, ``encode_image``), which
medsweep's encoder must equal. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import timm
import torch
from safetensors.torch import save_file
from timm.layers import SwiGLUPacked

from tests.hubcache import REVISION

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}


def snapshot_folder(cache: str, repo: str) -> str:
    folder = os.path.join(cache, "models--" + repo.replace("/", "--"))
    os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
    with open(os.path.join(folder, "refs", "main"), "w") as f:
        f.write(REVISION)
    snapshot = os.path.join(folder, "snapshots", REVISION)
    os.makedirs(snapshot, exist_ok=True)
    return snapshot


# --- timm repos: (architecture, config model_args, the card's extra create_model arguments) ----
SWIGLU = {"mlp_layer": SwiGLUPacked, "act_layer": torch.nn.SiLU}
TIMM_REPOS = {
    "uni": ("vit_large_patch16_224", {**TINY, "init_values": 1e-5}, {"dynamic_img_size": True}),
    "uni2-h": ("vit_giant_patch14_224", {**TINY, "patch_size": 14, "mlp_ratio": 2.66667 * 2, "no_embed_class": True,
                                         "reg_tokens": 8, "init_values": 1e-5}, {**SWIGLU, "dynamic_img_size": True}),
    "virchow": ("vit_huge_patch14_224", {**TINY, "mlp_ratio": 5.3375, "init_values": 1e-5, "global_pool": ""}, SWIGLU),
    "virchow2": ("vit_huge_patch14_224", {**TINY, "mlp_ratio": 5.3375, "init_values": 1e-5, "global_pool": "",
                                          "reg_tokens": 4}, SWIGLU),
    "h-optimus-0": ("vit_giant_patch14_reg4_dinov2", {**TINY, "img_size": 224}, {"init_values": 1e-5}),
    "h-optimus-1": ("vit_giant_patch14_reg4_dinov2", {**TINY, "img_size": 224}, {"init_values": 1e-5}),
    "prov-gigapath": ("vit_giant_patch14_dinov2", {**TINY, "patch_size": 16, "img_size": 224, "init_values": 1e-5,
                                                  "mlp_ratio": 5.33334}, {}),
    # timm's DINOv2 copies: trained at 518, seen at 224 (position embeddings resampled).
    **{f"dinov2-{s}": (f"vit_{n}_patch14_dinov2", {**TINY, "img_size": 518}, {})
       for s, n in (("s", "small"), ("b", "base"), ("l", "large"), ("g", "giant"))},
}


def timm_repo(cache: str, repo: str, arch: str, model_args: dict, card: dict, seed: int = 0,
              bin_file: bool = False, classifier: bool = False):
    """The repo; the model as the card builds it (at 224)."""
    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=7 if classifier else 0, **model_args, **card)
    snapshot = snapshot_folder(cache, repo)
    with open(os.path.join(snapshot, "config.json"), "w") as f:
        json.dump({"architecture": arch, "num_classes": 0, "model_args": model_args,
                   "pretrained_cfg": {"input_size": [3, 224, 224]}}, f)
    state = model.state_dict()
    if bin_file:
        torch.save(state, os.path.join(snapshot, "pytorch_model.bin"))
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(snapshot, "model.safetensors"))
    if model_args.get("img_size", 224) != 224:  # the card's model at 224: timm's own loader resamples
        file = os.path.join(snapshot, "pytorch_model.bin" if bin_file else "model.safetensors")
        model = timm.create_model(arch, pretrained=True, num_classes=0, **{**model_args, "img_size": 224}, **card,
                                  pretrained_cfg_overlay={"file": file, "hf_hub_id": None, "source": ""})
    return snapshot, model.reset_classifier(0) or model.eval()


def timm_reference(name: str, model) -> Callable:
    if name.startswith("virchow"):  # the card: cat(output[:, 0], output[:, 1 + registers:].mean(1))
        first_patch = 5 if name == "virchow2" else 1
        return lambda x: torch.cat([model(x)[:, 0], model(x)[:, first_patch:].mean(1)], dim=-1)
    return model  # the card: model(image), the class token


# --- transformers repos ----------------------------------------------------------------------
def transformers_repo(cache: str, repo: str, kind: str, image_size: int, seed: int = 0):
    """``kind``: "vit" (Phikon, no pooler), "dinov2" (Phikon-v2, RAD-DINO) or "hibou" (a
    Dinov2 with registers defined by code the repo ships). (snapshot, model)."""
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    shape = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "image_size": image_size}
    if kind == "vit":
        model = ViTModel(ViTConfig(patch_size=16, **shape), add_pooling_layer=False)
    elif kind == "dinov2":
        model = Dinov2Model(Dinov2Config(patch_size=14 if image_size == 518 else 16, **shape))
    else:
        model = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(patch_size=14, num_register_tokens=4, **shape))
    snapshot = snapshot_folder(cache, repo)
    model.save_pretrained(snapshot)
    if kind == "hibou":
        _as_remote_code(snapshot)
        # Under the class's own key names: transformers renames older Dinov2 keys on load for
        # its built-in model types only, and a repo's own class is not one of them.
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(snapshot, "model.safetensors"), metadata={"format": "pt"})
    return snapshot, model.eval()


CONFIGURATION = '''from transformers import Dinov2WithRegistersConfig


class HibouConfig(Dinov2WithRegistersConfig):
    model_type = "hibou"
'''
MODELING = '''from transformers import Dinov2WithRegistersModel

from .configuration_hibou import HibouConfig


class HibouModel(Dinov2WithRegistersModel):
    config_class = HibouConfig
'''


def _as_remote_code(snapshot: str) -> None:
    """The repo's model is built by its own files (auto_map), as hibou's is."""
    for filename, text in (("configuration_hibou.py", CONFIGURATION), ("modeling_hibou.py", MODELING)):
        with open(os.path.join(snapshot, filename), "w") as f:
            f.write(text)
    path = os.path.join(snapshot, "config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(model_type="hibou", architectures=["HibouModel"],
                  auto_map={"AutoConfig": "configuration_hibou.HibouConfig", "AutoModel": "modeling_hibou.HibouModel"})
    with open(path, "w") as f:
        json.dump(config, f)


TRANSFORMERS_REPOS = {"phikon": ("vit", 224), "phikon-v2": ("dinov2", 224), "rad-dino": ("dinov2", 518),
                      "hibou-b": ("hibou", 224)}


def transformers_reference(name: str, model) -> Callable:
    if name in ("rad-dino", "hibou-b"):  # the cards: outputs.pooler_output
        return lambda x: model(pixel_values=x).pooler_output
    return lambda x: model(pixel_values=x).last_hidden_state[:, 0, :]  # outputs.last_hidden_state[:, 0, :]


# --- open_clip repos ---------------------------------------------------------------------------
OPEN_CLIP_CONFIG = {
    "model_cfg": {"embed_dim": 16,
                  "vision_cfg": {"timm_model_name": "test_vit", "timm_model_pretrained": False, "timm_pool": "",
                                 "timm_proj": "linear", "image_size": 224},
                  "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}},
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}


def open_clip_repo(cache: str, repo: str, seed: int = 0, extra: dict | None = None):
    """An open_clip repo (a CLIP whose image tower is timm's, as BiomedCLIP's); (snapshot, model)."""
    import open_clip

    snapshot = snapshot_folder(cache, repo)
    with open(os.path.join(snapshot, "open_clip_config.json"), "w") as f:
        json.dump(OPEN_CLIP_CONFIG, f)
    torch.manual_seed(seed)
    model = open_clip.create_model("local-dir:" + snapshot, load_weights=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file({**state, **(extra or {})}, os.path.join(snapshot, "open_clip_model.safetensors"))
    return snapshot, model.eval()


def make_foundation_repo(cache: str, name: str, seed: int = 0) -> tuple[str, Callable]:
    """``name``'s repo in ``cache``; (snapshot folder, the card's embedding computed by hand)."""
    from trainables.models.backbones import get_backbone_info

    repo = get_backbone_info(name).repo
    if name in TIMM_REPOS:
        arch, model_args, card = TIMM_REPOS[name]
        snapshot, model = timm_repo(cache, repo, arch, model_args, card, seed)
        return snapshot, timm_reference(name, model)
    if name in TRANSFORMERS_REPOS:
        kind, size = TRANSFORMERS_REPOS[name]
        snapshot, model = transformers_repo(cache, repo, kind, size, seed)
        return snapshot, transformers_reference(name, model)
    if name == "biomedclip":
        snapshot, model = open_clip_repo(cache, repo, seed)
        return snapshot, lambda x: model.encode_image(x, normalize=True)
    raise KeyError(f"no fixture for {name!r}")
