"""Your own data with today's backbones: a grid file outside the package, the folder dataset,
a backbone from the Hugging Face Hub loaded offline from a cache built here."""

import hashlib
import json
import os
import re

import numpy as np
import pytest
from PIL import Image
from click.testing import CliRunner

from sweep.cli import main
from sweep.grids import load_grid
from sweep.spec import SpecError
from sweep.store.store import ResultsStore
from tests import layouts
from tests.hubcache import make_hub_cache


def test_grid_new_writes_a_commented_grid_whose_arithmetic_is_its_studies(tmp_path):
    path = tmp_path / "grids" / "derm.py"  # a folder not there yet is made
    result = CliRunner().invoke(main, ["grid", "new", str(path), "--dataset", "folder",
                                       "--backbones", "supervised,test_vit"])
    assert result.exit_code == 0, result.output
    studies = load_grid(str(path))
    text = path.read_text()
    # Sizes S, M, F x 5 folds x (2 linear + 2 finetune + 1 DVME) = 75 studies; 3 x 5 x (2 x (8 + 4) + 8) = 480.
    assert "= 75 studies, 480 trials." in text and len(studies) == 75 and sum(s.n_trials for s in studies) == 480
    assert {s.grid for s in studies} == {"derm"} and {s.dataset for s in studies} == {"folder"}
    assert {s.backbones for s in studies if s.mode == "dvme"} == {("supervised", "test_vit")}
    assert {s.n_train for s in studies} == {50, 500, None} and {s.views for s in studies if s.mode == "linear"} == {4}
    assert f"sweep run  --grid {path} --data folder=DATA_ROOT" in text
    again = CliRunner().invoke(main, ["grid", "new", str(path), "--dataset", "folder", "--backbones", "supervised"])
    assert again.exit_code == 2 and f"{path}: exists; give another name or --force" in again.output


@pytest.mark.parametrize("args,message", [
    (["--dataset", "derm"], "unknown dataset 'derm'; valid datasets: aptos, digits, folder"),
    (["--dataset", "folder", "--backbones", "resnet9000"], "unknown backbone 'resnet9000'"),
    (["--dataset", "foldr"], "unknown dataset 'foldr' (did you mean 'folder'?)"),
    (["--dataset", "folder", "--backbones", "supervised,dinoo"], "unknown backbone 'dinoo' (did you mean 'dino'?)"),
    # A mistyped timm pretrained tag: timm's own RuntimeError before, a traceback.
    (["--dataset", "folder", "--backbones", "resnet50.a1_in1kk"],
     "backbone 'resnet50.a1_in1kk': timm has no pretrained tag 'a1_in1kk' for resnet50 (did you mean 'a1_in1k'"),
])
def test_grid_new_names_an_unknown_dataset_or_backbone(tmp_path, args, message):
    args = args if "--backbones" in args else [*args, "--backbones", "supervised"]
    result = CliRunner().invoke(main, ["grid", "new", str(tmp_path / "g.py"), *args])
    assert result.exit_code == 2 and message in result.output and not (tmp_path / "g.py").exists()
    assert result.output.count("\n") == 1 and "Traceback" not in result.output  # one line


