"""What the README claims of a GPU, checked on one (every test skips cleanly without CUDA;
`benchmarks/device_check.py` runs them on a lent GPU machine).

Tolerance of bf16: autocast keeps bf16's 8-bit mantissa (about 3 significant digits) through
50 layers; the cache's embeddings must point the same way as fp32's (cosine >= 0.999 per
image) and differ by at most 3% in norm (relative L2 error per image <= 0.03). The same
tolerance holds JPEGs decoded by nvJPEG on the GPU to those Pillow decodes in the workers."""

import json
import subprocess
import sys
import threading
import time

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TOLERANCE = {"cosine": 0.999, "relative_l2": 0.03}


def test_bf16_channels_last_embeddings_equal_fp32_ones_within_tolerance():
    from torchvision.transforms import v2

    from trainables.cache.views import View, embed_views
    from trainables.models.backbones import build_architecture, embed, get_backbone_info

    device = torch.device("cuda")
    torch.manual_seed(0)
    images = torch.rand(32, 3, 224, 224)
    for name in ("random", "dino"):
        info = get_backbone_info(name)
        model = build_architecture(info, 224, 0).eval().to(device)
        with torch.no_grad():
            reference = embed(model, info, images.to(device)).float().cpu()
        model = model.to(memory_format=torch.channels_last)
        # The cache's own extraction loop, on images already transformed.
        plan = {View(0, v2.Identity(), None): list(range(len(images)))}
        cached = torch.from_numpy(embed_views(model, info, images, plan, device, batch_size=16)[0])
        cosine = torch.nn.functional.cosine_similarity(cached, reference, dim=1)
        relative = (cached - reference).norm(dim=1) / reference.norm(dim=1)
        assert cosine.min() >= TOLERANCE["cosine"], (name, cosine.min())
        assert relative.max() <= TOLERANCE["relative_l2"], (name, relative.max())


@pytest.mark.parametrize("dataset, view", [("pneumonia", 0), ("pneumonia", 1), ("folder", 0)])
def test_nvjpeg_decoded_embeddings_equal_the_workers_ones_within_tolerance(tmp_path, dataset, view):
    """JPEGs decoded by nvJPEG and resized on the GPU (trainables/cache/device_decode.py) against
    Pillow in the workers, both in bf16: grey X-ray JPEGs (the evaluation view and an augmented
    one, each image's draw seeded by its row on both paths) and a mix of grey and colour JPEGs,
    PNGs, a CMYK JPEG and one with an EXIF orientation. nvJPEG's IDCT and upsampling round
    otherwise than libjpeg-turbo's: the bf16 tolerance covers them."""
    import numpy as np

    from tests import layouts
    from trainables.cache.embeddings import _footer, extract_if_missing, load_embeddings

    root = str(tmp_path / "data")
    (layouts.pneumonia if dataset == "pneumonia" else layouts.mixed_jpegs)(root)
    out = {}
    for decode in ("device", "workers"):
        paths, _ = extract_if_missing(dataset, root, "test_resnet", None, str(tmp_path / decode), view=view,
                                      decode=decode, progress=False, workers=0)
        out[decode] = load_embeddings(paths)
        if decode == "device":
            assert _footer(paths[0])[0]["decode"].startswith("device: JPEG by nvJPEG (TorchCodec)")
    for split in ("pool",) + (("test",) if view == 0 else ()):
        device = torch.from_numpy(np.asarray(out["device"][split].features, np.float32))
        workers = torch.from_numpy(np.asarray(out["workers"][split].features, np.float32))
        cosine = torch.nn.functional.cosine_similarity(device, workers, dim=1)
        relative = (device - workers).norm(dim=1) / workers.norm(dim=1)
        assert cosine.min() >= TOLERANCE["cosine"], (split, cosine.min())
        assert relative.max() <= TOLERANCE["relative_l2"], (split, relative.max())


