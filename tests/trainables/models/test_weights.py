"""Every published layout of shared/notes/formats.md, saved with random weights, loads exactly."""

import argparse
import os

import pytest
import timm
import torch

from trainables.models.backbones import BackboneError, create_backbone, embed, resolve_info
from trainables.models.weights import WeightsError, detect_format, read_weights


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return timm.create_model("resnet50", pretrained=False, num_classes=1000).state_dict()


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return timm.create_model("vit_small_patch8_224", pretrained=False, num_classes=0).state_dict()


def _trunk(state):
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def vissl(state, head):
    return {
        "phase_idx": 799, "iteration": 1000, "loss": torch.tensor(1.0), "iteration_num": 1000, "train_phase_idx": 799,
        "classy_state_dict": {"base_model": {
            "model": {"trunk": {f"_feature_blocks.{k}": v for k, v in _trunk(state).items()}, "heads": head},
            "meta": {},
        }},
    }


def _assert_loaded(model, state):
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_vissl_swav_and_simclr(tmp_path, resnet):
    for name, head in (("swav", {"0.projection_head.0.weight": torch.zeros(2048, 2048), "0.prototypes0.weight": torch.zeros(3000, 128)}),
                       ("simclr", {"0.clf.0.weight": torch.zeros(128, 2048)})):
        path = tmp_path / f"{name}_model_final_checkpoint_phase799.torch"
        torch.save(vissl(resnet, head), path)
        assert read_weights(str(path)).format == "vissl"
        model, info = create_backbone(name, weights_path=str(path))
        _assert_loaded(model, resnet)
        assert info.mean != (0.0, 0.0, 0.0)


def test_swav_hub_file(tmp_path, resnet):
    state = {f"module.{k}": v for k, v in _trunk(resnet).items()}
    state.update({"module.projection_head.0.weight": torch.zeros(2048, 2048), "module.projection_head.1.weight": torch.zeros(2048),
                  "module.projection_head.3.weight": torch.zeros(128, 2048), "module.prototypes.weight": torch.zeros(3000, 128)})
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(state, path)
    converted = read_weights(str(path))
    assert converted.format == "swav_hub" and "prototypes.weight" in converted.dropped
    model, _ = create_backbone("swav", weights_path=str(path))
    _assert_loaded(model, resnet)


def test_simclr_tf_converted_file_has_no_input_normalisation(tmp_path, resnet):
    path = tmp_path / "resnet50-1x.pth"
    torch.save({"state_dict": resnet}, path)
    model, info = create_backbone("simclr", weights_path=str(path))
    _assert_loaded(model, resnet)
    assert info.mean == (0.0, 0.0, 0.0) and info.std == (1.0, 1.0, 1.0)
    assert resolve_info("simclr", str(path)).mean == (0.0, 0.0, 0.0)
    assert resolve_info("simclr").mean == (0.485, 0.456, 0.406)


def test_torchvision_supervised_file(tmp_path, resnet):
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(resnet, path)
    converted = read_weights(str(path))
    assert converted.format == "state_dict" and converted.dropped == ["fc.bias", "fc.weight"]
    model, info = create_backbone("supervised", weights_path=str(path))
    _assert_loaded(model, resnet)
    assert embed(model.eval(), info, torch.zeros(1, 3, 64, 64)).shape == (1, 2048)


def test_dino_official_and_full_checkpoint(tmp_path, vit):
    assert len(vit) == 150
    path = tmp_path / "dino_deitsmall8_pretrain.pth"
    torch.save(vit, path)
    model, info = create_backbone("dino", weights_path=str(path))
    _assert_loaded(model, vit)
    full = {
        "student": {f"module.backbone.{k}": v + 1 for k, v in vit.items()},
        "teacher": {**{f"backbone.{k}": v for k, v in vit.items()}, "head.mlp.0.weight": torch.zeros(2048, 384)},
        "optimizer": {"state": {}, "param_groups": []},
        "epoch": 800,
        "args": argparse.Namespace(arch="vit_small", patch_size=8),
    }
    path = tmp_path / "dino_deitsmall8_pretrain_full_checkpoint.pth"
    torch.save(full, path)
    converted = read_weights(str(path))
    assert converted.format == "dino_full" and converted.dropped == ["teacher.head.mlp.0.weight"]
    model, info = create_backbone("dino", weights_path=str(path))
    _assert_loaded(model, vit)  # the teacher, not the student
    small, _ = create_backbone("dino", img_size=32, weights_path=str(path))  # pos_embed resampled
    assert embed(small.eval(), info, torch.zeros(1, 3, 32, 32)).shape == (1, 1536)


