"""Host memory of embedding extraction against the pool's size: streamed to the cache in
chunks (what medsweep does) beside everything buffered until the file is written (what it did
before, and what a wide foundation model's features made too much for one node).

    .venv/bin/python benchmarks/extraction_memory.py [--sizes 1000,2000,4000,8000] [--dim 32768]

Writes a folder dataset of small PNGs, then in a fresh process per (pool size, mode) extracts
the first N pool rows with timm's test_resnet followed by a fixed random projection to
``--dim`` features (32,768-d float32 = 128 KiB a row: a ViT-g's 1,536-d features of 20 views
at once, or any wide embedding at a pool a test machine can hold). Each process samples its
private memory (RssAnon) every 20 ms and reports the peak above what it held after imports.
Streamed, that peak stays near one chunk (trainables/cache/embeddings.py, CHUNK_BYTES) however
large the pool; buffered, it grows with the pool. Last line: the growth from the smallest to
the largest pool, streamed and buffered.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import json, sys, threading, time
import numpy as np, torch
from trainables.training.memory import private_mib
from trainables.cache import embeddings
from trainables.models import backbones

root, cache, n, dim, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if chunk != "default":
    embeddings.CHUNK_BYTES = int(chunk)

class Wide(torch.nn.Module):
    def __init__(self, model, dim):
        super().__init__()
        self.model = model
        self.project = torch.nn.Linear(model.num_features, dim, bias=False)
        self.num_features = dim
    def forward(self, x):
        return self.project(self.model(x))

built = embeddings.create_backbone
def wide(*args, **kwargs):
    model, info = built(*args, **kwargs)
    torch.manual_seed(0)
    return Wide(model, dim), info
embeddings.create_backbone = wide

base = private_mib()
peak = [base]
running = [True]
def sample():
    while running[0]:
        peak[0] = max(peak[0], private_mib())
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
embeddings.extract_views_if_missing("folder", root, "test_resnet", None, cache, views={0: list(range(n))},
                                    workers=0, batch_size=64, progress=False)
running[0] = False
peak[0] = max(peak[0], private_mib())
print(json.dumps({"peak_mib": round(peak[0] - base, 1)}))
"""


def make_folder(root: str, n_train: int, n_test: int = 16) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("test", n_test)):
        for i in range(count):
            folder = os.path.join(root, split, f"class{i % 2}")
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), np.uint8)).save(os.path.join(folder, f"{i}.png"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,2000,4000,8000")
    parser.add_argument("--dim", type=int, default=32768)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "data")
        make_folder(root, max(sizes))
        print(f"{'pool':>6} {'features MiB':>13} {'streamed peak MiB':>18} {'buffered peak MiB':>18}")
        peaks = {}
        for n in sizes:
            row = {}
            for mode, chunk in (("streamed", "default"), ("buffered", str(2**62))):
                cache = os.path.join(tmp, f"cache-{mode}-{n}")
                path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)  # keep the caller's too
                out = subprocess.run([sys.executable, "-c", CHILD, root, cache, str(n), str(args.dim), chunk],
                                     capture_output=True, text=True, cwd=here, env={**os.environ, "PYTHONPATH": path})
                if out.returncode:
                    sys.exit(out.stderr)
                row[mode] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
            peaks[n] = row
            features = (n + 16) * args.dim * 4 / 2**20
            print(f"{n:>6} {features:>13.0f} {row['streamed']:>18.1f} {row['buffered']:>18.1f}")
        small, large = min(sizes), max(sizes)
        print(f"growth {small} -> {large} images: streamed {peaks[large]['streamed'] - peaks[small]['streamed']:+.0f} MiB, "
              f"buffered {peaks[large]['buffered'] - peaks[small]['buffered']:+.0f} MiB")


if __name__ == "__main__":
    main()
