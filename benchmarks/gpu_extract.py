"""Embedding extraction on a GPU, and a packed fractional-GPU linear sweep: every figure of
issue 5 and of issue 17's decoding part in one short run (about 5 minutes on one H100).

    .venv/bin/python benchmarks/gpu_extract.py              # on a GPU machine
    .venv/bin/python benchmarks/gpu_extract.py --quick      # a CPU smoke run at tiny sizes

Prints, each with the device and settings:
1. forward only (decode excluded): images/s of resnet50 (the architecture of the random,
   supervised, SwAV and SimCLR backbones; 2048-d pooled) and vit_small_patch8_224 (DINO's;
   1536-d, the CLS of the last 4 blocks) at batch sizes 64..512, on uint8 images already in
   GPU memory; bf16 autocast and channels_last on a GPU, fp32 on a CPU (as the cache does).
2. decode included, at the paper's image sizes: greyscale 1400 x 1100 JPEGs (the pneumonia
   X-rays' format and size), resized to 256, centre-cropped to 224, by the cache's extraction
   loop (``embed_views``) with the DataLoader workers ``sweep run`` gives an extraction task
   on this machine (8 on a 16-CPU one-GPU node). Per backbone: images/s with decoding in the workers (Pillow) and
   on the device (nvJPEG through TorchCodec, resized there), and what the workers deliver with
   no model at all; the bottleneck of each path named: ``decode`` when it runs below 80% of the
   forward rate, else ``forward``.
   Then the workers' side (read, decode, resize, crop) of 5 views of 20 such images (the
   evaluation one and 4 augmented, as the paper grid caches) in one pass, each image decoded
   and resized once, against view by view.
3. the CPU cost of one such image in a worker (decode, resize, crop): kept one channel until
   the transform makes it RGB, against the RGB conversion before resizing (as until now).
4. the wall time of a packed linear sweep on those images: 10 studies x 4 trials, each
   trial 0.1 GPU, every trial from the cache (its one extraction printed apart).
Last, the goals on one H100: resnet50 >= 5,000 img/s, ViT-S/8 >= 1,000 img/s, and decoding
not the bottleneck on the device path.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from trainables.models.backbones import build_architecture, embed, get_backbone_info
from trainables.data.datasets import get_dataset_info, load_dataset
from trainables.cache.views import View, collate_views, embed_views, view_set
from trainables.data.transforms import build_transform

GOALS = {"random": 5000, "dino": 1000}  # img/s on one H100
NAMES = {"random": "resnet50", "dino": "vit_small_patch8_224"}
XRAY = (1400, 1100)  # width, height of a typical pneumonia chest X-ray (greyscale JPEG)
BOTTLENECK_SHARE = 0.8  # below this share of the forward rate, decoding holds the loop back


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def forward_rate(backbone: str, batch: int, device, seconds: float, size: int = 224) -> float:
    """Images/s of the embedding forward alone: normalise + embed of uint8 batches on the device."""
    info = get_backbone_info(backbone)
    model = build_architecture(info, size, 0).eval().to(device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    mean = torch.tensor(info.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(info.std, device=device).view(1, 3, 1, 1) * 255

    def step():
        x = ((images.float() - mean) / std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_gpu):
            embed(model, info, x)

    for _ in range(2):  # warm-up: kernels chosen, memory allocated
        step()
    _sync(device)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done == 0:
        step()
        done += batch
        _sync(device)
    return done / (time.perf_counter() - start)


def sweep_workers() -> int:
    """The decoding workers ``sweep run``'s extraction task has on this machine: the GPU's share
    of the CPUs (runner.default_extract_cpus), one of them for the model, at most 8."""
    from sweep.driver.runner import default_extract_cpus

    cpus = default_extract_cpus(os.cpu_count() or 1, max(1, torch.cuda.device_count()))
    return max(0, min(8, cpus - 1))


def _plan(data, transform=None) -> dict:
    """The evaluation view of the whole training pool, as the cache's extraction plans it."""
    transform = transform or build_transform(get_dataset_info("folder"), get_backbone_info("random"), train=False)
    return {View(0, transform, None): np.arange(len(data.pool))}


def decode_rate(backbone: str, data, device, decode: str, workers: int) -> float:
    """Images/s of the cache's extraction loop over the training pool: decoding in DataLoader
    workers (``workers``) or JPEGs on the device (``device``), transform, embed. Random-init
    architectures: the weights do not change the rate."""
    info = get_backbone_info(backbone)
    model = build_architecture(info, 224, 0).eval().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    plan = _plan(data, build_transform(get_dataset_info("folder"), info, train=False))
    start = time.perf_counter()
    embed_views(model, info, data.pool.images, plan, device, 256, workers, decode=decode)
    _sync(device)
    return len(data.pool) / (time.perf_counter() - start)


