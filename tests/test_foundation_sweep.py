"""A sweep of named foundation models, end to end on fixtures (tiny models under the real
names, in their repos' layouts, in an offline hub cache): linear probes of each loader kind,
their DVME fusion and a finetune, every row naming the weights it used."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from sweep.cli import main
from sweep.store.store import ResultsStore
from tests.foundation_cache import make_foundation_repo

GRID = '''"""Today's models on digits, as search_spaces/foundation.py runs them on the paper's sets."""
from itertools import product

from search_spaces.foundation import FINETUNE
from search_spaces.paper import DVME, LINEAR
from sweep.spec import StudySpec

SMALL = dict(n_trials=2, max_epochs=2, grace_period=1, cpus=0.5, views=1)
def study(mode, backbones, settings, fold):
    return StudySpec(grid="today", dataset="digits", backbones=backbones, mode=mode, subset="S", n_train=40,
                     fold=fold, n_folds=2, reduction_factor=3, **{**settings, **SMALL})

STUDIES = (
    [study("linear", (b,), dict(LINEAR, batch_size=16), fold)
     for b, fold in product(("virchow2", "hibou-b", "biomedclip"), range(2))]
    + [study("dvme", ("virchow2", "hibou-b", "biomedclip"), dict(DVME, batch_size=16, attention=True), 0)]
    + [study("finetune", ("phikon",), dict(FINETUNE, batch_size=8, gpus=0.0, cpus=1.0), 0)]
)
'''


@pytest.mark.slow
def test_a_sweep_of_named_foundation_models_offline(tmp_path, monkeypatch, ray_local):
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshots = {name: make_foundation_repo(str(hub), name)[0] for name in ("virchow2", "hibou-b", "biomedclip", "phikon")}
    grid = tmp_path / "today.py"
    grid.write_text(GRID)
    results = str(tmp_path / "results")
    refused = CliRunner().invoke(main, ["run", "--grid", str(grid), "--results", results])
    assert refused.exit_code == 2 and "pass --trust-remote-code hibou-b" in refused.output
    run = CliRunner().invoke(main, ["run", "--grid", str(grid), "--results", results, "--trust-remote-code", "hibou-b"])
    assert run.exit_code == 0, run.output
    rows = ResultsStore(results).read_trials().to_pylist()
    assert len(rows) == 16 and {r["status"] for r in rows} <= {"ok", "stopped"}
    assert {r["mode"] for r in rows} == {"linear", "dvme", "finetune"}
    files = {"virchow2": "model.safetensors", "hibou-b": "model.safetensors", "biomedclip": "open_clip_model.safetensors",
             "phikon": "model.safetensors"}
    digests = {n: hashlib.sha256(open(f"{snapshots[n]}/{f}", "rb").read()).hexdigest() for n, f in files.items()}
    for r in rows:
        used = json.loads(r["weights_digests"])
        assert used == {b: digests[b] for b in r["backbones"]}
    assert "extracted digits x virchow2 view 0" in run.output


@pytest.mark.slow
def test_the_foundation_grid_runs_its_xray_cell_end_to_end(tmp_path, monkeypatch, ray_local):
    """`sweep run --grid foundation` itself, its NIH F cell of fold 0 (linear and DVME): every
    X-ray model of the grid, tiny under its real name, and the paper's DINO file as reference."""
    import timm
    import torch

    from tests import layouts

    nih = str(tmp_path / "nih")
    layouts.nih_pool(nih, usable=30, n_test=10)
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("rad-dino", "biomedclip", "dinov2-s", "dinov2-b", "dinov2-l", "dinov2-g"):
        make_foundation_repo(str(hub), name)
    dino = tmp_path / "dino_deitsmall8_pretrain.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model("vit_small_patch8_224", num_classes=0).state_dict(), dino)
    results = str(tmp_path / "results")
    run = CliRunner().invoke(main, ["run", "--grid", "foundation", "--where", "dataset=nih", "--where", "subset=F",
                                    "--where", "fold=0", "--where", "mode=linear,dvme", "--data", f"nih={nih}",
                                    "--weights", f"dino={dino}", "--results", results, "--quiet"])
    assert run.exit_code == 0, run.output
    rows = ResultsStore(results).read_trials().to_pylist()
    linear = {r["backbones"][0] for r in rows if r["mode"] == "linear"}
    assert linear == {"rad-dino", "biomedclip", "dinov2-s", "dinov2-b", "dinov2-l", "dinov2-g", "dino"}
    dvme = [r for r in rows if r["mode"] == "dvme"]
    assert {tuple(r["backbones"]) for r in dvme} == {("rad-dino", "biomedclip", "dinov2-l")}
    assert len(rows) == 7 * 8 + 2 * 8 and {r["status"] for r in rows} <= {"ok", "stopped"}
    assert {r["grid"] for r in rows} == {"foundation"} and {r["n_train"] for r in rows} == {30}
