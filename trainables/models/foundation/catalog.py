"""The named foundation models: one registry entry each, as the paper's backbones are.

Each entry holds what its model card says: the hub repo, the library that builds it, the
creation arguments the card adds to the repo's config, the embedding recipe
(trainables/models/foundation/recipes.py), the preprocessing (mean, std, resize then centre
crop), the licence, whether the repo is gated, and the embedding's width. The comment above
each names the card (https://huggingface.co/REPO) and quotes the lines the entry follows.

Every model is seen at its card's input size: the dataset's images are resized to the
card's ``resize_size`` (square, as medsweep resizes every dataset) and centre-cropped to
``input_size``; training views crop at random there and keep the dataset's flips and
rotations (trainables/data/transforms.py).

``sweep grids`` lists them with their licences; ``sweep weights check NAME`` loads one.

Example::

    >>> get_backbone_info("virchow2").embedding, get_backbone_info("virchow2").dim
    ('cls_mean_patch', 2560)
"""

from __future__ import annotations

from trainables.models.backbones import (BackboneInfo, CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD,  # noqa: F401
                                         get_backbone_info, register_backbone)

CC_BY_NC_ND = "CC-BY-NC-ND-4.0 (non-commercial, no derivatives)"
APACHE = "Apache-2.0"


def _foundation(**fields) -> BackboneInfo:
    fields.setdefault("mean", IMAGENET_MEAN)
    fields.setdefault("std", IMAGENET_STD)
    fields.setdefault("input_size", 224)
    fields.setdefault("resize_size", fields["input_size"])
    fields.setdefault("card", f"https://huggingface.co/{fields['repo']}")
    fields["timm_kwargs"] = tuple(sorted(fields.pop("create", {}).items()))
    return register_backbone(BackboneInfo(takes_img_size=True, **fields))


# --- pathology ---------------------------------------------------------------------------------
# UNI: timm.create_model("hf-hub:MahmoodLab/uni", pretrained=True, init_values=1e-5,
# dynamic_img_size=True); transforms Resize(224), ToTensor, Normalize(ImageNet); the feature
# is model(image), 1 x 1024 (timm's class-token pooling).
_foundation(name="uni", repo="MahmoodLab/UNI", timm_name="vit_large_patch16_224", embedding="cls", dim=1024,
            create={"init_values": 1e-5, "dynamic_img_size": True}, licence=CC_BY_NC_ND, gated=True,
            description="UNI (Mahmood Lab): ViT-L/16, pathology, DINOv2 on 100M tiles; 1024-d class token")
# UNI2-h: the card's timm_kwargs = {img_size 224, patch_size 14, depth 24, num_heads 24, init_values
# 1e-5, embed_dim 1536, mlp_ratio 2.66667*2, num_classes 0, no_embed_class True, mlp_layer
# SwiGLUPacked, act_layer SiLU, reg_tokens 8, dynamic_img_size True} on
# hf-hub:MahmoodLab/UNI2-h; the same transform as UNI; model(image), 1 x 1536.
_foundation(name="uni2-h", repo="MahmoodLab/UNI2-h", timm_name="vit_giant_patch14_224", embedding="cls", dim=1536,
            create={"patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5, "embed_dim": 1536,
                    "mlp_ratio": 2.66667 * 2, "no_embed_class": True, "mlp_layer": "SwiGLUPacked",
                    "act_layer": "SiLU", "reg_tokens": 8, "dynamic_img_size": True},
            licence=CC_BY_NC_ND, gated=True,
            description="UNI2-h (Mahmood Lab): ViT-H/14, 8 registers, pathology; 1536-d class token")
# Virchow: timm.create_model("hf-hub:paige-ai/Virchow", pretrained=True, mlp_layer=SwiGLUPacked,
# act_layer=torch.nn.SiLU); transforms from resolve_data_config (224, ImageNet mean/std);
# output 1 x 257 x 1280; embedding = cat(output[:, 0], output[:, 1:].mean(1)), 1 x 2560.
_foundation(name="virchow", repo="paige-ai/Virchow", timm_name="vit_huge_patch14_224", embedding="cls_mean_patch",
            dim=2560, create={"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU", "init_values": 1e-5,
                              "mlp_ratio": 5.3375, "dynamic_img_size": True},
            licence=APACHE, gated=True,
            description="Virchow (Paige): ViT-H/14, pathology; class token + mean patch token, 2560-d")
