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


def _folder_csv(root, train_lines, test_rows=(("t0.png", "a"), ("t1.png", "b"))):
    """A folder dataset listed by train.csv (these lines, as a user's editor left them) and
    test.csv (path,label); the images i0..i5.png, t0, t1 written."""
    for name in [f"i{i}.png" for i in range(6)] + [r[0] for r in test_rows]:
        layouts.image(os.path.join(root, name))
    layouts.write_csv(os.path.join(root, "test.csv"), ["path", "label"], test_rows)
    with open(os.path.join(root, "train.csv"), "w", newline="") as f:
        f.write("path,label\n" + "".join(line + "\n" for line in train_lines))


def _folder_grid(tmp_path):
    grid = tmp_path / "mine.py"
    grid.write_text("from sweep.spec import StudySpec\nSTUDIES = [StudySpec(grid='mine', dataset='folder', "
                    "backbones=('test_resnet',), mode='linear', subset='F', n_train=None, fold=0, n_folds=2)]\n")
    return str(grid)


GOOD_ROWS = [f"i{i}.png,{'ab'[i % 2]}" for i in range(6)]


@pytest.mark.parametrize("rows,problem", [
    # An unquoted comma in a value: an AttributeError before.
    (GOOD_ROWS + ["x,y.png,a"], "train.csv line 8: 3 fields where the header has 2 (path, label); a value holding a comma must be quoted"),
    (GOOD_ROWS + ["only.png"], "train.csv line 8: 1 fields where the header has 2"),
    # A blank label became a class '' of its own.
    (GOOD_ROWS + ["i9.png,"], "train.csv line 8: label is blank"),
    (GOOD_ROWS + [",a"], "train.csv line 8: path is blank"),
    (GOOD_ROWS + ["i0.png,b"], "train.csv: path 'i0.png' on line 8 repeats line 2"),
])
def test_a_malformed_csv_row_is_a_problem_named_by_line_and_left_out(tmp_path, rows, problem):
    root = tmp_path / "data"
    for name in ("i9.png", "y.png", "only.png"):
        layouts.image(str(root / name))
    _folder_csv(str(root), rows)
    code, out = _check("folder", "--root", str(root), "--json")
    report = json.loads(out)
    assert code == 1 and not report["usable"]
    assert any(problem in p for p in report["problems"]), report["problems"]
    assert report["train"] == 6 and set(report["train_classes"]) == {"a", "b"}  # the bad row left out, no class ''
    # A sweep refuses it before anything starts: one line naming it, exit 2.
    run = CliRunner().invoke(main, ["run", "--grid", _folder_grid(tmp_path), "--data", f"folder={root}",
                                    "--results", str(tmp_path / "r")])
    assert run.exit_code == 2 and problem in run.output and "Traceback" not in run.output, run.output


def test_a_csv_that_is_not_utf8_is_one_line_naming_it(tmp_path):
    root = tmp_path / "data"
    _folder_csv(str(root), GOOD_ROWS)
    (root / "train.csv").write_bytes("path,label\ni0.png,b\u00e9nin\n".encode("latin-1"))
    code, out = _check("folder", "--root", str(root), "--json")
    problem = f"{root / 'train.csv'}: not UTF-8 text (byte 0xe9 at offset 19); save it as UTF-8"
    assert code == 1 and any(problem in p for p in json.loads(out)["problems"])
    for command in (["run", "--results", str(tmp_path / "r")], ["plan"]):
        result = CliRunner().invoke(main, [*command, "--grid", _folder_grid(tmp_path), "--data", f"folder={root}"])
        assert problem in result.output and "Traceback" not in result.output and "UnicodeDecodeError" not in result.output
        assert result.exit_code == (2 if command[0] == "run" else 1), result.output


def test_files_no_reader_takes_are_counted_by_suffix_never_dropped_unsaid(tmp_path):
    root = tmp_path / "derm"
    layouts.folder(str(root))
    for name in ("scan.gif", "notes.txt", "README"):
        (root / "train" / "benign" / name).write_bytes(b"x")
    (root / "test" / "malignant" / "other.gif").write_bytes(b"x")
    (root / "train" / "benign" / ".DS_Store").write_bytes(b"x")  # not data
    code, out = _check("folder", "--root", str(root), "--json")
    report = json.loads(out)
    assert code == 0 and report["not_read"] == {".gif": 2, ".txt": 1, "(no suffix)": 1} and report["train"] == 8
    line = "files of a suffix no reader takes, left out: (no suffix) 1, .gif 2, .txt 1"
    assert line in _check("folder", "--root", str(root))[1]
    plan = CliRunner().invoke(main, ["plan", "--grid", _folder_grid(tmp_path), "--data", f"folder={root}"])
    assert plan.exit_code == 0 and f"folder: {line}" in plan.output


def test_nih_image_names_found_twice_are_one_file_when_identical_else_a_problem(tmp_path):
    layouts.nih(str(tmp_path))
    first = tmp_path / "images_001" / "images" / "00000001_000.png"
    copy = tmp_path / "copy" / "images_001" / "images" / "00000001_000.png"  # the archive unpacked twice
    copy.parent.mkdir(parents=True)
    copy.write_bytes(first.read_bytes())
    code, out = _check("nih", "--root", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["train"] == 6
    copy.write_bytes(first.read_bytes()[:-1] + b"\0")  # another file of the same name: which one?
    code, out = _check("nih", "--root", str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 1 and report["train"] == 5
    assert any(f"image '00000001_000.png' is 2 different files: {copy}, {first}" in p or
               f"image '00000001_000.png' is 2 different files: {first}, {copy}" in p for p in report["problems"])
