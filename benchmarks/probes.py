"""The field's probes beside the paper's Adam-trained linear probe, on the same cached features:
wall time of one study's search and the test score it selects, side by side in one run.

    .venv/bin/python benchmarks/probes.py [--pool 50000] [--dim 2048] [--trials 8]

Two caches: the demo's (digits through test_vit, M = 250 images, fold 0) and a synthetic
PatchCam F-shaped pool (``--pool`` x ``--dim`` float32, 2 classes, a fifth of that as the test
set; benchmarks/synthetic_cache.py), its whole pool the study (fold 0 of 5). Per probe, one
study of ``--trials`` trials run one after another in this process, as a trial runs them
(trainables/training/trainable.py; Tune and ASHA left out, so the Adam probe's 8 trials each
run their 100 epochs: the upper bound of its study, where ASHA would stop some):
  adam      the paper's linear probe: LR 1e-4..1e-3, 100 epochs, batch 256
  logistic  L-BFGS to convergence, C over 1e-6..1e5 (scikit-learn here: no GPU)
  knn       DINO's weighted kNN, k over 1..200
The trials' values are evenly spaced over each range (log where the mode searches a log scale)
instead of Optuna's suggestions: the same number of fits, the same cost. The selected trial is
the best validation score, as in a sweep. Each probe runs one untimed trial first (imports and
thread pools are a worker process's cost, paid once, not a study's). Last lines: ``speed-up logistic vs adam:`` per cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic_cache import write_cache  # noqa: E402

PROBES = {"adam": "linear", "logistic": "logistic", "knn": "knn"}


def values(mode: str, trials: int) -> list[float]:
    from trainables.models.modes import get_mode

    search = get_mode(mode).search
    low, high = (1e-4, 1e-3) if search.low is None else (search.low, search.high)
    points = np.geomspace(low, high, trials) if search.log else np.linspace(low, high, trials)
    return [float(round(p)) if search.integer else float(p) for p in points]


def study_context(cache: str, n_train: int, mode: str, work: str):
    from sweep.spec import StudySpec
    from trainables.cache.embeddings import load_embeddings
    from trainables.context import TrialContext
    from trainables.data.splits import balanced_subset, fold_split

    settings = dict(max_epochs=100, grace_period=5, batch_size=256) if mode == "linear" else dict(max_epochs=1,
                                                                                                  grace_period=1)
    spec = StudySpec(grid="bench", dataset="patchcam", backbones=("random",), mode=mode, subset=str(n_train),
                     n_train=n_train, fold=0, n_folds=5, **settings)
    labels = load_embeddings(cache)["pool"].labels
    train, val = fold_split(labels, balanced_subset(labels, n_train, spec.seed), 5, 0, spec.seed)
    manifest = os.path.join(work, f"{mode}-{n_train}.manifest.json")
    with open(manifest, "w") as f:
        json.dump({"train_rows": train.tolist(), "val_rows": val.tolist()}, f)
    n_classes = int(labels.max()) + 1
    return TrialContext(study=spec, cpus=float(os.cpu_count() or 1), gpus=0.0, data_root=None, holdout=None, skip=None,
                        weights={}, trusted_code=(), n_classes=n_classes, manifest_file=manifest,
                        manifest_digest="bench", embedding_files={"random": (cache,)},
                        store_root=os.path.join(work, "store"), checkpoint_every_s=None)


def run_study(cache: str, n_train: int, mode: str, trials: int, work: str) -> dict:
    from trainables.context import TrialRun
    from trainables.training.trainable import trial_epochs

    context = study_context(cache, n_train, mode, work)
    started = time.perf_counter()
    best = None
    for i, value in enumerate(values(mode, trials)):
        last = list(trial_epochs(TrialRun(context, value, f"t{i}")))[-1]
        if best is None or last["best_val_score"] > best["best_val_score"]:
            best = {**last, "value": value}
    return {"wall_s": time.perf_counter() - started, "test_score": best["test_score"], "value": best["value"]}


def demo_cache(work: str) -> tuple[str, int]:
    """The demo's digits through test_vit (random weights), and the demo's M size."""
    from trainables.cache.embeddings import ensure_embeddings

    return ensure_embeddings("digits", None, "test_vit", None, os.path.join(work, "demo"), progress=False), 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        synthetic = os.path.join(work, "synthetic.arrow")
        write_cache(synthetic, args.pool, args.pool // 5, args.dim, shift=0.05)
        caches = {"demo (digits x test_vit, M = 250)": demo_cache(work),
                  f"synthetic {args.pool:,} x {args.dim} (F)": (synthetic, args.pool)}
        # One trial of each probe first, untimed: the imports and the first use of each thread
        # pool are paid once per worker process, not once per study.
        for mode in PROBES.values():
            run_study(*caches[next(iter(caches))], mode, 1, work)
        print(f"{'cache':<36} {'probe':<9} {'study wall s':>12} {'test score':>10}  selected value")
        speedups = []
        for label, (cache, n_train) in caches.items():
            results = {}
            for probe, mode in PROBES.items():
                results[probe] = run_study(cache, n_train, mode, args.trials, work)
                r = results[probe]
                print(f"{label:<36} {probe:<9} {r['wall_s']:>12.2f} {r['test_score']:>10.4f}  {r['value']:.3g}",
                      flush=True)
            speedups.append((label, results))
        for label, r in speedups:
            print(f"speed-up logistic vs adam: {r['adam']['wall_s'] / r['logistic']['wall_s']:.1f}x on {label} "
                  f"(test {r['logistic']['test_score']:.4f} vs {r['adam']['test_score']:.4f}); "
                  f"knn vs adam: {r['adam']['wall_s'] / r['knn']['wall_s']:.1f}x (test {r['knn']['test_score']:.4f})")


if __name__ == "__main__":
    main()
