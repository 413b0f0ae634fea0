"""One command for a lent GPU machine: every GPU claim of the README measured, in one JSON file.

    .venv/bin/python benchmarks/device_check.py OUT_DIR            # on a GPU machine: under 8 minutes
    .venv/bin/python benchmarks/device_check.py OUT_DIR --smoke    # on a CPU: the same steps, tiny (< 1 minute)
    .venv/bin/python benchmarks/device_check.py OUT_DIR --steps demo_packing   # only these (and ``device``)

Writes ``OUT_DIR/device_check.json`` (and prints it, then one line per figure). Each step has
its own share of the time and records its own error; a failed step never stops the others. The
file is written again after every step: a run killed at its time limit keeps the figures of
the steps it finished.

On a machine with its own Python, a CUDA torch and no package index (a lent GPU machine, an
offline node), ``benchmarks/device_wheels.py`` run beforehand where the index is reachable
puts the wheels of what the machine lacks in ``.device-wheels/`` and prints the one command
to run there (install them under ``/tmp/site``, then this script with that on the path).

``device``       the GPU (name, memory), torch and CUDA versions, and the versions of the
                 packages medsweep ran with (``VERSIONS``).
``gpu_tests``    every ``gpu``-marked test (tests/gpu/): bf16 + channels_last embeddings equal
                 fp32 ones within the stated tolerance; a trial cannot allocate past its GPU
                 fraction; ``peak_gpu_mib`` is recorded and the memory comes back when a trial
                 is stopped; ten 0.1-GPU linear trials run on one GPU at once. Each test's
                 outcome (passed, failed, skipped) and message. On a CPU they skip.
``extraction``   images/s of the embedding forward alone (uint8 batches already on the device;
                 ResNet-50 and ViT-S/8 at 224 px and at PatchCam's 96 px), and of the cache's
                 whole extraction loop on 2,048 greyscale 1400 x 1100 JPEGs (pneumonia X-rays'
                 format and size) resized to 224, with the workers ``sweep run`` gives an
                 extraction task there: decoded by the workers (Pillow) and on the device
                 (nvJPEG), each path's bottleneck named (``decode`` when it holds the loop below
                 80% of the forward rate, else ``forward``); what the workers deliver alone; a
                 worker's CPU milliseconds per image (one channel kept, against RGB first); the
                 workers' CPU seconds for 5 views of 20 images in one pass and view by view.
``packed_sweep`` a frozen sweep of the paper's shape: the five backbones (the paper's
                 architectures, random weights saved in the published files' layouts, so the
                 weight loading runs too), linear heads and the paper's listing-form DVME
                 (simclr+swav+dino), 8 trials per study, packed 0.1 / 0.2 GPU a trial, on a
                 generated pool of a few thousand images: its wall time, extraction time, the
                 trials' summed wall time and the packing it reached (summed trial time over the
                 span from the first trial's start to the last one's end).
``projection``   the paper grid's device-hours by ``sweep plan --estimate``'s model, calibrated on
                 this device, with the frozen part scaled by how the packed sweep's measured time
                 compared with that model's figure for it; and the wall hours at the packing
                 measured. (Smoke: the demo grid stands in for the paper's.)
``demo_packing`` the demo grid as ``sweep run --grid demo --gpus-per-trial linear=0.1`` runs it
                 here (benchmarks/overhead.py's unprofiled run): the Tuner's wall against the
                 least its trials allow, the trials' seconds times their CPUs over the cores or
                 times their GPU shares over the GPUs, whichever is larger (named as ``bound``);
                 the packing ratio, the per-trial overhead, the demo's wall. (Smoke: its linear
                 S cells, on the CPU.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


VERSIONS = ("medsweep", "torchvision", "timm", "ray", "optuna", "torchcodec", "pyarrow", "numpy", "scikit-learn",
            "pillow", "pytest")


def device_info() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": None, "gpu_memory_gib": None,
            "cpus": os.cpu_count(), "python": sys.version.split()[0], "versions": {n: installed(n) for n in VERSIONS}}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    gpus=torch.cuda.device_count())
    return info


def gpu_tests(out_dir: str, timeout_s: float) -> dict:
    """The gpu-marked tests in a pytest process of their own; each test's outcome."""
    report = os.path.join(out_dir, "gpu_tests.xml")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={report}", os.path.join(ROOT, "tests", "gpu")],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    tests = []
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or "")[:500]
        tests.append({"test": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0),
                      "message": message})
    return {"exit_code": proc.returncode, "tests": tests, "tail": proc.stdout[-1500:]}


