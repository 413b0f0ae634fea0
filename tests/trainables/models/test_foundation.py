"""Named foundation models: each resolves from a hub cache in its repo's layout (offline),
loads strictly and embeds as its card says; refusals name what is wrong."""

from __future__ import annotations

import http.server
import json
import os
import threading

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.foundation_cache import TIMM_REPOS, make_foundation_repo, open_clip_repo, timm_repo
from tests.layouts import RunsCodeWhenUnpickled
from trainables.data.datasets import get_dataset_info
from trainables.data.transforms import build_transform, describe
from trainables.errors import UserError
from trainables.models.backbones import EMBEDDINGS, backbone_names, create_backbone, embed, get_backbone_info, resolve_weights

FOUNDATION = [n for n in backbone_names() if get_backbone_info(n).foundation]
BUILDABLE = [n for n in FOUNDATION if n != "conch"]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return str(cache)


def test_the_catalog_names_every_model_the_field_asks_for():
    assert set(FOUNDATION) >= {"uni", "uni2-h", "virchow", "virchow2", "h-optimus-0", "h-optimus-1", "prov-gigapath",
                               "phikon", "phikon-v2", "hibou-b", "conch", "rad-dino", "biomedclip",
                               "dinov2-s", "dinov2-b", "dinov2-l", "dinov2-g"}


@pytest.mark.parametrize("name", FOUNDATION)
def test_each_entry_holds_its_cards_facts(name):
    info = get_backbone_info(name)
    assert info.card.startswith("https://huggingface.co/") and info.repo.split("/")[0] in info.card
    assert info.embedding in EMBEDDINGS[2:] and info.dim and info.licence and info.input_size
    assert len(info.mean) == len(info.std) == 3
    assert info.needs_weights  # never a random foundation model


@pytest.mark.parametrize("name", BUILDABLE)
def test_each_model_resolves_offline_loads_and_embeds_by_its_card(name, hub_cache):
    snapshot, by_hand = make_foundation_repo(hub_cache, name, seed=3)
    path = resolve_weights(name)  # found in the cache, offline
    assert os.path.dirname(path) == snapshot
    model, info = create_backbone(name, img_size=96, weights_path=path, trust_remote_code=name == "hibou-b")
    x = torch.randn(2, 3, info.input_size, info.input_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = embed(model, info, x), by_hand(x)
    assert ours.shape == (2, model.num_features)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_virchow2_leaves_its_four_registers_out_of_the_patch_mean(hub_cache):
    """Taking the mean over registers too would be a plausible, silent mistake: it differs."""
    _, by_hand = make_foundation_repo(hub_cache, "virchow2")
    model, info = create_backbone("virchow2", weights_path=resolve_weights("virchow2"))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens = model.model.forward_features(x)
        with_registers = torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], -1)
        assert not torch.allclose(embed(model, info, x), with_registers)
        torch.testing.assert_close(embed(model, info, x), by_hand(x))


def test_a_timm_file_missing_a_tensor_is_refused_naming_it(hub_cache):
    snapshot, _ = make_foundation_repo(hub_cache, "uni")
    path = os.path.join(snapshot, "model.safetensors")
    state = load_file(path)
    del state["blocks.1.ls2.gamma"]
    save_file(state, path)
    with pytest.raises(UserError, match=r"does not load whole into uni .*1 missing \['blocks\.1\.ls2\.gamma'\]"):
        create_backbone("uni", weights_path=path)


def test_a_repo_of_another_architecture_is_refused(hub_cache):
    arch, args, card = TIMM_REPOS["uni"]
    snapshot, _ = timm_repo(hub_cache, "MahmoodLab/UNI", "vit_base_patch16_224", args, card)
    with pytest.raises(UserError, match=r"architecture 'vit_base_patch16_224', but uni's card builds 'vit_large_patch16_224'"):
        create_backbone("uni", weights_path=os.path.join(snapshot, "model.safetensors"))


def test_a_classifier_the_repo_keeps_is_left_out(hub_cache):
    arch, args, card = TIMM_REPOS["h-optimus-0"]
    snapshot, model = timm_repo(hub_cache, "bioptimus/H-optimus-0", arch, args, card, classifier=True)
    assert "head.weight" in load_file(os.path.join(snapshot, "model.safetensors"))
    encoder, info = create_backbone("h-optimus-0", weights_path=os.path.join(snapshot, "model.safetensors"))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(embed(encoder, info, x), model(x))


def test_a_transformers_file_missing_a_tensor_is_refused_naming_it(hub_cache):
    snapshot, _ = make_foundation_repo(hub_cache, "phikon-v2")
    path = os.path.join(snapshot, "model.safetensors")
    state = load_file(path)
    dropped = next(k for k in state if k.endswith("layernorm.weight"))
    del state[dropped]
    save_file(state, path, metadata={"format": "pt"})
    with pytest.raises(UserError, match=r"does not load whole into phikon-v2 \(Dinov2Model\): 1 missing"):
        create_backbone("phikon-v2", weights_path=path)