# Virchow2: as Virchow, with 4 register tokens: output 1 x 261 x 1280, class_token = output[:, 0],
# patch_tokens = output[:, 5:] (tokens 1-4 are registers); embedding 1 x 2560.
_foundation(name="virchow2", repo="paige-ai/Virchow2", timm_name="vit_huge_patch14_224", embedding="cls_mean_patch",
            dim=2560, create={"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU", "init_values": 1e-5,
                              "mlp_ratio": 5.3375, "reg_tokens": 4, "dynamic_img_size": True},
            licence=CC_BY_NC_ND, gated=True,
            description="Virchow2 (Paige): ViT-H/14, 4 registers, pathology; class + mean patch token, 2560-d")
# H-optimus-0: timm.create_model("hf-hub:bioptimus/H-optimus-0", pretrained=True, init_values=1e-5,
# dynamic_img_size=False); Normalize(mean=(0.707223, 0.578729, 0.703617), std=(0.211883,
# 0.230117, 0.177517)) at 224; features = model(x), 1 x 1536.
HOPTIMUS_MEAN, HOPTIMUS_STD = (0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517)
_foundation(name="h-optimus-0", repo="bioptimus/H-optimus-0", timm_name="vit_giant_patch14_reg4_dinov2",
            embedding="cls", dim=1536, mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD,
            create={"init_values": 1e-5, "dynamic_img_size": False}, licence=APACHE, gated=True,
            description="H-optimus-0 (Bioptimus): ViT-g/14, 4 registers, pathology; 1536-d class token")
# H-optimus-1: timm.create_model("hf-hub:bioptimus/H-optimus-1", pretrained=True, init_values=1e-5,
# dynamic_img_size=False), the same normalisation as H-optimus-0, Resize(224), CenterCrop(224).
_foundation(name="h-optimus-1", repo="bioptimus/H-optimus-1", timm_name="vit_giant_patch14_reg4_dinov2",
            embedding="cls", dim=1536, mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD,
            create={"init_values": 1e-5, "dynamic_img_size": False},
            licence="Bioptimus licence (non-commercial)", gated=True,
            description="H-optimus-1 (Bioptimus): ViT-g/14, 4 registers, pathology; 1536-d class token")
# Prov-GigaPath tile encoder: timm.create_model("hf_hub:prov-gigapath/prov-gigapath",
# pretrained=True); transforms Resize(256, bicubic), CenterCrop(224), Normalize(ImageNet);
# tile_encoder(sample), 1 x 1536.
_foundation(name="prov-gigapath", repo="prov-gigapath/prov-gigapath", timm_name="vit_giant_patch14_dinov2",
            embedding="cls", dim=1536, resize_size=256, licence=APACHE, gated=True,
            # its config.json's model_args (which win where given): a ViT-g with 16-pixel patches
            create={"patch_size": 16, "mlp_ratio": 5.33334, "init_values": 1e-5},
            description="Prov-GigaPath tile encoder (Providence, Microsoft): ViT-g/14, pathology; 1536-d")
# Phikon: ViTModel.from_pretrained("owkin/phikon", add_pooling_layer=False);
# AutoImageProcessor (224, ImageNet mean/std); features = outputs.last_hidden_state[:, 0, :], 768.
_foundation(name="phikon", repo="owkin/phikon", loader="transformers", timm_name="ViTModel", embedding="cls",
            dim=768, create={"add_pooling_layer": False}, licence="Owkin non-commercial licence", gated=False,
            description="Phikon (Owkin): ViT-B/16 iBOT, pathology; 768-d class token")
# Phikon-v2: AutoModel.from_pretrained("owkin/phikon-v2") (a Dinov2Model); AutoImageProcessor
# (224, ImageNet mean/std); features = outputs.last_hidden_state[:, 0, :], 1 x 1024.
_foundation(name="phikon-v2", repo="owkin/phikon-v2", loader="transformers", timm_name="Dinov2Model",
            embedding="cls", dim=1024, licence="Owkin non-commercial licence", gated=False,
            description="Phikon-v2 (Owkin): ViT-L/16 DINOv2, pathology; 1024-d class token")