def extraction(work: str, smoke: bool) -> dict:
    import gpu_extract
    from trainables.data.datasets import load_dataset

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches, seconds = ((2,), 0.1) if smoke else ((128, 256, 512), 3.0)
    forward = {}
    for backbone, arch in (("random", "resnet50"), ("dino", "vit_small_patch8")):
        for size in (224, 96):
            rates = {b: gpu_extract.forward_rate(backbone, b, device, seconds, size) for b in batches}
            forward[f"{arch}@{size}"] = {"images_per_s": round(max(rates.values()), 1),
                                         "by_batch": {str(b): round(r, 1) for b, r in rates.items()}}
    # Decoding at the paper's image sizes: greyscale X-ray JPEGs (the pneumonia set's format).
    root = os.path.join(work, "xrays")
    per_class, n_test = (4, 1) if smoke else (1024, 32)
    size = (gpu_extract.XRAY[0] // 4, gpu_extract.XRAY[1] // 4) if smoke else gpu_extract.XRAY
    gpu_extract.write_images(root, per_class, n_test, size=size, grey=True)
    data = load_dataset("folder", root)
    workers = 1 if smoke else gpu_extract.sweep_workers()
    at_224 = {"random": forward["resnet50@224"]["images_per_s"], "dino": forward["vit_small_patch8@224"]["images_per_s"]}
    decode = gpu_extract.decode_figures(data, device, at_224, workers)
    decode["image_size"] = f"{size[0]}x{size[1]} greyscale JPEG"
    return {"device": str(device), "forward_only": forward, "decode_included": decode,
            "worker_ms_per_image": gpu_extract.worker_cost_ms(work, 4 if smoke else 20),
            "views_workers_side": gpu_extract.views_pass_seconds(work, 4 if smoke else 20)}


def published_weight_files(folder: str) -> dict:
    """Random weights in the paper's published layouts (notes/formats.md): the load path runs."""
    import timm

    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    resnet = timm.create_model("resnet50", pretrained=False, num_classes=1000).state_dict()
    files = {
        "supervised": ("resnet50-0676ba61.pth", resnet),
        "swav": ("swav_800ep_pretrain.pth.tar", {f"module.{k}": v for k, v in resnet.items() if not k.startswith("fc.")}),
        "simclr": ("resnet50-1x.pth", {"state_dict": resnet}),
        "dino": ("dino_deitsmall8_pretrain.pth",
                 timm.create_model("vit_small_patch8_224", pretrained=False, num_classes=0).state_dict()),
    }
    paths = {}
    for name, (file_name, state) in files.items():
        paths[name] = os.path.join(folder, file_name)
        torch.save(state, paths[name])
    return paths


def paper_shaped_studies(smoke: bool) -> list:
    from search_spaces.paper import DVME, LINEAR
    from sweep.spec import StudySpec

    backbones = ("test_resnet", "test_vit", "test_convnext") if smoke else ("random", "supervised", "swav", "simclr", "dino")
    fused = ("test_resnet", "test_vit") if smoke else ("simclr", "swav", "dino")
    trials, epochs = (2, 3) if smoke else (8, 100)
    common = dict(grid="device-check", dataset="folder", subset="F", n_train=None, fold=0, n_trials=trials,
                  max_epochs=epochs, grace_period=min(epochs, 5), reduction_factor=3)
    linear = {**LINEAR, "views": 1 if smoke else LINEAR["views"]}
    dvme = {**DVME, "views": 1 if smoke else DVME["views"], **({"proj_dim": 32} if smoke else {})}
    studies = [StudySpec(backbones=(b,), mode="linear", **common, **{k: v for k, v in linear.items() if k not in common})
               for b in backbones]
    studies.append(StudySpec(backbones=fused, mode="dvme", **common, **{k: v for k, v in dvme.items() if k not in common}))
    return studies


def packed_sweep(work: str, smoke: bool) -> dict:
    import gpu_extract
    from sweep.driver.runner import run_sweep
    from sweep.options import Inputs, RunOptions, StoreOptions
    from sweep.store.store import ResultsStore
    from trainables.cache.embeddings import list_cache

    root = os.path.join(work, "pool")
    per_class, n_test = (12, 4) if smoke else (1500, 250)
    gpu_extract.write_images(root, per_class, n_test, size=96 if smoke else 320)
    weights = {} if smoke else published_weight_files(os.path.join(work, "weights"))
    studies = paper_shaped_studies(smoke)
    results = os.path.join(work, "results")
    start = time.perf_counter()
    run_sweep(studies, RunOptions(inputs=Inputs(data_roots={"folder": root}, weights=weights),
                                  store=StoreOptions(results=results), verbose=0))
    wall = time.perf_counter() - start
    rows = ResultsStore(results).read_trials().to_pylist()
    cache = list_cache(os.path.join(results, "cache"))
    extract_s = sum(e["extract_s"] for e in cache)
    trial_s = sum(r["wall_s"] or 0 for r in rows)
    # The trials' own span (first start to last end), not the sweep's wall: Ray's start, the
    # image check and the extraction are not packing.
    ends = [r["started_at"] + r["wall_s"] for r in rows if r["started_at"] and r["wall_s"]]
    span = max(ends) - min(r["started_at"] for r in rows if r["started_at"]) if ends else float("nan")
    return {"studies": len(studies), "trials": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
            "pool_images": 2 * per_class, "test_images": 2 * n_test, "wall_s": round(wall, 1),
            "extraction_s": round(extract_s, 1), "cache_files": len(cache), "trials_wall_s_summed": round(trial_s, 1),
            "trials_span_s": round(span, 1), "packing": round(trial_s / max(span, 1e-9), 2),
            "peak_gpu_mib": max([r["peak_gpu_mib"] or 0 for r in rows] or [0]),
            "_studies": studies, "_rows": rows, "_cache": cache}


def projection_target(smoke: bool) -> list:
    """The grid the projection is for, its whole-pool (F) studies sized by each dataset's
    published pool, as ``sweep plan --grid paper --estimate`` sizes them without the data."""
    from sweep.grids import load_grid
    from sweep.plan.preflight import published_pools
    from sweep.spec import resolve_pools

    target = load_grid("demo" if smoke else "paper")
    return resolve_pools(target, published_pools(target))


def projection(sweep: dict, smoke: bool) -> dict:
    """The target grid by the estimate's model calibrated here, its frozen part scaled by the
    packed sweep's measured over modelled time."""
    from sweep.plan.estimate import TEST_SCORING_SHARE, calibrate, estimate, head_key

    resolved = {s.study_id: s for s in (s.replace(n_train=sweep["pool_images"]) for s in sweep["_studies"])}
    target = projection_target(smoke)
    costs = calibrate(list(resolved.values()) + target)
    # The estimate's model of each trial the packed sweep ran, at the epochs it really ran.
    modelled_trials = 0.0
    for r in sweep["_rows"]:
        study = resolved[r["study_id"]]  # the sweep resolved the whole pool to the same size
        head = costs["head_s"][head_key(study, costs["dims"])]
        epochs = r["epochs"] or 0
        modelled_trials += epochs * study.n_train * head + TEST_SCORING_SHARE * epochs * sweep["test_images"] * head
    # Trials share the device when packed: device time of a trial = its wall time x its GPU share.
    measured_trials = sum((r["wall_s"] or 0) * (r["gpus"] or 1.0) for r in sweep["_rows"])
    scale = measured_trials / modelled_trials if modelled_trials else float("nan")
    projected = estimate(target, costs)
    frozen = sum(p["device_hours"] for p in projected["parts"] if p["part"] in ("linear", "dvme"))
    other = projected["total_hours"] - frozen
    corrected = other + frozen * scale
    return {"grid": "demo" if smoke else "paper", "device_hours_modelled": projected["total_hours"],
            "parts": projected["parts"], "frozen_measured_over_modelled": round(scale, 3),
            "device_hours_corrected": round(corrected, 2),
            "wall_hours_at_measured_packing": round(corrected / max(sweep["packing"], 1.0), 2)}


def demo_packing(smoke: bool) -> dict:
    """benchmarks/overhead.py's packing figures for the demo with 0.1 GPU a linear trial."""
    import overhead
    from sweep.cli import _studies

    studies = _studies("demo", ("mode=linear", "subset=S") if smoke else (), None, None)
    run = overhead.Run(studies, profiled=False, resources=overhead.gpu_shares(["linear=0.1"]))
    figures = overhead.packing_figures(run, os.cpu_count() or 1, overhead.machine_gpus(run.rows))
    shares = sorted({(r["mode"], r["gpus"]) for r in run.rows})
    return {**figures, "cells": len(run.outcome["cells"]), "ok": sum(r["status"] == "ok" for r in run.rows),
            "gpu_share_by_mode": {mode: share for mode, share in shares}}


STEPS = ("device", "gpu_tests", "extraction", "packed_sweep", "projection", "demo_packing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on a CPU: a smoke run (< 1 minute)")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"the steps to run, comma-separated (default all: {','.join(STEPS)}); a second "
                             f"call can run those a first one did not reach")
    args = parser.parse_args()
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"--steps: unknown {', '.join(unknown)}; expected some of {', '.join(STEPS)}")
    os.makedirs(args.out_dir, exist_ok=True)
    os.environ.setdefault("RAY_ADDRESS", "local")  # a Ray of its own
    figures: dict = {"smoke": args.smoke, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    started = time.perf_counter()
    path = os.path.join(args.out_dir, "device_check.json")

    def shown() -> dict:
        """The figures without the packed sweep's rows and studies (its "_" keys), which only
        the projection reads."""
        return {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} if isinstance(v, dict) else v
                for k, v in figures.items()}

    def write():
        figures["total_s"] = round(time.perf_counter() - started, 1)
        with open(path + ".part", "w") as f:
            json.dump(shown(), f, indent=1, default=str)
        os.replace(path + ".part", path)  # whole or not at all, even if the run is killed while writing

    def step(name, fn, *fn_args):
        t0 = time.perf_counter()
        try:
            figures[name] = fn(*fn_args)
        except Exception as exc:  # one failed step is a figure too; the others still run
            figures[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        figures.setdefault("seconds", {})[name] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {figures['seconds'][name]} s", flush=True)
        write()

    with tempfile.TemporaryDirectory() as work:
        step("device", device_info)  # always: what the other figures were measured on
        if "gpu_tests" in steps and not args.smoke:  # on a CPU they skip: the smoke run checks the rest
            step("gpu_tests", gpu_tests, args.out_dir, 240)
        if "extraction" in steps:
            step("extraction", extraction, work, args.smoke)
        if "packed_sweep" in steps or "projection" in steps:  # the projection scales by the sweep
            step("packed_sweep", packed_sweep, work, args.smoke)
            if "projection" in steps and "error" not in figures["packed_sweep"]:
                step("projection", projection, figures["packed_sweep"], args.smoke)
        if "demo_packing" in steps:
            step("demo_packing", demo_packing, args.smoke)
    write()
    print(json.dumps({k: v for k, v in shown().items() if k != "gpu_tests"}, indent=1, default=str)[:6000])
    print(f"wrote {path} in {figures['total_s']} s")


if __name__ == "__main__":
    main()
