"""benchmarks/device_check.py --smoke: every step of the GPU check, tiny, on this CPU, so the
script a lent GPU machine runs once cannot rot."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_device_check_smoke_writes_every_figure(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "device_check.py"), str(out), "--smoke"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RAY_ADDRESS": "local"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = json.loads((out / "device_check.json").read_text())
    assert all("error" not in figures[step]
               for step in ("device", "extraction", "packed_sweep", "projection", "demo_packing")), figures
    forward = figures["extraction"]["forward_only"]
    assert set(forward) == {"resnet50@224", "resnet50@96", "vit_small_patch8@224", "vit_small_patch8@96"}
    assert all(f["images_per_s"] > 0 for f in forward.values())
    decode = figures["extraction"]["decode_included"]
    assert set(decode["paths"]) == {f"{arch}/{path}" for arch in ("resnet50", "vit_small_patch8_224")
                                    for path in ("workers", "device")}
    for figure in decode["paths"].values():
        assert figure["images_per_s"] > 0 and figure["bottleneck"] in ("decode", "forward")
    assert decode["workers_alone_images_per_s"] > 0
    cost = figures["extraction"]["worker_ms_per_image"]
    assert cost["one channel"] > 0 and cost["rgb first"] > 0  # figures, not compared: no timed assertions
    views = figures["extraction"]["views_workers_side"]
    assert views["views"] == 5 and views["one_pass_s"] > 0 and views["view_by_view_s"] > 0
    sweep = figures["packed_sweep"]
    # 3 linear studies + 1 DVME, 2 trials each; one cache file per backbone.
    assert sweep["trials"] == sweep["ok"] == 8 and sweep["cache_files"] == 3 and sweep["packing"] > 0
    projection = figures["projection"]
    assert projection["grid"] == "demo" and projection["device_hours_modelled"] > 0
    assert projection["device_hours_corrected"] > 0 and projection["frozen_measured_over_modelled"] > 0
    demo = figures["demo_packing"]
    # The demo's linear S cells (2 backbones x 5 folds, 4 trials a study) on this CPU: linear=0.1
    # is ignored without GPUs, so the cores bound the Tuner, which cannot beat that bound.
    assert demo["trials"] == demo["ok"] == 40 and demo["cells"] == 2
    assert demo["gpus"] == 0 and demo["gpu_share_by_mode"] == {"linear": 0.0} and set(demo["tight_s"]) == {"cores"}
    assert demo["bound"] == "cores" and demo["packing_ratio"] >= 1.0 and demo["per_trial_overhead_s"] >= 0


def _device_check(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    monkeypatch.setenv("RAY_ADDRESS", "local")
    import device_check

    return device_check


def test_each_steps_figures_are_on_disk_before_the_next_step_runs(tmp_path, monkeypatch):
    """A run killed at the device's time limit keeps what it measured: the file is rewritten
    after every step, a failed step recorded with its error and the others still run."""
    device_check = _device_check(monkeypatch)
    out = tmp_path / "out"
    on_disk = {}

    def read():
        return json.loads((out / "device_check.json").read_text())

    def extraction(work, smoke):
        on_disk["extraction"] = read()
        return {"forward_only": {"resnet50@224": 1.0}}

    def packed_sweep(work, smoke):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def demo_packing(smoke):
        on_disk["demo_packing"] = read()
        return {"packing_ratio": 1.2}

    for name, fn in (("extraction", extraction), ("packed_sweep", packed_sweep), ("demo_packing", demo_packing)):
        monkeypatch.setattr(device_check, name, fn)
    monkeypatch.setattr(sys, "argv", ["device_check.py", str(out), "--smoke"])
    device_check.main()
    first = on_disk["extraction"]
    assert set(first) >= {"device", "seconds"} and "extraction" not in first
    # What ran is named with its version: the carried wheels' packages, medsweep's own metadata.
    assert first["device"]["versions"]["medsweep"] and first["device"]["versions"]["ray"]
    before_demo = on_disk["demo_packing"]
    assert before_demo["extraction"] == {"forward_only": {"resnet50@224": 1.0}}
    assert before_demo["packed_sweep"]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert "projection" not in before_demo  # it scales by the sweep that failed
    final = read()
    assert final["demo_packing"] == {"packing_ratio": 1.2} and set(final["seconds"]) == {
        "device", "extraction", "packed_sweep", "demo_packing"}
    assert not (out / "device_check.json.part").exists()


def test_steps_runs_only_those_named_and_refuses_an_unknown_one(tmp_path, monkeypatch, capsys):
    device_check = _device_check(monkeypatch)
    ran = []
    for name in ("extraction", "packed_sweep", "projection", "demo_packing"):
        monkeypatch.setattr(device_check, name, lambda *a, name=name: ran.append(name) or {"ran": name})
    monkeypatch.setattr(sys, "argv", ["device_check.py", str(tmp_path / "a"), "--smoke", "--steps", "demo_packing"])
    device_check.main()
    assert ran == ["demo_packing"]
    assert set(json.loads((tmp_path / "a" / "device_check.json").read_text())["seconds"]) == {"device", "demo_packing"}
    ran.clear()  # the projection scales by the packed sweep: naming it runs the sweep first
    monkeypatch.setattr(sys, "argv", ["device_check.py", str(tmp_path / "p"), "--smoke", "--steps", "projection"])
    device_check.main()
    assert ran == ["packed_sweep", "projection"]
    ran.clear()
    monkeypatch.setattr(sys, "argv", ["device_check.py", str(tmp_path / "s"), "--smoke", "--steps", "packed_sweep"])
    device_check.main()
    assert ran == ["packed_sweep"]
    monkeypatch.setattr(sys, "argv", ["device_check.py", str(tmp_path / "b"), "--steps", "demo,extraction"])
    with pytest.raises(SystemExit) as exit_:
        device_check.main()
    assert exit_.value.code == 2
    assert "--steps: unknown demo; expected some of device, gpu_tests, extraction" in capsys.readouterr().err
    assert not (tmp_path / "b" / "device_check.json").exists()


def test_the_projection_sizes_the_paper_grids_whole_pool_studies_as_sweep_plan_does(monkeypatch):
    """On a GPU the projection is for the paper grid, whose F studies leave n_train to the
    data: the estimate needs a size for each (the smoke run's demo grid has none to resolve)."""
    device_check = _device_check(monkeypatch)
    from sweep.grids import load_grid
    from sweep.plan.preflight import published_pools

    grid = load_grid("paper")
    pools = published_pools(grid)
    assert {s.dataset for s in grid if s.n_train is None} == set(pools) == {"aptos", "pneumonia", "nih"}
    target = device_check.projection_target(smoke=False)
    assert len(target) == len(grid)
    for planned, sized in zip(grid, target):  # each study as planned, its whole pool sized
        assert sized == (planned if planned.n_train else planned.replace(n_train=pools[planned.dataset]))
