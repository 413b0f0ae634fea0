"""The paper grid on real layouts with fewer usable images than the paper counted: F is the
whole pool as the data holds it, in the plan and in the run."""

import json
import os

import pytest
from click.testing import CliRunner

from sweep.cli import main
from sweep.store.store import ResultsStore
from tests import layouts


@pytest.fixture(scope="module")
def nih(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("nih"))
    layouts.nih_pool(root, usable=30, n_test=10)
    return root


def test_plan_resolves_f_from_the_data_and_writes_nothing(nih, tmp_path, monkeypatch):
    before = sorted(os.listdir(nih))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plan", "--grid", "paper", "--where", "dataset=nih", "--where", "subset=F",
                                       "--where", "backbones=random", "--data", f"nih={nih}", "--format", "json",
                                       "--studies"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["preflight"]["datasets"]["nih"]["pool"] == 30 and plan["preflight"]["problems"] == []
    assert plan["preflight"]["datasets"]["nih"]["excluded"]
    studies = plan["study_list"]
    # linear + finetune on random, 5 folds each
    assert len(studies) == 10 and {s["subset"] for s in studies} == {"F"} and {s["n_train"] for s in studies} == {30}
    linear = [s for s in studies if s["mode"] == "linear"]
    assert {s["views"] for s in linear} == {4} and all(s["study_id"].startswith("nih-linear-random-n30-") for s in linear)
    assert sorted(os.listdir(nih)) == before and os.listdir(tmp_path) == []


def test_plan_names_every_problem_of_a_preflight(nih, tmp_path):
    weights = tmp_path / "dino.pth"
    weights.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(main, ["plan", "--grid", "paper", "--where", "dataset=nih", "--where", "mode=linear",
                                       "--data", f"nih={nih}", "--weights", f"dino={weights}", "--format", "json"])
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["preflight"]["problems"]
    # The sizes M (200) and 150, 100, 50 do not fit a pool of 30; weights: one unreadable, three missing.
    assert any("holds 30 images, fewer than the subset(s)" in p for p in problems)
    assert any(p.startswith(f"--weights dino={weights}:") for p in problems)
    assert sum(p.startswith(("supervised:", "swav:", "simclr:")) and "no weight file" in p for p in problems) == 3


def test_f_is_the_counted_pool_even_when_other_sizes_do_not_fit_it(nih):
    """The sizes above 30 are problems; F was left at the published 2,412 while they were."""
    result = CliRunner().invoke(main, ["plan", "--grid", "paper", "--where", "dataset=nih", "--where", "backbones=random",
                                       "--data", f"nih={nih}", "--format", "json", "--studies"])
    assert result.exit_code == 1
    plan = json.loads(result.stdout)
    assert any("holds 30 images, fewer than the subset(s)" in p for p in plan["preflight"]["problems"])
    assert plan["preflight"]["datasets"]["nih"]["pool"] == 30
    assert {s["n_train"] for s in plan["study_list"] if s["subset"] == "F"} == {30}


@pytest.mark.slow
def test_the_paper_grid_runs_f_on_the_whole_pool_of_the_data(nih, tmp_path, ray_local):
    results = str(tmp_path / "results")
    result = CliRunner().invoke(main, ["run", "--grid", "paper", "--where", "dataset=nih", "--where", "subset=F",
                                       "--where", "mode=linear", "--where", "backbones=random", "--where", "fold=0",
                                       "--data", f"nih={nih}", "--results", results, "--quiet"])
    assert result.exit_code == 0, result.output
    rows = ResultsStore(results).read_trials().to_pylist()
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    assert {(r["subset"], r["n_train"], r["views"]) for r in rows} == {("F", 30, 4)}
    # Kaiming-random ResNet-50 features, 4 augmented views + the evaluation view cached.
    keys = json.loads(rows[0]["embedding_keys"])["random"]
    assert len(keys) == 5 and json.loads(rows[0]["weights_digests"])["random"] == "init-seed0-zero_init_last=False"
    assert "linear" in result.output and " F " in result.output
