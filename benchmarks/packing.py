"""Packing trials of many studies into one Tuner: the same small linear grid run with one
trial at a time and with the default concurrency (CPUs / the trials' CPU share), in one run.

    .venv/bin/python benchmarks/packing.py [--studies 8] [--trials 4]

Prints the wall time of each and, last, ``speedup: X`` (serial / packed). With 2 cores the
ceiling is about 2; trials much shorter than a second are dominated by Tune's per-trial
overhead in the driver, and packing them gains nothing (measure with ``--n-train 250 --epochs 12``).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import ray

from sweep.options import Resources, RunOptions, StoreOptions
from sweep.driver.runner import run_sweep
from sweep.spec import StudySpec


def grid(n_studies: int, n_trials: int, n_train: int, epochs: int) -> list[StudySpec]:
    backbones = ("test_resnet", "test_vit")
    return [
        StudySpec(grid="bench", dataset="digits", backbones=(backbones[i % 2],), mode="linear", subset=str(n_train),
                  n_train=n_train, fold=(i // 2) % 5, seed=i // 10, n_trials=n_trials, max_epochs=epochs,
                  grace_period=2, reduction_factor=2, batch_size=32, cpus=0.5, lr_min=1e-3, lr_max=1e-1)
        for i in range(n_studies)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=8)
    parser.add_argument("--trials", type=int, default=4)
    # Trials of a few hundred milliseconds are all Tune overhead; these sizes give each trial
    # a few seconds of work, as a real linear probe has.
    parser.add_argument("--n-train", type=int, default=1257)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    studies = grid(args.studies, args.trials, args.n_train, args.epochs)
    ray.init(include_dashboard=False, log_to_driver=False)
    cpus = ray.cluster_resources()["CPU"]
    print(f"{len(studies)} linear studies x {args.trials} trials ({args.n_train} images, "
          f"{args.epochs} epochs) on {cpus:.0f} CPUs")
    with tempfile.TemporaryDirectory() as warm:
        run_sweep(studies[:1], RunOptions(store=StoreOptions(results=warm), verbose=0))  # extraction and imports once
    times = {}
    for label, concurrent in (("serial", 1), ("packed", None)):
        with tempfile.TemporaryDirectory() as results:
            start = time.perf_counter()
            summary = run_sweep(studies, RunOptions(store=StoreOptions(results=results), resources=Resources(max_concurrent=concurrent), verbose=0))
            times[label] = time.perf_counter() - start
            print(f"{label:6s} max_concurrent={concurrent or 'default'}: {times[label]:.1f} s, "
                  f"{summary.trials_written} trials")
    print(f"speedup: {times['serial'] / times['packed']:.2f}")


if __name__ == "__main__":
    main()
