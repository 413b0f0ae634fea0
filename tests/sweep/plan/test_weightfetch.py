"""`sweep weights fetch` from file:// addresses (a mirror built here): fetched, resumed, checked
whole, recorded; offline and broken files are one-line errors naming the address."""

import hashlib
import json

import pytest
import timm
import torch
from click.testing import CliRunner

from sweep.cli import main


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A folder holding the supervised backbone's file under its published name."""
    folder = tmp_path_factory.mktemp("mirror")
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet50", pretrained=False, num_classes=1000).state_dict(),
               folder / "resnet50-0676ba61.pth")
    return folder


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def fetch(*args):
    return CliRunner().invoke(main, ["weights", "fetch", *args])


def test_fetch_downloads_checks_records_and_prints_the_lines_to_use(mirror, tmp_path):
    to = tmp_path / "weights"
    result = fetch("supervised", "--to", str(to), "--mirror", mirror.as_uri())
    assert result.exit_code == 0, result.output
    file = to / "resnet50-0676ba61.pth"
    assert sha256(file) == sha256(mirror / "resnet50-0676ba61.pth") and not (to / "resnet50-0676ba61.pth.part").exists()
    record = json.loads((to / "medsweep-weights.json").read_text())
    assert record["supervised"]["sha256"] == sha256(file) and record["supervised"]["format"] == "state_dict"
    assert f"--weights supervised={file}" in result.stdout and f"export MEDSWEEP_WEIGHTS={to}" in result.stdout
    again = fetch("supervised", "--to", str(to), "--mirror", mirror.as_uri())
    assert again.exit_code == 0 and "loads whole; not fetched" in again.stderr


def test_a_broken_off_download_resumes_from_the_bytes_already_there(mirror, tmp_path):
    source = (mirror / "resnet50-0676ba61.pth").read_bytes()
    to = tmp_path / "weights"
    to.mkdir()
    (to / "resnet50-0676ba61.pth.part").write_bytes(source[: len(source) // 2])
    result = fetch("supervised", "--to", str(to), "--mirror", mirror.as_uri())
    assert result.exit_code == 0, result.output
    assert f"resuming resnet50-0676ba61.pth at {len(source) // 2 / 1e6:.1f} MB" in result.stderr
    assert (to / "resnet50-0676ba61.pth").read_bytes() == source


def test_a_file_that_does_not_load_is_refused_and_not_kept(tmp_path):
    bad = tmp_path / "mirror"
    bad.mkdir()
    (bad / "dino_deitsmall8_pretrain.pth").write_bytes(b"<html>not found</html>")
    to = tmp_path / "weights"
    result = fetch("dino", "--to", str(to), "--mirror", bad.as_uri())
    assert result.exit_code == 2
    assert f"{bad.as_uri()}/dino_deitsmall8_pretrain.pth: the downloaded file does not load as 'dino'" in result.output
    assert not list(to.iterdir())


def test_offline_is_one_line_naming_the_address(tmp_path):
    result = fetch("dino", "--to", str(tmp_path), "--mirror", "http://127.0.0.1:9")
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: cannot fetch http://127.0.0.1:9/dino_deitsmall8_pretrain.pth: ")


def test_only_published_files_can_be_fetched(tmp_path):
    result = fetch("random", "--to", str(tmp_path))
    assert result.exit_code == 2
    assert "backbone 'random' has no published file to fetch; fetchable: dino, simclr, supervised, swav" in result.output
