import pickle

from trainables.models.weights import WeightsError

import pytest
import timm
import torch

from trainables.models.backbones import (
    BackboneError,
    BackboneInfo,
    backbone_names,
    create_backbone,
    embed,
    embedding_dim,
    get_backbone_info,
    weights_digest,
)

PAPER_DIMS = {"random": 2048, "supervised": 2048, "swav": 2048, "simclr": 2048, "dino": 1536}


@pytest.mark.parametrize("name", backbone_names())
def test_every_registered_backbone_builds_or_asks_for_its_weights(name):
    info = get_backbone_info(name)
    assert len(info.mean) == 3 and len(info.std) == 3
    if info.needs_weights:
        where = "its files in the Hugging Face cache" if info.foundation else info.weight_files[0]
        with pytest.raises(BackboneError, match=f"--weights {name}=PATH.*{where}"):
            create_backbone(name)
        return
    size = 32 if name.startswith("test_") else 64
    model, info = create_backbone(name, img_size=size)
    out = embed(model.eval(), info, torch.zeros(2, 3, size, size))
    assert out.shape == (2, embedding_dim(model, info))
    if name in PAPER_DIMS:
        assert out.shape[1] == PAPER_DIMS[name]


def test_unknown_backbone_lists_the_valid_ones():
    with pytest.raises(BackboneError, match=r"unknown backbone .resnet51. \(did you mean .resnet51q.*\); valid backbones: .*dino.*swav.*, or any timm architecture name"):
        get_backbone_info("resnet51")


def test_random_init_is_seeded():
    a, _ = create_backbone("test_resnet", seed=3)
    b, _ = create_backbone("test_resnet", seed=3)
    c, _ = create_backbone("test_resnet", seed=4)
    wa, wb, wc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_random_is_the_papers_kaiming_resnet50_with_every_residual_branch_alive():
    import numpy as np

    from trainables.models.backbones import embed
    from trainables.data.datasets import load_dataset

    model, info = create_backbone("random", img_size=64)
    last_bns = {n: m.weight for n, m in model.named_modules() if n.endswith(".bn3")}
    assert len(last_bns) == 16 and all(torch.equal(w, torch.ones_like(w)) for w in last_bns.values())
    # Kaiming normal, fan_out, as torchvision's resnet50(weights=None): std sqrt(2 / fan_out).
    conv = model.layer3[0].conv2.weight
    fan_out = conv.shape[0] * conv.shape[2] * conv.shape[3]
    assert conv.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    # Frozen and random, its features still tell the digits 0 and 1 apart (nearest centroid,
    # leave one out), as a random network's features do in the paper's tables.
    data = load_dataset("digits")
    picked = np.concatenate([np.flatnonzero(data.pool.labels == c)[:30] for c in (0, 1)])
    images = torch.nn.functional.interpolate(data.pool.images[picked].float() / 255, size=64)
    with torch.no_grad():
        features = embed(model.eval(), info, images).numpy()
    labels = data.pool.labels[picked]
    right = 0
    for i in range(len(labels)):
        rest = np.arange(len(labels)) != i
        centroids = [features[rest & (labels == c)].mean(0) for c in (0, 1)]
        right += int(np.argmin([np.linalg.norm(features[i] - c) for c in centroids]) == labels[i])
    assert right / len(labels) >= 0.9
    # Its init options are part of what the cache keys it by.
    assert weights_digest("random") == "init-seed0-zero_init_last=False"


def test_flat_state_dict_with_classifier_loads_exactly(tmp_path):
    src = timm.create_model("resnet50", pretrained=False, num_classes=1000)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(src.state_dict(), path)
    model, _ = create_backbone("supervised", weights_path=str(path))
    for key, value in model.state_dict().items():
        assert torch.equal(value, src.state_dict()[key]), key
    assert weights_digest("supervised", str(path)) == __import__("hashlib").sha256(path.read_bytes()).hexdigest()


def test_state_dict_of_another_architecture_is_refused_naming_keys(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(BackboneError, match="does not fit 'supervised'.*missing \\[.*'layer1.0.bn3.bias'"):
        create_backbone("supervised", weights_path=str(path))


class _Payload:
    def __reduce__(self):
        return (print, ("this ran code",))


def test_checkpoint_that_needs_code_to_unpickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _Payload()}, f)
    with pytest.raises(WeightsError, match="cannot load as a weights-only checkpoint \\(it needs code to unpickle"):
        create_backbone("supervised", weights_path=str(path))


def test_dino_embedding_is_the_normed_cls_of_the_last_four_blocks(tmp_path):
    ref = timm.create_model("vit_small_patch8_224", pretrained=False, num_classes=0, img_size=32).eval()
    path = tmp_path / "dino_deitsmall8_pretrain.pth"
    torch.save(ref.state_dict(), path)
    model, info = create_backbone("dino", img_size=32, weights_path=str(path))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = embed(model.eval(), info, x)
        tokens = ref._pos_embed(ref.patch_embed(x))
        cls = []
        for block in ref.blocks:
            tokens = block(tokens)
            cls.append(ref.norm(tokens)[:, 0])
        expected = torch.cat(cls[-4:], dim=-1)
    assert got.shape == (2, 1536)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_vit_weights_for_224_load_into_a_96_model_by_resampling(tmp_path):
    src = timm.create_model("vit_small_patch8_224", pretrained=False, num_classes=0)
    path = tmp_path / "dino.pth"
    torch.save(src.state_dict(), path)
    model, _ = create_backbone("dino", img_size=96, weights_path=str(path))
    assert model.pos_embed.shape == (1, 1 + 12 * 12, 384)
    assert torch.equal(model.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)


def test_bad_embedding_kind_is_refused():
    from trainables.models.backbones import register_backbone

    with pytest.raises(BackboneError, match="unknown embedding"):
        register_backbone(BackboneInfo(name="x", timm_name="resnet18", mean=(0,) * 3, std=(1,) * 3, embedding="gem"))


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("vit_tiny_patch16_224", 192)])
def test_any_timm_architecture_by_name(name, dim, tmp_path):
    info = get_backbone_info(name)
    from timm.models import get_pretrained_cfg

    assert info.mean == tuple(get_pretrained_cfg(name).mean) and not info.needs_weights  # timm's own
    model, info = create_backbone(name, img_size=64, seed=1)
    assert embed(model.eval(), info, torch.zeros(1, 3, 64, 64)).shape == (1, dim)
    path = tmp_path / f"{name}.pth"
    torch.save(timm.create_model(name, pretrained=False).state_dict(), path)  # with its classifier
    loaded, _ = create_backbone(name, img_size=64, weights_path=str(path))
    assert torch.equal(next(loaded.parameters()), torch.load(path)[next(iter(loaded.state_dict()))])


def test_the_normalisation_constants_written_out_are_timms():
    from timm.data import constants

    from trainables.models.backbones import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD

    assert (IMAGENET_MEAN, IMAGENET_STD) == (constants.IMAGENET_DEFAULT_MEAN, constants.IMAGENET_DEFAULT_STD)
    assert (CLIP_MEAN, CLIP_STD) == (constants.OPENAI_CLIP_MEAN, constants.OPENAI_CLIP_STD)
