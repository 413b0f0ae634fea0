import json

import pytest
from click.testing import CliRunner

from sweep.cli import main
from sweep.plan.estimate import arch_key, calibrate, estimate, head_key, measured_costs
from sweep.spec import SpecError, StudySpec

COMMON = dict(grid="g", dataset="digits", subset="S", n_train=50, fold=0, n_folds=5, max_epochs=10, n_trials=2,
              batch_size=32)


def _costs():
    # Hand-set costs: every figure below follows from the documented model.
    return {
        "device": "test",
        "forward_s": {arch_key("test_resnet", 32): 0.01},
        "train_s": {arch_key("test_resnet", 32): 0.03},
        "head_s": {"linear:96": 0.001},
        "dims": {arch_key("test_resnet", 32): 96},
    }


def test_the_cost_model_of_each_part():
    linear = StudySpec(backbones=("test_resnet",), mode="linear", **COMMON)
    finetune = StudySpec(backbones=("test_resnet",), mode="finetune", **COMMON)
    parts = {p["part"]: p for p in estimate([linear, finetune], _costs())["parts"]}
    # extraction: (the 50 drawn of the 1,257 pool images + 540 test) images x 0.01 s
    assert parts["extraction"]["count"] == 1
    assert parts["extraction"]["seconds"] == pytest.approx((50 + 540) * 0.01, abs=0.1)
    # finetune: 2 trials x (10 epochs x (40 x 0.03 + 10 x 0.01) + 5 test scorings x 540 x 0.01)
    assert parts["finetune"]["seconds"] == pytest.approx(2 * (10 * (40 * 0.03 + 10 * 0.01) + 5 * 540 * 0.01), abs=0.1)
    # linear: 2 trials x (10 epochs x 50 rows + 5 x 540) x 0.001
    assert parts["linear"]["seconds"] == pytest.approx(2 * (10 * 50 + 5 * 540) * 0.001, abs=0.1)
    assert parts["linear"]["count"] == 2 and parts["linear"]["source"] == "calibration"


def test_augmented_views_are_their_own_extraction_part_and_only_drawn_rows_are_extracted():
    """K views cost K passes over the drawn training rows (no test set) beside the evaluation
    pass; the paper grid's 4 views show as their own part of the estimate. PatchCam's
    subsets are nested: its 500 and 50,000 image subsets draw 50,000 of the 220,025 images."""
    import dataclasses

    digits = StudySpec(backbones=("test_resnet",), mode="linear", **COMMON)
    patch = [StudySpec(backbones=("test_resnet",), mode="linear",
                       **{**COMMON, "dataset": "patchcam", "views": 4, "n_train": n, "fold": f})
             for n in (500, 50_000) for f in range(5)]
    est = estimate([digits, *patch], {**_costs(), "forward_s": {
        arch_key("test_resnet", 32): 0.01, arch_key("test_resnet", 96): 0.02}, "head_s": {"linear:96": 0.001,
        "linear:?": 0.001}})
    parts = {p["part"]: p for p in est["parts"]}
    # Images per (dataset, backbone, view): view 0 the drawn rows and the test set, augmented
    # views the drawn rows; digits' one fold of 5 leaves its 10 validation images out of them.
    assert [(e["dataset"], e["view"], e["images"]) for e in est["extractions"]] == [
        ("digits", 0, 50 + 540), ("patchcam", 0, 50_000 + 57_458)] + [("patchcam", v, 50_000) for v in (1, 2, 3, 4)]
    assert parts["extraction, augmented views"]["count"] == 4
    # 4 views x 50,000 drawn PatchCam training images x 0.02 s
    assert parts["extraction, augmented views"]["seconds"] == pytest.approx(4 * 50_000 * 0.02, rel=1e-6)
    assert parts["extraction"]["count"] == 2  # digits and patchcam, evaluation view each
    assert dataclasses.replace(patch[0], views=1).study_id != patch[0].study_id


def test_drawn_rows_of_a_key():
    from sweep.plan.estimate import drawn_rows

    def study(n, fold, seed=0):
        return StudySpec(backbones=("test_resnet",), mode="linear", **{**COMMON, "n_train": n, "fold": fold,
                                                                        "seed": seed})

    assert drawn_rows([study(50, 0), study(200, 0), study(200, 1)], 0, 1257) == 200
    assert drawn_rows([study(200, 0)], 1, 1257) == 160  # one fold trains on 4/5 of its subset
    assert drawn_rows([study(200, 0), study(200, 0, seed=1)], 0, 1257) == 400  # two seeds: two draws
    assert drawn_rows([study(1000, 0), study(1000, 0, seed=1)], 0, 1257) == 1257  # never past the pool


