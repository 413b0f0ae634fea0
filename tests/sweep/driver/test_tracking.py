"""--mlflow: every trial an MLflow run in a local file store, through Tune's MLflow callback."""

import pytest

from sweep.driver.runner import run_sweep
from sweep.spec import StudySpec
from sweep.store.store import ResultsStore
from tests.contexts import run_options

mlflow = pytest.importorskip("mlflow")


def test_each_trial_is_a_run_with_study_fields_per_epoch_metrics_and_ids(ray_local, tmp_path):
    studies = [StudySpec(grid="tracked", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S",
                         n_train=60, fold=f, n_trials=2, max_epochs=3, grace_period=3, batch_size=32, cpus=0.5,
                         lr_min=1e-3, lr_max=1e-1) for f in (0, 1)]
    uri = (tmp_path / "mlruns").as_uri()
    results = str(tmp_path / "results")
    run_sweep(studies, run_options(results=results, mlflow=uri, verbose=0))
    rows = {r["trial_id"]: r for r in ResultsStore(results).read_trials().to_pylist()}
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "medsweep-tracked"]
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == len(rows) == 4
    for run in runs:
        row = rows[run.data.tags["trial_id"]]
        assert run.data.tags["study_id"] == row["study_id"] and run.data.tags["cell_id"] == row["cell_id"]
        params = run.data.params
        assert float(params["lr"]) == pytest.approx(row["lr"]) and params["dataset"] == "digits"
        assert params["backbones"] == "test_resnet" and params["n_train"] == "60" and params["fold"] == str(row["fold"])
        history = client.get_metric_history(run.info.run_id, "val_score")
        assert [m.step for m in history] == list(range(1, row["epochs"] + 1))
        assert max(m.value for m in history) == pytest.approx(row["val_score"])
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [m.step for m in history]
        assert run.data.metrics["test_score"] == pytest.approx(row["test_score"])
        assert run.info.status == "FINISHED"


def test_without_mlflow_installed_the_option_is_a_named_error(monkeypatch, tmp_path):
    import sys

    from trainables.errors import UserError

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    study = StudySpec(grid="tracked", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S",
                      n_train=60, fold=0)
    with pytest.raises(UserError, match=r"--mlflow needs MLflow: pip install -e '.\[mlflow\]'"):
        run_sweep([study], run_options(results=str(tmp_path / "r"), mlflow="file:./x", verbose=0))
    assert not (tmp_path / "r").exists()
