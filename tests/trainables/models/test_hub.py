"""Hub backbones (hf-hub:ORG/REPO, timm tags ARCH.TAG) from a Hugging Face cache built here in
the hub's own layout, offline: nothing is downloaded."""

import hashlib
import json

import pytest
import torch
from click.testing import CliRunner

from sweep.cli import main
from tests import layouts
from tests.hubcache import make_hub_cache
from trainables.models.backbones import build_architecture, create_backbone, embed, get_backbone_info, resolve_weights, weights_digest
from trainables.models.hub import HubError, is_hub_backbone

REPO = "medsweep/tiny_vit"
NAME = f"hf-hub:{REPO}"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_names_that_are_hub_backbones():
    assert is_hub_backbone(NAME) and is_hub_backbone("vit_small_patch14_dinov2.lvd142m")
    assert not is_hub_backbone("resnet50") and not is_hub_backbone("dino") and not is_hub_backbone("resnet50.no_such_tag")


def test_an_hf_hub_backbone_loads_offline_from_the_cache_with_its_own_preprocessing(hub):
    snapshot, saved = make_hub_cache(str(hub), f"{REPO}-a", pretrained_cfg={"mean": (0.1, 0.2, 0.3), "std": (0.3, 0.2, 0.1)})
    name = f"{NAME}-a"
    path = resolve_weights(name)
    assert path == f"{snapshot}/model.safetensors"
    info = get_backbone_info(name)
    assert (info.timm_name, info.mean, info.std, info.input_size) == ("test_vit", (0.1, 0.2, 0.3), (0.3, 0.2, 0.1), 160)
    assert weights_digest(name, path) == sha256(path)  # the digest names the resolved file's bytes
    model, info = create_backbone(name, img_size=160, weights_path=path)
    saved.reset_classifier(0)
    images = torch.rand(2, 3, 160, 160)
    with torch.no_grad():
        assert torch.allclose(embed(model.eval(), info, images), saved.eval()(images), atol=1e-6)
    # At the dataset's own size: timm's loader resamples the position embeddings.
    model, _ = create_backbone(name, img_size=64, weights_path=path)
    assert model.pos_embed.shape[1] == 1 + (64 // 16) ** 2
    # The architecture alone (what `sweep plan --estimate` calibrates): the repo's model args,
    # its own classifier size among them, give way to no classifier.
    bare = build_architecture(info, 64)
    assert bare.num_classes == 0 and bare.pos_embed.shape == model.pos_embed.shape


def test_a_timm_tag_resolves_to_its_hub_repo_and_loads_a_bin_file_weights_only(hub):
    snapshot, saved = make_hub_cache(str(hub), "timm/test_resnet.r160_in1k", arch="test_resnet", safetensors=False)
    path = resolve_weights("test_resnet.r160_in1k")
    assert path == f"{snapshot}/pytorch_model.bin"
    model, info = create_backbone("test_resnet.r160_in1k", img_size=32, weights_path=path)
    saved.reset_classifier(0)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval()(images), saved.eval()(images), atol=1e-6)


def test_a_bin_file_that_needs_code_to_unpickle_is_refused_and_runs_none(hub, tmp_path):
    """The loader's weights_only=True, checked by what it refuses (a test comparing outputs
    passes with weights_only=False too)."""
    snapshot, saved = make_hub_cache(str(hub), "timm/test_resnet.r160_in1k", arch="test_resnet", safetensors=False)
    marker = tmp_path / "code-ran"
    torch.save({**saved.state_dict(), "extra": layouts.RunsCodeWhenUnpickled(str(marker))}, f"{snapshot}/pytorch_model.bin")
    result = CliRunner().invoke(main, ["weights", "check", "test_resnet.r160_in1k", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1 and not report["ok"] and "weights_only=True blocked loading" in report["error"]
    with pytest.raises(Exception, match="weights_only=True blocked loading"):
        create_backbone("test_resnet.r160_in1k", img_size=32, weights_path=resolve_weights("test_resnet.r160_in1k"))
    assert not marker.exists()  # nothing in the file ran
    torch.load(f"{snapshot}/pytorch_model.bin", weights_only=False)  # as an unguarded loader would
    assert marker.exists()


def test_a_hub_backbone_missing_from_an_offline_cache_is_one_line_naming_repo_and_cache(hub):
    with pytest.raises(HubError, match=rf"hf-hub:medsweep/absent: config.json is not in the local Hugging Face cache {hub} "
                                       r"and HF_HUB_OFFLINE=1; fetch it once online \(hf download medsweep/absent\)"):
        resolve_weights("hf-hub:medsweep/absent")
    with pytest.raises(HubError, match="expected hf-hub:ORG/REPO"):
        get_backbone_info("hf-hub:justaname")


def test_a_trial_reads_the_config_beside_the_resolved_file_whatever_its_own_hub_settings(hub, monkeypatch, tmp_path):
    make_hub_cache(str(hub), f"{REPO}-b", pretrained_cfg={"mean": (0.4, 0.4, 0.4)})
    path = resolve_weights(f"{NAME}-b")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))  # another node, another cache
    assert get_backbone_info(f"{NAME}-b", path).mean == (0.4, 0.4, 0.4)
    model, _ = create_backbone(f"{NAME}-b", img_size=32, weights_path=path)
    assert model.num_features == 64


def test_weights_check_of_a_hub_backbone(hub):
    make_hub_cache(str(hub), f"{REPO}-c")
    result = CliRunner().invoke(main, ["weights", "check", f"{NAME}-c", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["format"] == "timm-hub" and report["architecture"] == "test_vit"
    assert report["dim"] == 64 and report["input_size"] == 160 and report["sha256"] == sha256(report["file"])


def test_weights_check_of_a_broken_hub_file_says_so(hub):
    snapshot, _ = make_hub_cache(str(hub), f"{REPO}-d")
    with open(f"{snapshot}/model.safetensors", "wb") as f:
        f.write(b"truncated")
    result = CliRunner().invoke(main, ["weights", "check", f"{NAME}-d", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert not report["ok"] and report["error"] and report["sha256"] == hashlib.sha256(b"truncated").hexdigest()
