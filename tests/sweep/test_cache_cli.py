import json

from click.testing import CliRunner

from sweep.cli import main


def test_embed_ls_and_rm(tmp_path):
    cache = str(tmp_path / "cache")
    run = lambda *a: CliRunner().invoke(main, list(a))
    result = run("embed", "--dataset", "digits", "--backbone", "test_resnet", "--backbone", "test_convnext", "--cache", cache)
    assert result.exit_code == 0, result.output
    entries = json.loads(run("cache", "ls", "--cache", cache, "--json").output)
    assert sorted((e["backbone"], e["rows"], e["dim"]) for e in entries) == [("test_convnext", 1797, 64), ("test_resnet", 1797, 96)]
    again = run("embed", "--dataset", "digits", "--backbone", "test_resnet", "--cache", cache)
    assert again.output.split(": ")[1].strip() == next(e["path"] for e in entries if e["backbone"] == "test_resnet")
    assert run("cache", "rm", "--cache", cache).exit_code == 2  # no filter, no --all: refused
    assert "removed 1" in run("cache", "rm", "--cache", cache, "--backbone", "test_convnext").output
    assert [e["backbone"] for e in json.loads(run("cache", "ls", "--cache", cache, "--json").output)] == ["test_resnet"]
    assert "removed 1" in run("cache", "rm", "--cache", cache, "--all").output