@pytest.mark.parametrize("source,message", [
    ("STUDIES = [", "{path} cannot be loaded: SyntaxError"),
    ("STUDIES = []", "{path}: STUDIES is empty; it must be a non-empty list of StudySpec"),
    ("X = 1", "{path} must define STUDIES, a non-empty list of StudySpec"),
    ("STUDIES = 'demo'", "{path}: STUDIES must be a non-empty list of StudySpec, got str"),
    ("STUDIES = [1]", "{path}: STUDIES[0] is a int (1), not a StudySpec"),
    ("STUDIES = (s for s in [1 / 0])", "{path} cannot be loaded: ZeroDivisionError"),
    ("from sweep.spec import StudySpec\nSTUDIES = (StudySpec(grid='mine', dataset='digits', backbones=('test_resnet',), "
     "mode='linear', subset='S', n_train=n, fold=0) for n in (50, 'x'))",
     "{path}: STUDIES cannot be read: SpecError: n_train must be a whole number or None (the whole pool), got 'x' (str)"),
    ("from sweep.spec import StudySpec\nSTUDIES = [StudySpec(grid='other', dataset='digits', backbones=('test_resnet',), "
     "mode='linear', subset='S', n_train=50, fold=0)]", "grid 'mine': every StudySpec must carry grid='mine'"),
])
def test_a_malformed_grid_file_is_a_named_error(tmp_path, source, message):
    path = tmp_path / "mine.py"
    path.write_text(source)
    with pytest.raises(SpecError, match=re.escape(message.replace("{path}", str(path)))):
        load_grid(str(path))


