import json
import os

import pytest

from click.testing import CliRunner

from sweep.cli import main
from tests import layouts


def _check(*args):
    result = CliRunner().invoke(main, ["data", "check", *args])
    return result.exit_code, result.output


def test_json_report_of_a_clean_dataset(tmp_path):
    layouts.pneumonia(str(tmp_path))
    code, out = _check("pneumonia", "--root", str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 0 and report["usable"]
    assert report["dataset"] == "pneumonia" and report["train"] == 9 and report["test"] == 3
    assert report["train_classes"] == {"NORMAL": 4, "PNEUMONIA": 5}
    assert report["test_labels"] is True and report["groups"] == 7 and report["problems"] == []


def test_hidden_test_labels_and_no_groups(tmp_path):
    layouts.aptos(str(tmp_path))
    report = json.loads(_check("aptos", "--root", str(tmp_path), "--json")[1])
    assert report["test_labels"] is False and report["groups"] is None
    assert report["train_classes"] == {"0": 3, "1": 2, "2": 2, "3": 1, "4": 2}


def test_every_problem_is_named_and_the_exit_code_says_unusable(tmp_path):
    ids = layouts.aptos(str(tmp_path))
    os.remove(tmp_path / "train_images" / f"{ids[0]}.png")
    bad = tmp_path / "train_images" / f"{ids[1]}.png"
    bad.write_bytes(bad.read_bytes()[:100])
    code, out = _check("aptos", "--root", str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 1 and not report["usable"]
    assert report["train"] == 9  # the missing file is left out, and said
    assert any(f"{ids[0]}.png: file not found" in p for p in report["problems"])
    assert any(f"{ids[1]}.png: not a readable image" in p for p in report["problems"])


def test_text_report_and_unusable_layout(tmp_path):
    layouts.nih(str(tmp_path))
    code, out = _check("nih", "--root", str(tmp_path))
    assert code == 0 and "training pool: 6" in out and "patients: 5" in out
    code, out = _check("aptos", "--root", str(tmp_path))
    assert code == 1 and "train.csv: file not found" in out


def test_data_root_from_the_environment(tmp_path, monkeypatch):
    layouts.medmnist(str(tmp_path / "medmnist.npz"))
    monkeypatch.setenv("MEDSWEEP_DATA", str(tmp_path))
    report = json.loads(_check("medmnist", "--json")[1])
    assert report["usable"] and report["train"] == 26


def test_unknown_dataset_lists_valid_ones():
    code, out = _check("cifar", "--root", "/tmp")
    assert code == 2 and "unknown dataset 'cifar'; valid datasets:" in out


@pytest.mark.parametrize("name,command", [
    ("patchcam", "kaggle competitions download -c histopathologic-cancer-detection"),
    ("aptos", "kaggle competitions download -c aptos2019-blindness-detection"),
    ("pneumonia", "kaggle datasets download -d paultimothymooney/chest-xray-pneumonia"),
    ("nih", "gsutil cp -r gs://gcs-public-data--healthcare-nih-chest-xray-labels/four_findings_expert_labels"),
])
def test_a_missing_or_empty_folder_says_where_the_public_data_set_is(tmp_path, name, command):
    missing = CliRunner().invoke(main, ["data", "check", name, "--root", str(tmp_path / "absent"), "--json"])
    assert missing.exit_code == 1 and any(command in line for line in json.loads(missing.output)["where_to_get"])
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(main, ["data", "check", name, "--root", str(tmp_path / "empty")])
    assert empty.exit_code == 1 and command in empty.output
    assert sum(command in line for line in empty.output.splitlines()) == 1  # said once


def test_a_sweep_without_its_data_names_where_to_get_it(tmp_path):
    result = CliRunner().invoke(main, ["run", "--grid", "paper", "--where", "dataset=aptos", "--where", "backbones=random",
                                       "--results", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "give its folder with --data aptos=ROOT" in result.output
    assert "kaggle competitions download -c aptos2019-blindness-detection" in result.output
