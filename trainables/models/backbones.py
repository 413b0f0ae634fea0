"""Backbone registry: name -> timm architecture, its preprocessing and how it embeds an image.

Each backbone carries its own mean/std (nothing else in the project hard-codes ImageNet
constants). An unknown name raises an error listing the valid ones.

Example::

    >>> model, info = create_backbone("test_resnet", img_size=32)
    >>> embed(model, info, torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 96])
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from typing import Optional

# timm is imported where a model is built or an unregistered name is looked up, not here:
# with torchvision and torch._dynamo it costs 2 s of CPU, which every `sweep` command (the
# CLI reads this registry) and a sweep's driver paid before doing anything, for names alone.
import torch
from torch import nn

from trainables import storage
from trainables.errors import UserError, did_you_mean
from trainables.registry import Registry
from trainables.models.hub import hub_config, hub_weight_file, is_hub_backbone
from trainables.models.weights import ConvertedWeights, read_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# OpenAI CLIP's normalisation (BiomedCLIP, CONCH): timm.data.constants' OPENAI_CLIP_MEAN/STD,
# written here so that the catalog does not import timm (tests/trainables/models/test_backbones.py
# checks all four against timm's).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class BackboneError(UserError):
    """A backbone that cannot be built or loaded; the message names it and what was expected."""


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    timm_name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # "pool": the model's pooled features; "dino_last4": DINO's linear-eval feature, the
    # final-norm'd CLS token of each of the last 4 blocks concatenated (384 * 4 = 1536).
    embedding: str = "pool"
    # ViTs take the dataset's image size at creation (position embeddings resampled).
    takes_img_size: bool = False
    # Published weight files this backbone is loaded from; empty: random init is the point.
    weight_files: tuple[str, ...] = ()
    timm_kwargs: tuple = field(default_factory=tuple)  # extra create_model kwargs, as pairs
    description: str = ""
    # A Hugging Face Hub backbone (trainables/models/hub.py): weights resolved in the hub cache,
    # loaded by timm's pretrained loader; input_size is its pretrained_cfg's (shown, not imposed:
    # every backbone of a sweep sees the dataset's images at the dataset's size).
    hub: bool = False
    input_size: Optional[int] = None
    # Where the paper's file is published (`sweep weights fetch` saves it as weight_files[0])
    # and its size as published, in MB (10^6 bytes; shown before a download, not checked: the
    # check is that the file loads whole, and its sha256 is recorded).
    url: str = ""
    size_mb: float = 0.0
    # A named foundation model (trainables/models/foundation/catalog.py): its hub repo, the
    # library that builds it, its card's licence and gating, its embedding's width, whether
    # its loader must run code the repo ships (refused unless the user trusts it by name), and
    # the card's resize before the centre crop to ``input_size`` (which such a model imposes:
    # its images are resized to what it was trained on, whatever the dataset's own size).
    repo: str = ""
    loader: str = "timm"
    licence: str = ""
    gated: bool = False
    dim: Optional[int] = None
    resize_size: Optional[int] = None
    remote_code: bool = False
    card: str = ""  # the model card its recipe and preprocessing were taken from

    @property
    def needs_weights(self) -> bool:
        return bool(self.weight_files) or self.hub or self.foundation

    @property
    def foundation(self) -> bool:
        return bool(self.repo)

    @property
    def imposed_size(self) -> Optional[int]:
        """The input size a foundation model's card prescribes (None: the dataset's size)."""
        return self.input_size if self.foundation else None


_REGISTRY: Registry[BackboneInfo] = Registry("backbone", BackboneError)


# "pool" and "dino_last4" are computed from a timm model here; the others are foundation
# models' recipes (trainables/models/foundation/recipes.py), computed inside their encoders.
EMBEDDINGS = ("pool", "dino_last4", "cls", "cls_mean_patch", "pooler", "image_tower")
LOADERS = ("timm", "transformers", "open_clip", "conch")


def register_backbone(info: BackboneInfo) -> BackboneInfo:
    if info.embedding not in EMBEDDINGS:
        raise BackboneError(f"backbone {info.name!r}: unknown embedding {info.embedding!r}; expected one of {', '.join(EMBEDDINGS)}")
    if info.loader not in LOADERS:
        raise BackboneError(f"backbone {info.name!r}: unknown loader {info.loader!r}; expected one of {', '.join(LOADERS)}")
    if info.foundation and not (info.dim and info.input_size and info.licence and info.card):
        raise BackboneError(f"foundation model {info.name!r}: its entry needs dim, input_size, licence and card")
    return _REGISTRY.add(info.name, info)


def backbone_names() -> list[str]:
    return _REGISTRY.names()


def hub_backbone_info(name: str, weights_path: Optional[str] = None) -> BackboneInfo:
    arch, cfg, model_args = hub_config(name, weights_path)
    size = cfg.get("input_size")
    return BackboneInfo(
        name=name,
        timm_name=arch,
        mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
        std=tuple(cfg.get("std") or IMAGENET_STD),
        takes_img_size=True,
        timm_kwargs=tuple(sorted(model_args.items())),
        hub=True,
        input_size=int(size[-1]) if size else None,
        description=f"timm {arch} from the Hugging Face Hub",
    )


def get_backbone_info(name: str, weights_path: Optional[str] = None) -> BackboneInfo:
    """A registered backbone; a hub one (``hf-hub:ORG/REPO``, timm tag ``ARCH.TAG``; its config
    read beside ``weights_path`` where given); else any timm architecture by name
    (``convnext_tiny``...): random init, or ``--weights``'s file."""
    if name in _REGISTRY.names():
        return _REGISTRY.get(name)
    if is_hub_backbone(name):
        return hub_backbone_info(name, weights_path)
    import timm
    from timm.models import get_pretrained_cfg

    if "." in name and timm.is_model(name.split(".", 1)[0]):
        # timm.is_model takes any tag after a known architecture; its pretrained cfg then raises.
        arch, tag = name.split(".", 1)
        tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{arch}.*")]
        raise BackboneError(f"backbone {name!r}: timm has no pretrained tag {tag!r} for {arch}"
                            f"{did_you_mean(tag, tags)}; its tags: {', '.join(tags) or 'none'}")
    if timm.is_model(name):
        cfg = get_pretrained_cfg(name)
        return BackboneInfo(
            name=name,
            timm_name=name,
            mean=tuple(cfg.mean) if cfg else IMAGENET_MEAN,
            std=tuple(cfg.std) if cfg else IMAGENET_STD,
            takes_img_size=True,  # tried at creation: architectures without it are built without
            description=f"timm {name}",
        )
    raise BackboneError(f"unknown backbone {name!r}{did_you_mean(name, _REGISTRY.names() + timm.list_models())}; "
                        f"valid backbones: {', '.join(_REGISTRY.names())}, or any timm architecture name")