def test_measured_costs_replace_the_calibrated_ones_they_cover():
    linear = StudySpec(backbones=("test_resnet",), mode="linear", **COMMON)
    rows = [{"status": "ok", "epochs": 5, "wall_s": 10.0, "n_train": 50, "dataset": "digits", "mode": "linear",
             "backbone": "test_resnet"}]
    cache = [{"rows": 1797, "extract_s": 3.594, "dataset": "digits", "backbone": "test_resnet"}]
    parts = {p["part"]: p for p in estimate([linear], _costs(), measured_costs(rows, cache))["parts"]}
    assert parts["linear"]["source"] == "measured"
    assert parts["linear"]["seconds"] == pytest.approx(2 * 10 * 50 * (10 / 250), abs=0.1)
    assert parts["extraction"]["seconds"] == pytest.approx(3.594 / 1797 * (50 + 540), abs=0.05)


def test_a_costs_file_without_a_needed_architecture_names_it():
    study = StudySpec(backbones=("test_vit",), mode="finetune", **COMMON)
    with pytest.raises(SpecError, match=rf"costs file c.json has no forward cost for {arch_key('test_vit', 32)}"):
        estimate([study], _costs(), source="costs file c.json")


def test_calibration_times_every_architecture_and_head_of_the_grid():
    studies = [StudySpec(backbones=("test_resnet", "test_vit"), mode="dvme", proj_dim=16, **COMMON),
               StudySpec(backbones=("test_vit",), mode="finetune", **COMMON)]
    costs = calibrate(studies, device="cpu")
    assert set(costs["forward_s"]) == {arch_key("test_resnet", 32), arch_key("test_vit", 32)}
    assert set(costs["train_s"]) == {arch_key("test_vit", 32)}
    assert set(costs["head_s"]) == {head_key(studies[0], costs["dims"])} == {"dvme:96,64:p16:token"}
    # Training a step costs more than a forward of the same architecture.
    assert costs["train_s"][arch_key("test_vit", 32)] > costs["forward_s"][arch_key("test_vit", 32)]


def test_calibration_divides_the_timed_span_by_every_image_it_ran(monkeypatch):
    """A clock that advances exactly 1 s per reading: each cost must be 1 s over the images
    of its timed repeats (CPU: 2 repeats of 4 images; a head: one epoch of 2,048 rows)."""
    from types import SimpleNamespace

    import sweep.plan.estimate

    ticks = iter(range(10**6))
    monkeypatch.setattr(sweep.plan.estimate, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    studies = [StudySpec(backbones=("test_resnet", "test_vit"), mode="dvme", proj_dim=16, **COMMON),
               StudySpec(backbones=("test_vit",), mode="finetune", **COMMON)]
    costs = calibrate(studies, device="cpu")
    assert set(costs["forward_s"].values()) == {1 / 8} and set(costs["train_s"].values()) == {1 / 8}
    assert set(costs["head_s"].values()) == {1 / 2048}


def test_plan_estimate_saves_and_reuses_its_costs(tmp_path):
    saved = tmp_path / "costs.json"
    first = CliRunner().invoke(main, ["plan", "--grid", "demo", "--where", "mode=linear", "--estimate",
                                      "--save-costs", str(saved), "--format", "json"])
    assert first.exit_code == 0, first.output
    est = json.loads(first.output)["estimate"]
    assert [p["part"] for p in est["parts"]] == ["extraction", "linear"] and est["total_hours"] > 0
    again = CliRunner().invoke(main, ["plan", "--grid", "demo", "--where", "mode=linear", "--estimate",
                                      "--costs", str(saved), "--format", "json"])
    reused = json.loads(again.output)["estimate"]["parts"]
    assert [(p["part"], p["seconds"]) for p in reused] == [(p["part"], p["seconds"]) for p in est["parts"]]
    assert all(p["source"] == f"costs file {saved}" for p in reused)
    refused = CliRunner().invoke(main, ["plan", "--grid", "demo", "--costs", str(saved)])
    assert refused.exit_code == 2 and "go with --estimate" in refused.output
