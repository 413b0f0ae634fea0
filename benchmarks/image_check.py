"""The cost of the check every sweep runs before its first trial: each image the sweep uses
decoded once and digested (sha256) for the data's content fingerprint (trainables/data/filedigests.py).

    .venv/bin/python benchmarks/image_check.py [--images 20000] [--size 96]

Writes a ``folder`` data set of small PNG images (random pixels, ``--size`` px square, as
PatchCam's 96 px patches), then times, per 1,000 images:

- cold, threads: the first check (every file read, digested and decoded) in threads;
- cold, Ray tasks: the same as a sweep runs it (chunks of files as Ray tasks, 2 CPUs);
- warm: a later sweep on the same files (stat only: nothing read);
- one file rewritten, same size: only that file read again.

Last line: ``image check: X s per 1,000 images (cold, Ray), Y s (warm)``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image

from trainables.data.datasets import load_dataset
from trainables.data.filedigests import content_fingerprint, inspect_files


def write_folder(root: str, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        split = "test" if i % 10 == 0 else "train"
        cls = ("benign", "malignant")[i % 2]
        folder = os.path.join(root, split, cls)
        os.makedirs(folder, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:06d}.png"))


def timed(data, index: str, run_chunks=None) -> float:
    started = time.perf_counter()
    kwargs = {"run_chunks": run_chunks} if run_chunks else {}
    _, problems = content_fingerprint(data, index, check=True, **kwargs)
    assert not problems, problems[:3]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "data")
        started = time.perf_counter()
        write_folder(root, args.images, args.size)
        mib = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs) / 2**20
        print(f"wrote {args.images:,} PNG images of {args.size} px ({mib:.0f} MiB) in {time.perf_counter() - started:.1f} s")
        data = load_dataset("folder", root)
        per_k = 1000 / args.images

        threads = timed(data, os.path.join(tmp, "index-threads"))
        print(f"cold, threads:   {threads:6.2f} s  ({threads * per_k:.3f} s per 1,000 images)")

        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=1)(inspect_files)

        def on_ray(chunks, decode):
            return ray.get([task.remote(chunk, decode) for chunk in chunks])

        index = os.path.join(tmp, "index-ray")
        cold = timed(data, index, on_ray)
        print(f"cold, Ray tasks: {cold:6.2f} s  ({cold * per_k:.3f} s per 1,000 images)")
        warm = timed(data, index, on_ray)
        print(f"warm (stat only): {warm:5.2f} s  ({warm * per_k:.3f} s per 1,000 images)")
        path = data.pool.images.paths[0]
        with open(path, "r+b") as f:  # one byte near the end flipped: same size
            f.seek(-20, os.SEEK_END)
            byte = f.read(1)
            f.seek(-20, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0xFF]))
        changed = time.perf_counter()
        _, problems = content_fingerprint(data, index, check=True, run_chunks=on_ray)
        changed = time.perf_counter() - changed
        print(f"one file rewritten (same size): {changed:.2f} s, "
              f"{'named as unreadable' if problems else 'checked again'}")
        ray.shutdown()
        print(f"image check: {cold * per_k:.3f} s per 1,000 images (cold, Ray), {warm * per_k:.3f} s (warm)")


if __name__ == "__main__":
    main()
