"""--mlflow without MLflow installed. (What a run logs is checked on the end-to-end sweep of
tests/test_own_data.py, which runs with --mlflow into a local file store.)"""

import pytest

from sweep.driver.runner import run_sweep
from sweep.spec import StudySpec
from tests.contexts import run_options


def test_without_mlflow_installed_the_option_is_a_named_error(monkeypatch, tmp_path):
    import sys

    from trainables.errors import UserError

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    study = StudySpec(grid="tracked", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S",
                      n_train=60, fold=0)
    with pytest.raises(UserError, match=r"--mlflow needs MLflow: pip install -e '.\[mlflow\]'"):
        run_sweep([study], run_options(results=str(tmp_path / "r"), mlflow="file:./x", verbose=0))
    assert not (tmp_path / "r").exists()
