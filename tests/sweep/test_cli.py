import json

import pytest
from click.testing import CliRunner

from sweep.cli import main
from sweep.store.store import ResultsStore


@pytest.mark.parametrize("args", [[], ["run"], ["plan"], ["results"], ["grids"]])
def test_every_command_explains_itself(args):
    result = CliRunner().invoke(main, args + ["--help"])
    assert result.exit_code == 0
    assert "Usage: main" in result.output or "Usage: sweep" in result.output
    assert len(result.output.splitlines()) > 4


def test_the_cli_starts_without_timm_or_torchvision():
    """Every command imports sweep.cli first: timm and torchvision (with torch._dynamo) cost it
    2 s of CPU before the command did anything. They load where a model or an image pipeline
    is built (a trial, an extraction task, `weights check`), never for names."""
    import subprocess
    import sys

    probe = ("import sys, sweep.cli, sweep.driver.runner; "
             "print(sorted(m for m in ('timm', 'torchvision', 'torch._dynamo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_run_help_names_its_options():
    text = CliRunner().invoke(main, ["run", "--help"]).output
    for option in ("--grid", "--results", "--resume", "--data", "--weights", "--gpus-per-trial", "--address"):
        assert option in text


def test_plan_json_counts_the_paper_grid():
    result = CliRunner().invoke(main, ["plan", "--grid", "paper", "--format", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["studies"] == 1560 and plan["trials"] == 9880
    by = {(r["dataset"], r["mode"]): r for r in plan["by_dataset_mode"]}
    # nih: 6 sizes x 5 folds x 5 backbones linear studies, 8 trials each
    assert by[("nih", "linear")] == {"dataset": "nih", "mode": "linear", "studies": 150, "trials": 1200}


def test_plan_table_prints_studies_and_trials_per_dataset_and_mode():
    result = CliRunner().invoke(main, ["plan", "--grid", "demo"])
    assert result.exit_code == 0
    assert "digits   finetune  10       30" in result.output
    assert "grid demo: 85 studies, 235 trials, 17 cells" in result.output


def test_unknown_grid_is_a_one_line_error_listing_valid_grids():
    result = CliRunner().invoke(main, ["plan", "--grid", "nope"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: unknown grid 'nope'; valid grids: demo, foundation, paper, paper_plus, probes, or a grid file PATH.py"


def test_malformed_key_value_option_is_named():
    result = CliRunner().invoke(main, ["run", "--data", "digits"])
    assert result.exit_code == 2 and "'digits': expected NAME=VALUE" in result.output


def test_unknown_mode_in_gpus_per_trial_is_named():
    result = CliRunner().invoke(main, ["run", "--gpus-per-trial", "probe=0.1"])
    assert result.exit_code == 2 and "unknown mode 'probe'" in result.output
    typo = CliRunner().invoke(main, ["run", "--gpus-per-trial", "liner:dino=0.1"])
    assert typo.exit_code == 2 and "unknown mode 'liner' (did you mean 'linear'?)" in typo.output


@pytest.mark.parametrize("option,value,expected", [
    # 0 CPUs was a ZeroDivisionError once Ray, the image check and extraction had run.
    ("--cpus-per-trial", "linear=0", "CPUs of a trial must be a number above 0"),
    ("--cpus-per-trial", "finetune:dino=-2", "CPUs of a trial must be a number above 0"),
    ("--cpus-per-trial", "linear=nan", "CPUs of a trial must be a number above 0"),
    ("--cpus-per-trial", "linear=two", "expected a number"),
    # A negative GPU share made every trial an error row; Ray takes no 1.5 GPUs.
    ("--gpus-per-trial", "linear=-0.1", "a fraction from 0 to 1 (0: CPU only) or a whole number"),
    ("--gpus-per-trial", "linear=1.5", "a fraction from 0 to 1 (0: CPU only) or a whole number"),
    ("--gpus-per-trial", "dvme=inf", "a fraction from 0 to 1 (0: CPU only) or a whole number"),
])
def test_a_resource_out_of_range_is_refused_when_parsed_before_anything_starts(tmp_path, option, value, expected):
    results = tmp_path / "r"
    result = CliRunner().invoke(main, ["run", "--grid", "demo", option, value, "--results", str(results)])
    assert result.exit_code == 2, result.output
    assert f"'{value}'" in result.output and expected in result.output and "Traceback" not in result.output
    assert not results.exists()  # refused before the store, Ray or any extraction


COMMANDS_ON_A_STORE = [["results"], ["results", "--level", "trials"], ["report", "--out", "REPORT"],
                      ["store", "check"], ["run", "--grid", "demo"]]


@pytest.mark.parametrize("command", COMMANDS_ON_A_STORE, ids=lambda c: " ".join(c[:2]))
def test_a_damaged_store_json_is_one_line_naming_it_in_every_command(tmp_path, command):
    store = tmp_path / "r"
    store.mkdir()
    (store / "store.json").write_text('{"schema_version": 3, "gri')  # cut short by a copy
    args = [a.replace("REPORT", str(tmp_path / "report")) for a in command]
    result = CliRunner().invoke(main, [*args, "--results", str(store)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: {store / 'store.json'}: damaged, not JSON") and "Traceback" not in result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("command", COMMANDS_ON_A_STORE + [["cache", "ls"]], ids=lambda c: " ".join(c[:2]))
def test_a_results_uri_of_an_unknown_scheme_is_one_line_naming_it(tmp_path, command):
    args = [a.replace("REPORT", str(tmp_path / "report")) for a in command]
    result = CliRunner().invoke(main, [*args, "--results", "foo://bucket/r"])
    assert result.exit_code == 2, result.output
    assert "foo://bucket/r" in result.output and "not a path or a URI this machine can open" in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_a_damaged_file_is_named_on_the_terminal_when_a_sweep_is_refused(tmp_path):
    """During `sweep run` stderr is the run's log: the warning reached the terminal only in
    the closing read, and never when the run was refused before it."""
    from sweep.grids import load_grid

    study = load_grid("demo")[0]
    store = ResultsStore(str(tmp_path / "r"))
    store.open_for("demo")
    store.write_trial({"study_id": study.study_id, "trial_id": "t1", "status": "ok", "lr": 1e-3, "val_score": 0.9})
    store.write_trial({"study_id": study.study_id, "trial_id": "t2", "status": "ok", "lr": 1e-3, "val_score": 0.8})
    damaged = store.trial_path(study.study_id, "t2")
    with open(damaged, "r+b") as f:
        f.truncate(20)
    result = CliRunner().invoke(main, ["run", "--grid", "demo", "--results", store.root])
    assert result.exit_code == 2 and "pass --resume" in result.stderr
    assert f"warning: {damaged}: unreadable" in result.stderr
    log = next((tmp_path / "r" / "logs").iterdir()).read_text()
    assert f"warning: {damaged}: unreadable" in log  # and in the run's log, where it was before


def test_results_of_a_directory_that_is_no_store(tmp_path):
    result = CliRunner().invoke(main, ["results", "--results", str(tmp_path)])
    assert result.exit_code == 2 and "is not a medsweep results directory" in result.output


def test_missing_weights_fail_before_anything_runs(tmp_path):
    result = CliRunner().invoke(main, ["run", "--grid", "paper", "--results", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "weights missing for: dino (published file: dino_deitsmall8_pretrain.pth)" in result.output
    assert not (tmp_path / "r").exists()


def test_plan_lists_the_dvme_ablation_form_and_attention_bias_of_every_study():
    result = CliRunner().invoke(main, ["plan", "--grid", "paper", "--format", "json", "--studies",
                                       "--where", "mode=dvme", "--where", "dataset=nih", "--where", "subset=S"])
    studies = json.loads(result.output)["study_list"]
    assert {(s["attention"], s["attention_form"], s["qkv_bias"], s["no_attention_head"]) for s in studies} == {
        (True, "listing", False, "linear"), (False, "listing", False, "linear")}
    text = CliRunner().invoke(main, ["plan", "--grid", "paper_plus", "--studies", "--where", "mode=dvme"]).output
    assert "qkv_bias" in text and "no_attention_head" in text and " mlp " in text


def test_where_selects_a_part_of_a_grid():
    result = CliRunner().invoke(main, ["plan", "--grid", "paper", "--format", "json",
                                       "--where", "dataset=pneumonia", "--where", "mode=linear,dvme",
                                       "--where", "subset=S,M,F"])
    plan = json.loads(result.output)
    # pneumonia S/M/F x 5 folds x (5 linear backbones + 2 dvme variants)
    assert plan["datasets"] == ["pneumonia"] and plan["studies"] == 3 * 5 * 7
    dino = json.loads(CliRunner().invoke(main, ["plan", "--grid", "paper", "--format", "json", "--where", "backbones=dino"]).output)
    # every study that uses dino: its linear and finetune studies and both DVME variants
    assert dino["studies"] == 26 * 5 * 4


def test_where_errors_name_the_field_or_the_empty_result():
    out = CliRunner().invoke(main, ["plan", "--where", "colour=red"]).output
    assert "unknown field; valid fields:" in out
    out = CliRunner().invoke(main, ["plan", "--where", "dataset=aptos"]).output
    assert "keeps none of the grid's 85 studies" in out


def test_an_unusable_results_directory_is_a_clear_error_before_anything_runs(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["run", "--grid", "demo", "--results", str(blocker / "results")])
    assert result.exit_code == 2 and "is not writable" in result.output and "Traceback" not in result.output


def test_a_nearly_full_disk_is_refused_before_anything_runs(tmp_path):
    import subprocess

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        result = CliRunner().invoke(main, ["run", "--grid", "demo", "--results", str(tiny / "results")])
        assert result.exit_code == 2 and "MiB free; a sweep needs at least 64 MiB" in result.output
    finally:
        subprocess.run(["umount", str(tiny)], check=True)


@pytest.mark.parametrize(
    "option,message",
    [
        ("--weights=resnet5=x.pth", "unknown backbone 'resnet5' (did you mean 'resnet50'"),
        ("--data=aptoss=/data/aptos", "unknown dataset 'aptoss' (did you mean 'aptos'?); valid datasets: aptos, digits"),
    ],
)
def test_a_data_or_weights_name_that_is_no_dataset_or_backbone_is_named_not_dropped(tmp_path, option, message):
    result = CliRunner().invoke(main, ["run", "--grid", "demo", option, "--results", str(tmp_path / "r")])
    assert result.exit_code == 2 and message in result.output


def test_subsets_larger_than_the_pool_name_the_dataset_its_size_and_the_subsets(tmp_path):
    from tests import layouts

    layouts.aptos(str(tmp_path / "aptos"))  # 10 training images
    result = CliRunner().invoke(main, ["run", "--grid", "paper", "--where", "dataset=aptos", "--where", "mode=linear",
                                       "--where", "backbones=random", "--where", "subset=S,M",
                                       "--data", f"aptos={tmp_path / 'aptos'}", "--results", str(tmp_path / "r")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "the aptos training pool holds 10 images, fewer than the subset(s) S (50), M (500)" in result.output