def test_a_clip_file_with_tensors_of_neither_tower_is_refused(hub_cache):
    repo = get_backbone_info("biomedclip").repo
    snapshot, _ = open_clip_repo(hub_cache, repo, extra={"decoder.weight": torch.zeros(2)})
    with pytest.raises(UserError, match=r"image tower: 0 missing \[\], 1 unexpected \['decoder\.weight'\]"):
        create_backbone("biomedclip", weights_path=os.path.join(snapshot, "open_clip_model.safetensors"))


@pytest.mark.parametrize("name", ["uni", "biomedclip", "phikon"])
def test_a_weight_file_that_runs_code_when_unpickled_is_refused(name, hub_cache, tmp_path):
    snapshot, _ = make_foundation_repo(hub_cache, name)
    marker = tmp_path / "ran"
    for file in os.listdir(snapshot):
        if file.endswith(".safetensors"):
            os.remove(os.path.join(snapshot, file))
            bin_name = file.replace("model.safetensors", "pytorch_model.bin")
            torch.save({"w": RunsCodeWhenUnpickled(str(marker))}, os.path.join(snapshot, bin_name))
    path = resolve_weights(name)
    assert path.endswith(".bin")
    with pytest.raises(UserError, match="code to unpickle"):
        create_backbone(name, weights_path=path)
    assert not marker.exists()


def test_a_model_built_by_its_repos_own_code_needs_the_users_trust(hub_cache):
    make_foundation_repo(hub_cache, "hibou-b")
    path = resolve_weights("hibou-b")  # fetches (finds) the code files auto_map names, too
    assert os.path.isfile(os.path.join(os.path.dirname(path), "modeling_hibou.py"))
    with pytest.raises(UserError, match=r"hibou-b: histai/hibou-b is built by Python code its repo ships "
                                        r"\(configuration_hibou\.py, modeling_hibou\.py\).*pass --trust-remote-code hibou-b"):
        create_backbone("hibou-b", weights_path=path)
    model, _ = create_backbone("hibou-b", weights_path=path, trust_remote_code=True)
    assert type(model.model).__name__ == "HibouModel"


def test_conch_without_its_package_names_what_is_missing():
    with pytest.raises(UserError, match=r"conch: MahmoodLab/CONCH is built by Mahmood Lab's `conch` package, "
                                        r"which is on no package index: install it from https://github.com/mahmoodlab/CONCH"):
        resolve_weights("conch")


class GatedHub(http.server.BaseHTTPRequestHandler):
    """The Hub's answer to a gated repo's file for a user without access (401, GatedRepo)."""

    def _gated(self):
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to model MahmoodLab/UNI is restricted.")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = _gated

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("token", [None, "hf_secretSECRETsecret0123"])
def test_an_unauthorised_download_of_a_gated_model_is_one_line_without_the_token(token, tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GatedHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        import huggingface_hub.constants as constants

        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            f"http://127.0.0.1:{server.server_port}" + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        if token:
            monkeypatch.setenv("HF_TOKEN", token)
        else:
            monkeypatch.delenv("HF_TOKEN", raising=False)
        with pytest.raises(UserError) as caught:
            resolve_weights("uni")
    finally:
        server.shutdown()
    message = str(caught.value)
    assert "\n" not in message and (token or "hf_") not in message
    assert message.startswith("MahmoodLab/UNI: https://huggingface.co/MahmoodLab/UNI is gated")
    assert "accept the model's terms on that page" in message and "HF_TOKEN" in message and "hf auth login" in message
    assert ("has not been granted access" if token else "no Hugging Face token is set") in message


def test_a_foundation_model_sees_its_cards_geometry_whatever_the_dataset():
    patchcam = get_dataset_info("patchcam")
    gigapath = describe(build_transform(patchcam, get_backbone_info("prov-gigapath"), train=False))
    assert "Resize(size=[256, 256]" in gigapath and "CenterCrop(size=(224, 224))" in gigapath
    rad_dino = build_transform(get_dataset_info("pneumonia"), get_backbone_info("rad-dino"), train=True)
    out = rad_dino(torch.zeros(1, 300, 400, dtype=torch.uint8))
    assert out.shape == (3, 518, 518)
    assert "RandomRotation" in describe(rad_dino)  # the dataset's augmentation kept
    # The paper's backbones keep the dataset's own size.
    assert build_transform(patchcam, get_backbone_info("dino"), train=False)(
        torch.zeros(3, 96, 96, dtype=torch.uint8)).shape == (3, 96, 96)


def test_a_config_naming_its_layer_classes_as_dotted_strings_builds_them(hub_cache):
    """Some repos' config.json hold model_args such as "mlp_layer": "timm.layers.SwiGLUPacked"."""
    arch, args, card = TIMM_REPOS["h-optimus-0"]
    strings = {**args, "mlp_layer": "timm.layers.SwiGLUPacked", "act_layer": "torch.nn.SiLU"}
    snapshot, model = timm_repo(hub_cache, "bioptimus/H-optimus-0", arch, args, card)
    config = json.load(open(os.path.join(snapshot, "config.json")))
    config["model_args"] = strings
    json.dump(config, open(os.path.join(snapshot, "config.json"), "w"))
    encoder, info = create_backbone("h-optimus-0", weights_path=os.path.join(snapshot, "model.safetensors"))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(embed(encoder, info, x), model(x))