def workers_rate(data, workers: int) -> float:
    """Images/s the DataLoader workers deliver (decode, resize, crop, normalise) with no model:
    the most the workers' path can feed any device."""
    from torch.utils.data import DataLoader

    start = time.perf_counter()
    for _ in DataLoader(view_set(data.pool.images, _plan(data)), batch_size=256, num_workers=workers,
                        collate_fn=collate_views):
        pass
    return len(data.pool) / (time.perf_counter() - start)


def bottleneck(rate: float, forward: float) -> str:
    return "decode" if rate < BOTTLENECK_SHARE * forward else "forward"


@contextlib.contextmanager
def one_thread():
    """torch on one thread, as in a DataLoader worker, for a measurement of a worker's CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def worker_cost_ms(work: str, n: int = 20) -> dict:
    """Milliseconds of one CPU per image of the workers' path (decode + resize + crop) on ``n``
    greyscale X-ray-sized JPEGs written under ``work``: kept one channel until the transform, and
    converted to RGB before it (as until now); the same floats come out of both."""
    from PIL import Image

    root = os.path.join(work, "cost")
    write_images(root, n // 2, 1, size=XRAY, grey=True)
    data = load_dataset("folder", root)
    (view, _), = _plan(data).items()
    paths = data.pool.images.paths

    def as_rgb(path):
        with Image.open(path) as img:
            return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).contiguous()

    out = {}
    with one_thread():
        for name, decode in (("one channel", lambda i: view.apply(i, data.pool.images[i])),
                             ("rgb first", lambda i: view.transform(as_rgb(paths[i])))):
            decode(0)
            start = time.perf_counter()
            for i in range(len(paths)):
                decode(i)
            out[name] = 1000 * (time.perf_counter() - start) / max(len(paths), 1)
    return out


def views_pass_seconds(work: str, n: int = 20, views: int = 5) -> dict:
    """CPU seconds of the workers' side (read, decode, resize, crop, normalise: what the GPU
    waits on) for ``views`` views (the evaluation one and augmented copies, as the paper grid
    caches 5) of ``n`` X-ray-sized greyscale JPEGs: in one pass (each image decoded and resized
    once), and view by view (as every view was extracted before)."""
    from torch.utils.data import DataLoader

    root = os.path.join(work, "views")
    write_images(root, n // 2, 1, size=XRAY, grey=True)
    data = load_dataset("folder", root)
    info, rows = get_backbone_info("random"), np.arange(len(data.pool))
    plan = {View(v, build_transform(get_dataset_info("folder"), info, train=v > 0), None if v == 0 else 1000 * v): rows
            for v in range(views)}
    def seconds(plans: list) -> float:
        start = time.perf_counter()
        for one in plans:
            for _ in DataLoader(view_set(data.pool.images, one), batch_size=64, collate_fn=collate_views):
                pass
        return time.perf_counter() - start

    with one_thread():
        seconds([plan])  # warm-up: files in the page cache, kernels chosen
        together, apart = seconds([plan]), seconds([{view: rows} for view, rows in plan.items()])
    return {"views": views, "images": len(rows), "one_pass_s": together, "view_by_view_s": apart}


def write_images(root: str, per_class: int, n_test: int, size=320, grey: bool = False) -> None:
    """A folder dataset (train/<class>/*.jpg, test/<class>/*.jpg) of textured JPEGs, ``size``
    square or (width, height); greyscale (as X-rays are) or colour."""
    rng = np.random.default_rng(0)
    width, height = (size, size) if isinstance(size, int) else size
    for split, n in (("train", per_class), ("test", n_test)):
        for cls in ("a", "b"):
            os.makedirs(os.path.join(root, split, cls), exist_ok=True)
            for i in range(n):
                noise = rng.integers(0, 256, (height // 8, width // 8) + (() if grey else (3,)), dtype=np.uint8)
                img = Image.fromarray(noise).resize((width, height), Image.BILINEAR)
                img.save(os.path.join(root, split, cls, f"{i}.jpg"), quality=90)


def decode_figures(data, device, forward: dict, workers: int) -> dict:
    """``paths``: per "<architecture>/<decode>" (forward: backbone -> forward-only images/s) the
    extraction loop's images/s, its share of the forward rate and the bottleneck named; and
    what the workers deliver alone."""
    paths = {}
    for backbone, forward_rate_ in forward.items():
        for decode in ("workers", "device"):
            rate = decode_rate(backbone, data, device, decode, workers)
            paths[f"{NAMES[backbone]}/{decode}"] = {
                "images_per_s": round(rate, 1), "share_of_forward": round(rate / forward_rate_, 3),
                "bottleneck": bottleneck(rate, forward_rate_)}
    return {"paths": paths, "workers_alone_images_per_s": round(workers_rate(data, workers), 1), "workers": workers,
            "images": len(data.pool)}


def packed_sweep(root: str, results: str, sizes: tuple[int, ...], trials: int, epochs: int, gpus: float) -> dict:
    from sweep.options import Inputs, RunOptions, StoreOptions
    from sweep.driver.runner import run_sweep
    from sweep.spec import StudySpec
    from sweep.store.store import ResultsStore
    from trainables.cache.embeddings import list_cache

    studies = [
        StudySpec(grid="gpu-bench", dataset="folder", backbones=("random",), mode="linear", subset=str(n),
                  n_train=n, fold=f, n_trials=trials, max_epochs=epochs, batch_size=64, cpus=1, gpus=gpus)
        for n in sizes for f in range(5)
    ]
    start = time.perf_counter()
    summary = run_sweep(studies, RunOptions(inputs=Inputs(data_roots={"folder": root}), store=StoreOptions(results=results), verbose=0))
    wall = time.perf_counter() - start
    rows = ResultsStore(results).read_trials().to_pylist()
    extract = sum(e["extract_s"] for e in list_cache(os.path.join(results, "cache")))
    return {"studies": len(studies), "trials": summary.trials_written, "wall_s": wall, "extract_s": extract,
            "ok": sum(r["status"] == "ok" for r in rows),
            "peak_gpu_mib": max((r["peak_gpu_mib"] or 0) for r in rows) if rows else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run on a CPU")
    parser.add_argument("--seconds", type=float, default=None, help="time per forward measurement")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    quick = args.quick or device.type != "cuda"
    batches = (4, 8) if quick else (64, 128, 256, 512)
    seconds = args.seconds or (1.0 if quick else 4.0)
    precision = "bf16 autocast, channels_last" if device.type == "cuda" else "fp32"
    print(f"device: {name}; torch {torch.__version__}; {precision}{'; quick (smoke) sizes' if quick else ''}")

    print("\n1. forward only, decode excluded (images/s)")
    best = {}
    for backbone in ("random", "dino"):
        rates = {b: forward_rate(backbone, b, device, seconds) for b in batches}
        best[backbone] = max(rates.values())
        print(f"  {NAMES[backbone]:22s} " + "  ".join(f"batch {b}: {r:,.0f}" for b, r in rates.items()))

    per_class, n_test = (8, 2) if quick else (1024, 64)
    size = (XRAY[0] // 4, XRAY[1] // 4) if quick else XRAY
    workers = sweep_workers()
    with tempfile.TemporaryDirectory() as work:
        root = os.path.join(work, "images")
        start = time.perf_counter()
        write_images(root, per_class, n_test, size=size, grey=True)
        data = load_dataset("folder", root)
        print(f"\n2. decode included: {len(data.pool):,} greyscale JPEGs of {size[0]}x{size[1]} (written in "
              f"{time.perf_counter() - start:.0f} s), resize 256, crop 224, batch 256, {workers} workers")
        figures = decode_figures(data, device, best, workers)
        print(f"  the workers alone (no model): {figures['workers_alone_images_per_s']:,.0f} img/s")
        for backbone in best:
            for decode in ("workers", "device"):
                f = figures["paths"][f"{NAMES[backbone]}/{decode}"]
                print(f"  {NAMES[backbone]:22s} decoded by {decode:8s} {f['images_per_s']:,.0f} img/s "
                      f"({100 * f['share_of_forward']:.0f}% of forward): bottleneck {f['bottleneck']}")
        passes = views_pass_seconds(work)
        print(f"\n   the workers' side of {passes['views']} views of {passes['images']} such images, one CPU: "
              f"{passes['one_pass_s']:.1f} s in one pass (each image decoded once), {passes['view_by_view_s']:.1f} s "
              f"view by view ({passes['view_by_view_s'] / passes['one_pass_s']:.1f}x)")
        cost = worker_cost_ms(work)
        print(f"\n3. one CPU per {XRAY[0]}x{XRAY[1]} greyscale JPEG in a worker: {cost['one channel']:.1f} ms kept one channel, "
              f"{cost['rgb first']:.1f} ms converted to RGB first ({cost['rgb first'] / cost['one channel']:.1f}x)")

        sizes, trials, epochs = ((10,), 2, 3) if quick else ((100, 500), 4, 30)
        gpus = 0.1 if device.type == "cuda" else 0.0
        sweep = packed_sweep(root, os.path.join(work, "results"), sizes, trials, epochs, gpus)
        print(f"\n4. packed linear sweep: {sweep['studies']} studies, {sweep['trials']} trials ({sweep['ok']} ok), "
              f"{gpus} GPU per trial, {epochs} epochs: {sweep['wall_s']:.1f} s wall, of which extraction "
              f"{sweep['extract_s']:.1f} s; peak GPU memory of a trial {sweep['peak_gpu_mib']:.0f} MiB")

    print()
    for backbone, goal in GOALS.items():
        verdict = "met" if best[backbone] >= goal else "not met"
        print(f"goal {NAMES[backbone]} >= {goal:,} img/s (forward, best batch) on one H100: "
              f"{best[backbone]:,.0f} on {name}: {verdict}")
        held = figures["paths"][f"{NAMES[backbone]}/device"]["bottleneck"] == "decode"
        print(f"goal {NAMES[backbone]}: decoding on the device keeps up with the forward: {'not met' if held else 'met'}")


if __name__ == "__main__":
    main()
