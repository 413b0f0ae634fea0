"""A frozen trial's memory against the size of the embedding cache it reads.

    .venv/bin/python benchmarks/trial_memory.py [--pool 100000] [--dim 2048]

Writes a synthetic cache file in the real format (pool x dim float32 plus a test split of a
fifth of that, PatchCam-like), then runs one linear trial on it in a fresh process at two
sizes: a small subset (500 images) and the whole pool. Each process reports, after imports
and after the trial: resident memory (peak, VmHWM: mapped cache pages it touched included,
which the page cache shares between trials, and library code paged in by the first ops), the
resident pages of the cache file's own mapping, and private memory (RssAnon: its own heap
and tensors, what one more packed trial costs). Sparse rows fault in their neighbours too (kernel
readahead), so even a small subset maps much of the file: those pages are the node's one
shared copy, not the trial's. Last line: ``private / cache: X`` for the
whole-pool trial.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic_cache import write_cache  # noqa: E402  (the benchmarks' shared helper)

CHILD = r"""
import json, sys
from trainables.training.memory import private_mib, resident_mib
import torch
import numpy as np
from sweep.spec import StudySpec
from trainables.context import TrialContext, TrialRun
from trainables.cache.embeddings import load_embeddings
from trainables.data.splits import balanced_subset, fold_split
from trainables.training.trainable import trial_epochs

path, n_train, pool = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size: the trial's own peak follows
before = {"resident": resident_mib(), "private": private_mib()}
spec = StudySpec(grid="bench", dataset="patchcam", backbones=("random",), mode="linear", subset=str(n_train),
                 n_train=n_train, fold=0, max_epochs=2, grace_period=1, batch_size=64)
# The split a sweep's driver would write (sweep/driver/manifests.py), over the cache's own labels.
labels = load_embeddings(path)["pool"].labels
subset = balanced_subset(labels, n_train, spec.seed)
train, val = fold_split(labels, subset, spec.n_folds, spec.fold, spec.seed)
manifest = path + ".manifest.json"
with open(manifest, "w") as f:
    json.dump({"train_rows": train.tolist(), "val_rows": val.tolist()}, f)
context = TrialContext(study=spec, cpus=1.0, gpus=0.0, data_root=None, holdout=None, skip=None, weights={}, trusted_code=(),
                       n_classes=2, manifest_file=manifest, manifest_digest="bench", embedding_files={"random": (path,)},
                       store_root=path + ".store", checkpoint_every_s=None)
def cache_pages():
    # resident MiB of the cache file mapping, read while the trial holds it
    mapped, current = 0.0, None
    for line in open("/proc/self/smaps"):
        if not line[0].isupper():
            current = line.split()[-1] if len(line.split()) >= 6 else None
        elif line.startswith("Rss:") and current == path:
            mapped += int(line.split()[1]) / 1024
    return mapped

mapped = 0.0
for record in trial_epochs(TrialRun(context, 1e-3, "bench")):
    mapped = max(mapped, cache_pages())
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
print(json.dumps({"before": before, "peak_resident": peak, "private": private_mib(), "cache_pages": mapped,
                  "reported_peak_rss": record["peak_rss_mib"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "cache.arrow")
        write_cache(path, args.pool, args.pool // 5, args.dim)
        size = os.path.getsize(path) / 2**20
        print(f"cache file: {args.pool:,} pool + {args.pool // 5:,} test rows x {args.dim} float32 = {size:,.0f} MiB")
        last = None
        for n_train in (500, args.pool):
            out = subprocess.run([sys.executable, "-c", CHILD, path, str(n_train), str(args.pool)],
                                 capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)) or ".")
            m = json.loads(out.stdout.strip().splitlines()[-1])
            private = m["private"] - m["before"]["private"]
            resident = m["peak_resident"] - m["before"]["resident"]
            print(f"linear trial on {n_train:,} images, 2 epochs: private +{private:,.0f} MiB; "
                  f"cache pages resident {m['cache_pages']:,.0f} MiB (shared page cache); resident peak "
                  f"+{resident:,.0f} MiB (library code paged in included); the row's peak_rss_mib "
                  f"{m['reported_peak_rss']:,.0f} (whole process)")
            last = private
        print(f"private / cache: {last / size:.3f}")


if __name__ == "__main__":
    main()
