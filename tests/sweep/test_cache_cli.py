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
    typo = run("cache", "rm", "--cache", cache, "--backbone", "test_convnxt")  # removed nothing, unsaid, before
    assert typo.exit_code == 2 and "unknown backbone 'test_convnxt' (did you mean 'test_convnext' or " in typo.output
    assert "removed 1" in run("cache", "rm", "--cache", cache, "--backbone", "test_convnext").output
    assert [e["backbone"] for e in json.loads(run("cache", "ls", "--cache", cache, "--json").output)] == ["test_resnet"]
    assert "removed 1" in run("cache", "rm", "--cache", cache, "--all").output


def test_embed_augmented_views_in_float16(tmp_path):
    from tests import layouts

    layouts.patchcam(str(tmp_path / "pc"), labels=(0, 1) * 4, n_test=2)
    cache = str(tmp_path / "cache")
    run = lambda *a: CliRunner().invoke(main, list(a))  # noqa: E731
    result = run("embed", "--dataset", "patchcam", "--data", f"patchcam={tmp_path / 'pc'}", "--backbone", "test_resnet",
                 "--views", "2", "--dtype", "float16", "--cache", cache)
    assert result.exit_code == 0, result.output
    entries = json.loads(run("cache", "ls", "--cache", cache, "--json").output)
    assert sorted((e["view"], e["dtype"], e["rows"]) for e in entries) == [(0, "float16", 10), (1, "float16", 8), (2, "float16", 8)]
    assert all(e["images_per_s"] > 0 for e in entries)
    refused = run("embed", "--dataset", "digits", "--backbone", "test_resnet", "--views", "2", "--cache", cache)
    assert refused.exit_code == 2 and "digits has no training augmentation" in refused.output


def test_plan_with_views_on_a_grid_without_augmentation_names_the_problem():
    result = CliRunner().invoke(main, ["plan", "--grid", "demo", "--views", "3"])
    assert result.exit_code == 2 and "views 3" in result.output and "digits has no training augmentation" in result.output
    ok = CliRunner().invoke(main, ["plan", "--grid", "demo", "--embedding-dtype", "float16", "--format", "json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["studies"] == 85


def test_embed_decodes_jpegs_where_asked_and_cache_ls_says_which(tmp_path):
    from tests import layouts

    layouts.pneumonia(str(tmp_path / "px"))
    run = lambda *a: CliRunner().invoke(main, list(a))  # noqa: E731
    for decode in ("device", "workers"):
        cache = str(tmp_path / decode)
        result = run("embed", "--dataset", "pneumonia", "--data", f"pneumonia={tmp_path / 'px'}", "--backbone",
                     "test_resnet", "--decode", decode, "--workers", "0", "--cache", cache)
        assert result.exit_code == 0, result.output
        [entry] = json.loads(run("cache", "ls", "--cache", cache, "--json").output)
        assert entry["decode"] == {"device": "device: JPEG by libjpeg-turbo (TorchCodec), other formats by Pillow in workers",
                                   "workers": "workers (Pillow)"}[decode]
        assert entry["device"] == "cpu fp32"
    refused = run("embed", "--dataset", "digits", "--backbone", "test_resnet", "--decode", "gpu")
    assert refused.exit_code == 2 and "'gpu' is not one of 'auto', 'workers', 'device'" in refused.output