def weights_digest(name: str, weights_path: Optional[str] = None, seed: int = 0) -> str:
    """What makes this backbone's parameters what they are: the file's sha256, or the init seed
    (with the architecture's own init options, which change the random network too)."""
    if weights_path is None:
        options = "".join(f"-{k}={v}" for k, v in get_backbone_info(name).timm_kwargs)
        return f"init-seed{seed}{options}"
    return storage.file_sha256(weights_path)


def compare_keys(model: nn.Module, state: dict) -> tuple[list, list, list]:
    """(missing, unexpected, of another shape) keys of ``state`` against ``model``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    return missing, unexpected, wrong_shape


def resample_pos_embed(model: nn.Module, state: dict) -> None:
    """``state``'s position embeddings resampled to ``model``'s patch grid where they were trained
    at another size (ViT-S/8 on 96x96 PatchCam, DINOv2's 518 seen at 224), in place. A ViT
    whose class and register tokens carry no position embedding (``no_embed_class``) has no
    prefix in the grid."""
    pos = getattr(model, "pos_embed", None)
    if pos is None or "pos_embed" not in state or state["pos_embed"].shape == pos.shape:
        return
    from timm.layers import resample_abs_pos_embed

    prefix = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
    state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], new_size=list(model.patch_embed.grid_size),
                                                num_prefix_tokens=prefix)


def load_weights(model: nn.Module, info: BackboneInfo, path: str) -> ConvertedWeights:
    """Detect the file's layout, convert it, load it: nothing may be missing (the backbone has
    no classifier), nothing unexpected, no shape different; else an error naming the keys."""
    converted = read_weights(path)
    state = converted.state_dict
    resample_pos_embed(model, state)
    missing, unexpected, wrong_shape = compare_keys(model, state)
    if missing or unexpected or wrong_shape:
        raise BackboneError(
            f"{path}: does not fit {info.name!r} ({info.timm_name}, read as {converted.format}): "
            f"{len(missing)} missing {missing[:8]}, {len(unexpected)} unexpected {unexpected[:8]}, "
            f"{len(wrong_shape)} of another shape {wrong_shape[:8]}"
        )
    model.load_state_dict(state, strict=True)
    return converted


@functools.lru_cache(maxsize=32)
def _normalisation_of(path: str, mtime_ns: int):
    return read_weights(path).normalisation


def resolve_info(name: str, weights_path: Optional[str] = None) -> BackboneInfo:
    """The backbone's info with the preprocessing its weights were trained with (the
    TF-converted SimCLR file expects [0, 1] inputs, no mean/std)."""
    info = get_backbone_info(name, weights_path)
    if weights_path is None or info.hub or info.foundation:  # theirs: the pretrained_cfg, the card
        return info
    normalisation = _normalisation_of(weights_path, os.stat(weights_path).st_mtime_ns)
    if normalisation is None:
        return info
    return dataclasses.replace(info, mean=normalisation[0], std=normalisation[1])


def build_architecture(info: BackboneInfo, img_size: Optional[int] = None, seed: int = 0, **create) -> nn.Module:
    """The backbone's timm architecture without classifier, initialised from ``seed``;
    ``create``: more ``timm.create_model`` arguments (a hub model's pretrained_cfg)."""
    import timm

    # The architecture's own arguments (a hub repo's model_args), ours winning: no classifier.
    kwargs = {**dict(info.timm_kwargs), "num_classes": 0, "pretrained": False, **create}
    if info.takes_img_size and img_size is not None:
        kwargs["img_size"] = img_size
    # Seeded: a "random" backbone must be the same random backbone in every trial and cache key.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return timm.create_model(info.timm_name, **kwargs)
        except TypeError:
            if "img_size" not in kwargs:
                raise
            kwargs.pop("img_size")  # a CNN: any input size goes
            torch.manual_seed(seed)
            return timm.create_model(info.timm_name, **kwargs)


def _create_hub_model(info: BackboneInfo, weights_path: str, img_size: Optional[int], seed: int) -> nn.Module:
    """A hub backbone with its weights loaded from ``weights_path`` by timm's own loader."""
    _, pretrained_cfg, _ = hub_config(info.name, weights_path)
    # source "" and file set: timm loads this file (the one the digest names), never the hub.
    cfg = {**pretrained_cfg, "source": "", "file": weights_path, "hf_hub_id": None, "url": ""}
    return build_architecture(info, img_size, seed, pretrained=True, pretrained_cfg=cfg)


WEIGHTS_ENV = "MEDSWEEP_WEIGHTS"  # a folder holding the published files under their own names


def resolve_weights(name: str, weights: Optional[dict] = None) -> Optional[str]:
    """``--weights NAME=PATH`` first, else a hub backbone's file in the Hugging Face cache
    (fetched first when online), else the first published file name of the backbone found in
    ``$MEDSWEEP_WEIGHTS``; absolute, or None."""
    path = (weights or {}).get(name)
    info = get_backbone_info(name)
    if not path and info.foundation:
        from trainables.models.foundation.loading import fetch_model_files

        path = fetch_model_files(info)
    if not path and info.hub:
        path = hub_weight_file(name)
    if not path and os.environ.get(WEIGHTS_ENV):
        folder = os.environ[WEIGHTS_ENV]
        found = [os.path.join(folder, f) for f in get_backbone_info(name).weight_files]
        path = next((f for f in found if os.path.isfile(f)), None)
    return os.path.abspath(path) if path else None


def create_backbone(
    name: str, img_size: Optional[int] = None, weights_path: Optional[str] = None, seed: int = 0,
    trust_remote_code: bool = False,
) -> tuple[nn.Module, BackboneInfo]:
    """Build a backbone without classifier (``num_classes=0``), seeded, weights loaded if given.
    A foundation model is built at its card's input size (``img_size`` is the dataset's) by its
    loader, which runs code its repo ships only with ``trust_remote_code``."""
    info = get_backbone_info(name, weights_path)
    if info.needs_weights and weights_path is None:
        where = ("its files in the Hugging Face cache" if info.hub or info.foundation
                 else "published file: " + ", ".join(info.weight_files))
        raise BackboneError(f"backbone {name!r} needs its weights: give --weights {name}=PATH ({where})")
    if info.foundation:
        from trainables.models.foundation.loading import build_foundation

        return build_foundation(info, weights_path, seed, trust_remote_code), info
    if info.hub:
        return _create_hub_model(info, weights_path, img_size, seed), info
    model = build_architecture(info, img_size, seed)
    if weights_path is not None:
        load_weights(model, info, weights_path)
        info = resolve_info(name, weights_path)
    return model, info


def embedding_dim(model: nn.Module, info: BackboneInfo) -> int:
    return model.num_features * 4 if info.embedding == "dino_last4" else model.num_features


def embed(model: nn.Module, info: BackboneInfo, images: torch.Tensor) -> torch.Tensor:
    """Normalised images (B, 3, H, W) -> the paper's embedding (B, D); a foundation model's
    encoder returns its card's embedding itself."""
    if info.embedding == "dino_last4":
        out = model.forward_intermediates(
            images,
            indices=4,
            norm=True,
            return_prefix_tokens=True,
            intermediates_only=True,
            output_fmt="NLC",
        )
        return torch.cat([prefix[:, 0] for _, prefix in out], dim=-1)
    return model(images)


# --- tiny random-init backbones for the demo and tests (timm's own test models) -------------
for _name, _desc in (
    ("test_resnet", "timm test_resnet: a 0.4M-parameter ResNet, 96-d features"),
    ("test_vit", "timm test_vit: a 0.3M-parameter ViT, 64-d features"),
    ("test_convnext", "timm test_convnext: a 0.2M-parameter ConvNeXt, 64-d features"),
):
    register_backbone(
        BackboneInfo(
            name=_name,
            timm_name=_name,
            mean=(0.5, 0.5, 0.5),  # timm's pretrained_cfg for these models
            std=(0.5, 0.5, 0.5),
            takes_img_size=_name == "test_vit",
            description=_desc,
        )
    )

# --- the paper's five (protocol.md, notes/formats.md) ----------------------------------------
register_backbone(
    BackboneInfo(
        name="random",
        timm_name="resnet50",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        # The paper's "Kaiming randomly initialized ResNet-50": Kaiming-normal convolutions,
        # BatchNorm at 1 / 0, as torchvision's resnet50(weights=None). timm's default
        # zero-initialises each bottleneck's last BN (a training trick): frozen, that network
        # would be the stem and the shortcuts alone.
        timm_kwargs=(("zero_init_last", False),),
        description="ResNet-50, Kaiming init (seeded, no zeroed residual branch): the paper's lower bound",
    )
)
register_backbone(
    BackboneInfo(
        name="supervised",
        timm_name="resnet50",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        weight_files=("resnet50-0676ba61.pth",),
        url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
        size_mb=102.5,
        description="ResNet-50, supervised ImageNet (torchvision IMAGENET1K_V1)",
    )
)
register_backbone(
    BackboneInfo(
        name="swav",
        timm_name="resnet50",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        # The VISSL model zoo names SwAV's and SimCLR's files alike (model_final_checkpoint_
        # phase799.torch): under that name neither is looked up in $MEDSWEEP_WEIGHTS (one would
        # be taken for the other); `sweep weights fetch` saves each under its own name.
        weight_files=("swav_in1k_rn50_800ep_phase799.torch", "swav_800ep_pretrain.pth.tar"),
        url="https://dl.fbaipublicfiles.com/vissl/model_zoo/swav_in1k_rn50_800ep_swav_8node_resnet_27_07_20.a0a6b676/model_final_checkpoint_phase799.torch",
        size_mb=214.0,
        description="ResNet-50, SwAV (VISSL model zoo)",
    )
)
register_backbone(
    BackboneInfo(
        name="simclr",
        timm_name="resnet50",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        weight_files=("simclr_rn50_800ep_phase799.torch", "resnet50-1x.pth"),
        url="https://dl.fbaipublicfiles.com/vissl/model_zoo/simclr_rn50_800ep_simclr_8node_resnet_16_07_20.7e8feed1/model_final_checkpoint_phase799.torch",
        size_mb=214.0,
        description="ResNet-50, SimCLR (VISSL model zoo)",
    )
)
register_backbone(
    BackboneInfo(
        name="dino",
        timm_name="vit_small_patch8_224",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        embedding="dino_last4",
        takes_img_size=True,
        weight_files=("dino_deitsmall8_pretrain.pth",),
        url="https://dl.fbaipublicfiles.com/dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth",
        size_mb=86.7,
        description="ViT-S/8, DINO (official weights); 1536-d last-4 CLS embedding",
    )
)

# --- named foundation models (their cards' recipes) --------------------------------------------
from trainables.models.foundation import catalog as _catalog  # noqa: E402,F401  (registers them)