# hibou-B: AutoModel.from_pretrained("histai/hibou-b", trust_remote_code=True); its processor's
# mean (0.7068, 0.5755, 0.722), std (0.195, 0.2316, 0.1816) at 224; outputs.pooler_output, 768.
_foundation(name="hibou-b", repo="histai/hibou-b", loader="transformers", timm_name="AutoModel (remote code)",
            embedding="pooler", dim=768, remote_code=True, mean=(0.7068, 0.5755, 0.722),
            std=(0.195, 0.2316, 0.1816), licence=APACHE, gated=False,
            description="hibou-B (HistAI): ViT-B/14 DINOv2, registers, pathology; 768-d pooler output")
# CONCH: create_model_from_pretrained("conch_ViT-B-16", "hf_hub:MahmoodLab/conch") from the
# `conch` package; for linear probes model.encode_image(image, proj_contrast=False,
# normalize=False), 512-d, at 448 with OpenAI CLIP's mean/std.
_foundation(name="conch", repo="MahmoodLab/CONCH", loader="conch", timm_name="conch_ViT-B-16", embedding="image_tower",
            dim=512, input_size=448, mean=CLIP_MEAN, std=CLIP_STD, licence=CC_BY_NC_ND, gated=True,
            description="CONCH (Mahmood Lab): CoCa ViT-B/16 image tower, pathology vision-language; 512-d")

# --- radiology ---------------------------------------------------------------------------------
# RAD-DINO: AutoModel.from_pretrained("microsoft/rad-dino") (a Dinov2Model);
# AutoImageProcessor: resize shortest edge 518, centre crop 518, mean 0.5307, std 0.2583;
# cls_embeddings = outputs.pooler_output, 1 x 768.
_foundation(name="rad-dino", repo="microsoft/rad-dino", loader="transformers", timm_name="Dinov2Model",
            embedding="pooler", dim=768, input_size=518, mean=(0.5307,) * 3, std=(0.2583,) * 3,
            # The card's licence moved from MSRLA to MIT; it still says research use only.
            licence="MIT (the card: research use only, not for clinical practice)", gated=False,
            description="RAD-DINO (Microsoft): ViT-B/14 DINOv2 on chest X-rays; 768-d class token")
# BiomedCLIP: open_clip.create_model_from_pretrained("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-
# vit_base_patch16_224"); its open_clip_config.json: 224, OpenAI CLIP mean/std; image features
# as model(images, texts) gives them: encode_image, normalised, 512-d.
_foundation(name="biomedclip", repo="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", loader="open_clip",
            timm_name="vit_base_patch16_224 (open_clip)", embedding="image_tower", dim=512,
            mean=CLIP_MEAN, std=CLIP_STD, licence="MIT", gated=False,
            description="BiomedCLIP (Microsoft): ViT-B/16 image tower, PubMed figure-caption pairs; 512-d")

# --- general ---------------------------------------------------------------------------------
# DINOv2 (timm's copies of facebookresearch/dinov2, e.g. timm/vit_small_patch14_dinov2.lvd142m):
# model(img) with num_classes=0 is the class token. Seen at 224 (resize 256, centre crop 224),
# as facebook/dinov2-*'s image processor and the DINOv2 paper's linear evaluation do; the
# position embeddings, trained at 518, are resampled to 16 x 16.
for _size, _arch, _dim, _desc in (("s", "vit_small_patch14_dinov2", 384, "ViT-S/14"),
                                  ("b", "vit_base_patch14_dinov2", 768, "ViT-B/14"),
                                  ("l", "vit_large_patch14_dinov2", 1024, "ViT-L/14"),
                                  ("g", "vit_giant_patch14_dinov2", 1536, "ViT-g/14")):
    _foundation(name=f"dinov2-{_size}", repo=f"timm/{_arch}.lvd142m", timm_name=_arch, embedding="cls", dim=_dim,
                resize_size=256, licence=APACHE, gated=False,
                card=f"https://huggingface.co/timm/{_arch}.lvd142m",
                description=f"DINOv2 {_desc} (Meta), natural images (LVD-142M); {_dim}-d class token")