def test_a_grid_file_whose_studies_are_a_generator_is_read_once_whole(tmp_path):
    """A generator was consumed by the checks: plan printed 0 studies and exited 0, run raised
    IndexError."""
    path = tmp_path / "gen.py"
    path.write_text("import itertools\nfrom sweep.spec import StudySpec\n"
                    "STUDIES = (StudySpec(grid='gen', dataset='digits', backbones=(b,), mode='linear', subset='S',\n"
                    "                     n_train=50, fold=f) for b, f in itertools.product(('test_resnet', 'test_vit'), range(5)))\n")
    result = CliRunner().invoke(main, ["plan", "--grid", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["studies"] == 10
    assert len(load_grid(str(path))) == 10 == len(load_grid(str(path)))


def test_a_grid_file_that_is_not_there_or_badly_named(tmp_path):
    with pytest.raises(SpecError, match=f"--grid {tmp_path}/no.py: no such file"):
        load_grid(str(tmp_path / "no.py"))
    (tmp_path / "my-grid.py").write_text("STUDIES = []")
    with pytest.raises(SpecError, match="must be a Python identifier"):
        load_grid(str(tmp_path / "my-grid.py"))


GRID = """
from itertools import product
from sweep.spec import StudySpec

STUDIES = [
    StudySpec(grid="derm", dataset="folder", backbones=(backbone,), mode="linear", subset="F", n_train=None,
              fold=fold, n_folds=2, n_trials=2, max_epochs=3, grace_period=1, batch_size=8, lr_min=1e-3, lr_max=1e-2,
              cpus=0.5)
    for backbone, fold in product(("hf-hub:medsweep/derm_vit", "test_resnet"), range(2))
]
"""


@pytest.mark.slow
def test_a_grid_file_on_the_folder_dataset_with_a_hub_backbone_offline(tmp_path, monkeypatch, ray_local):
    data = tmp_path / "derm"
    layouts.folder(str(data), per_class=6)
    # As radiology data arrives: DICOM in both photometric interpretations, with and without a
    # VOI LUT, WebP and 16-bit PNG beside the PNGs; a file no reader takes is listed, not read.
    stored = np.random.default_rng(1).integers(0, 4096, (32, 40))
    layouts.dicom(data / "train" / "benign" / "cr1.dcm", stored, photometric="MONOCHROME1",
                  voi_lut=(0, 8, np.linspace(0, 255, 4096).astype(int)))
    layouts.dicom(data / "train" / "malignant" / "dx2.dcm", stored, window=(2048, 3000))
    Image.fromarray((stored * 16).astype(np.uint16)).save(data / "test" / "benign" / "sixteen.png")
    Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(data / "test" / "malignant" / "photo.webp")
    (data / "train" / "benign" / "notes.txt").write_text("seen by Dr X")
    hub = tmp_path / "hub"
    snapshot, _ = make_hub_cache(str(hub), "medsweep/derm_vit")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    grid = tmp_path / "grids" / "derm.py"
    grid.parent.mkdir()
    grid.write_text(GRID)
    monkeypatch.chdir(tmp_path)
    plan = CliRunner().invoke(main, ["plan", "--grid", str(grid), "--data", f"folder={data}", "--format", "json", "--studies"])
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)
    assert planned["grid"] == "derm" and planned["preflight"]["weights"]["hf-hub:medsweep/derm_vit"]["ok"]
    assert {s["n_train"] for s in planned["study_list"]} == {14}  # F: the 14 training images of the folder
    assert planned["preflight"]["datasets"]["folder"]["not_read"] == {".txt": 1}
    results = str(tmp_path / "results")
    # The README's --mlflow URI, relative to where the user runs the sweep (cwd: tmp_path).
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    mlruns = "sqlite:///mlruns.db"
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()
    assert f"--mlflow {mlruns}" in readme
    run = CliRunner().invoke(main, ["run", "--grid", str(grid), "--data", f"folder={data}", "--results", results,
                                    "--mlflow", mlruns])
    assert run.exit_code == 0, run.output
    # The console: medsweep's lines (log named, extraction, progress, table, answer); Tune's own in the log.
    log = run.output.splitlines()[0].split("Ray's and Tune's own output: ")[1]
    assert "extracted folder x hf-hub:medsweep/derm_vit view 0: 20 images in " in run.output
    assert "trials 8/8, studies 4/4 complete" in run.output and "folder, 14 images (F): " in run.output
    assert "folder: files of a suffix no reader takes, left out: .txt 1" in run.output
    assert "Configuration for experiment" not in run.output and "Configuration for experiment" in open(log).read()
    rows = ResultsStore(results).read_trials().to_pylist()
    assert len(rows) == 8 and {r["status"] for r in rows} <= {"ok", "stopped"} and {r["grid"] for r in rows} == {"derm"}
    hub_rows = [r for r in rows if r["backbones"] == ["hf-hub:medsweep/derm_vit"]]
    digest = hashlib.sha256(open(f"{snapshot}/model.safetensors", "rb").read()).hexdigest()
    assert len(hub_rows) == 4 and {json.loads(r["weights_digests"])["hf-hub:medsweep/derm_vit"] for r in hub_rows} == {digest}
    assert all(r["study_id"].startswith("folder-linear-hf-hub_medsweep_derm_vit-n14-") for r in hub_rows)
    _every_trial_is_an_mlflow_run(mlruns, rows)


def _every_trial_is_an_mlflow_run(uri: str, rows: list[dict]) -> None:
    """--mlflow: a run per trial, study fields and lr as parameters, per-epoch metrics, ids as
    tags; read back by MLflow's own client and search, as a user reads them (MLflow 3 refused
    to read the file: store the README named before, without MLFLOW_ALLOW_FILE_STORE)."""
    import os

    import mlflow

    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    assert len(mlflow.search_runs(experiment_names=["medsweep-derm"])) == len(rows)
    (experiment,) = [e for e in client.search_experiments() if e.name == "medsweep-derm"]
    runs = client.search_runs([experiment.experiment_id])
    by_trial = {r["trial_id"]: r for r in rows}
    assert len(runs) == len(rows)
    for run in runs:
        row = by_trial[run.data.tags["trial_id"]]
        assert run.data.tags["study_id"] == row["study_id"] and run.data.tags["cell_id"] == row["cell_id"]
        params = run.data.params
        assert float(params["lr"]) == pytest.approx(row["lr"]) and params["dataset"] == "folder"
        assert params["backbones"] == row["backbones"][0] and params["n_train"] == "14" and params["fold"] == str(row["fold"])
        history = client.get_metric_history(run.info.run_id, "val_score")
        assert [m.step for m in history] == list(range(1, row["epochs"] + 1))
        assert max(m.value for m in history) == pytest.approx(row["val_score"])
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [m.step for m in history]
        assert run.data.metrics["test_score"] == pytest.approx(row["test_score"])
        assert run.info.status == "FINISHED"
