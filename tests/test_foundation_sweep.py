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