def test_wrong_architecture_names_missing_keys(tmp_path, vit):
    path = tmp_path / "dino.pth"
    torch.save(vit, path)
    with pytest.raises(BackboneError, match="does not fit 'supervised' \\(resnet50, read as state_dict\\): 318 missing .* 150 unexpected"):
        create_backbone("supervised", weights_path=str(path))


def test_unrecognised_layout_and_non_tensor_entries(tmp_path):
    with pytest.raises(WeightsError, match="unrecognised checkpoint layout"):
        detect_format({"weights": [1, 2]}, "x.pth")
    path = tmp_path / "odd.pth"
    torch.save({"teacher": {"backbone.a": 3}}, path)
    with pytest.raises(WeightsError, match="teacher holds non-tensor entries"):
        read_weights(str(path))


def test_weights_check_command_reports_a_whole_load(tmp_path, resnet, monkeypatch):
    import json

    from click.testing import CliRunner

    from sweep.cli import main

    # The VISSL zoo's own name is SwAV's and SimCLR's alike: never taken from $MEDSWEEP_WEIGHTS.
    torch.save(vissl(resnet, {"0.clf.0.weight": torch.zeros(128, 2048)}), tmp_path / "model_final_checkpoint_phase799.torch")
    monkeypatch.setenv("MEDSWEEP_WEIGHTS", str(tmp_path))
    for name in ("simclr", "swav"):
        missing = CliRunner().invoke(main, ["weights", "check", name, "--json"])
        assert missing.exit_code == 2 and f"no weight file for '{name}'" in missing.output
    # Under the name `sweep weights fetch` gives it, it is found.
    os.rename(tmp_path / "model_final_checkpoint_phase799.torch", tmp_path / "simclr_rn50_800ep_phase799.torch")
    result = CliRunner().invoke(main, ["weights", "check", "simclr", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["ok"]
    assert report["format"] == "vissl" and report["tensors"] == len(resnet) - 2 and report["dim"] == 2048
    assert report["missing"] == [] and report["unexpected"] == [] and len(report["sha256"]) == 64
    assert report["dropped"] == ["heads.0.clf.0.weight"]


def test_weights_check_of_a_wrong_file_exits_1_naming_keys(tmp_path, vit):
    import json

    from click.testing import CliRunner

    from sweep.cli import main

    torch.save(vit, tmp_path / "dino.pth")
    result = CliRunner().invoke(main, ["weights", "check", "swav", "--file", str(tmp_path / "dino.pth"), "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1 and not report["ok"]
    assert "conv1.weight" in report["missing"] and "cls_token" in report["unexpected"]


def test_a_weight_file_that_needs_code_to_unpickle_is_refused_and_runs_none(tmp_path, resnet):
    """Published files load with weights_only=True: a file holding an object whose unpickling
    runs code is refused by `sweep weights check` and by a sweep before it starts."""
    import json

    from click.testing import CliRunner

    from sweep.cli import main
    from tests import layouts

    marker = tmp_path / "code-ran"
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save({**resnet, "extra": layouts.RunsCodeWhenUnpickled(str(marker))}, path)
    result = CliRunner().invoke(main, ["weights", "check", "supervised", "--file", str(path), "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 1 and not report["ok"] and str(path) in report["error"]
    run = CliRunner().invoke(main, ["run", "--grid", "paper", "--where", "dataset=pneumonia", "--where", "backbones=supervised",
                                    "--data", f"pneumonia={tmp_path}", "--weights", f"supervised={path}",
                                    "--results", str(tmp_path / "r")])
    assert run.exit_code == 2 and f"--weights supervised={path} does not load into supervised" in run.output
    assert not marker.exists()