# One finetune trial through run_trial itself, in a process of its own (the memory cap is per
# process), as Tune runs it: tune.report is the session's, stand-in here, and it stops the trial
# after its first epoch the way Tune does when ASHA stops it (sys.exit in the trial's thread).
TRIAL_THROUGH_RUN_TRIAL = r"""
import dataclasses, json, sys
import ray, torch
from ray import tune
from sweep.driver.runner import standalone_context
from sweep.spec import StudySpec
from trainables.context import trial_config
from trainables.training import trainable
from trainables.training.reports import unpack

import os, secrets
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # as the sweep's own Ray: no ~/.ray file
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
study = StudySpec(grid="gpu", dataset="digits", backbones=("test_resnet",), mode="finetune", subset="M",
                  n_train=250, fold=0, max_epochs=5, grace_period=1, batch_size=64, gpus=0.1)
context = dataclasses.replace(standalone_context(study, sys.argv[1]), gpus=0.1)
cuda = torch.cuda.is_available()
total = torch.cuda.get_device_properties(0).total_memory if cuda else 0
before = torch.cuda.memory_allocated() if cuda else 0
seen = []

def report(result, **kwargs):
    result = unpack(result)  # as the driver reads it (trainables/training/reports.py)
    probe = {"epoch": result.get("epoch"), "peak_gpu_mib": result.get("peak_gpu_mib"),
             "trial_error": result.get("trial_error"), "allocated": torch.cuda.memory_allocated() if cuda else 0}
    if cuda:
        try:  # 0.15 of the GPU, past the trial's 0.1
            block = torch.empty(int(total * 0.15), dtype=torch.uint8, device="cuda")
            probe["past_cap"] = "allocated"
            del block
        except torch.cuda.OutOfMemoryError:
            probe["past_cap"] = "refused"
    seen.append(probe)
    sys.exit(0)  # ASHA stops it: Tune ends a function trial's thread so, inside report

tune.report = report
try:
    trainable.run_trial(trial_config(context, 1e-3, "t1"))
except SystemExit:
    pass
after = torch.cuda.memory_allocated() if cuda else 0
print(json.dumps({"before": before, "after": after, "reports": seen}))
"""


def test_a_trial_is_capped_at_its_gpu_fraction_and_gives_its_memory_back_when_stopped(tmp_path):
    """Through run_trial: it sets the process's cap to the trial's fraction (0.1), so a block of
    0.15 of the GPU is refused while it trains; its peak is in its result; once ASHA stops it,
    its memory is back within a MiB for the next trial the actor runs."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # The checkout first, the rest of the path kept: a machine whose packages come from a folder
    # on PYTHONPATH (benchmarks/device_wheels.py) has Ray there.
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", TRIAL_THROUGH_RUN_TRIAL, str(tmp_path)], capture_output=True,
                         text=True, timeout=300, cwd=root, env={**os.environ, "PYTHONPATH": path})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    (first,) = found["reports"]  # stopped after its first epoch
    assert first["epoch"] == 1 and first["trial_error"] is None
    assert first["past_cap"] == "refused"
    assert first["peak_gpu_mib"] > 0 and first["allocated"] > found["before"]
    assert found["after"] <= found["before"] + 2**20


def test_ten_tenth_gpu_linear_trials_run_on_one_gpu_at_once(ray_local, tmp_path):
    import ray

    from sweep.driver.runner import run_sweep
    from sweep.spec import StudySpec
    from sweep.store.store import ResultsStore
    from tests.contexts import run_options

    if ray.cluster_resources().get("GPU", 0) < 1:
        pytest.skip("Ray sees no GPU")
    studies = [StudySpec(grid="packed", dataset="digits", backbones=("test_resnet",), mode="linear", subset="M",
                         n_train=250, fold=f % 5, seed=f, n_trials=1, max_epochs=300, grace_period=300,
                         batch_size=32, cpus=0.1, gpus=0.1) for f in range(10)]
    lowest = [float("inf")]
    done = threading.Event()

    def watch():
        while not done.is_set():
            lowest[0] = min(lowest[0], ray.available_resources().get("GPU", 1.0))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run_sweep(studies, run_options(results=str(tmp_path / "r"), verbose=0, max_concurrent=10))
    finally:
        done.set()
        watcher.join()
    rows = ResultsStore(str(tmp_path / "r")).read_trials().to_pylist()
    assert len(rows) == 10 and {r["status"] for r in rows} == {"ok"}
    assert {r["gpu_ids"] for r in rows} == {rows[0]["gpu_ids"]} and len(json.loads(rows[0]["gpu_ids"])) == 1
    assert all(r["peak_gpu_mib"] > 0 for r in rows)
    assert lowest[0] < 0.05  # all ten placed on the one GPU at the same moment
