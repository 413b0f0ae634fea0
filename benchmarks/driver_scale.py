"""Driver cost per trial as a sweep grows: near-zero-work trials (a linear head on cached
digits features, 50 images, 2 epochs) at 100, 400 and 1,600 trials (10,000 with
``--counts 1600 10000``: about 8 minutes here), 4 trials a study.

    .venv/bin/python benchmarks/driver_scale.py [--counts 100 400 1600] [--concurrent N]

Trials run as many at once as `sweep run` runs them by default (the CPUs over a trial's
0.25 CPU: 8 on 2 cores), with as many waiting beside them, so that a finished trial's actor
(its process, torch imported) goes straight to the next trial (sweep/driver/runner.py,
``pending_trials``); ``--concurrent N`` is `--max-concurrent N`, where Tune's concurrency
limit holds nothing waiting and more trials start a process of their own.

The cache is filled once before the timed runs; each count runs in a fresh results store.
Prints per count: wall time, per trial and per reported epoch, the trials' own summed time
(what they did inside their processes), and the per-trial overhead: (wall - summed trial
time / concurrent trials) / trials, what the driver, Tune's loop, the searcher and scheduler,
the actors and the store cost each trial. Growth with the number of trials would show as a
rising overhead. Last line ``per-trial overhead: X s`` at the largest count (goal: flat,
under 0.05 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def studies(count: int, per_study: int = 4) -> list:
    from sweep.spec import StudySpec

    return [StudySpec(grid="scale", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S",
                      n_train=50, fold=i % 5, seed=i // 5, n_trials=per_study, max_epochs=2, grace_period=2,
                      batch_size=64, lr_min=1e-3, lr_max=1e-1, cpus=0.25)
            for i in range(count // per_study)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 400, 1600])
    parser.add_argument("--concurrent", type=int, default=None,
                        help="trials at once (--max-concurrent) [default: as sweep run: CPUs / 0.25]")
    args = parser.parse_args()
    os.environ.setdefault("RAY_ADDRESS", "local")
    import ray

    from sweep.driver.runner import run_sweep
    from sweep.options import Resources, RunOptions, StoreOptions
    from sweep.store.store import ResultsStore
    from trainables.cache.embeddings import ensure_embeddings

    ray.init(address="local", include_dashboard=False, log_to_driver=False)  # one Ray for every count
    lines = []
    with tempfile.TemporaryDirectory() as work:
        cache = os.path.join(work, "cache")
        ensure_embeddings("digits", None, "test_resnet", None, cache, progress=False)
        for count in args.counts:
            results = os.path.join(work, f"results-{count}")
            options = RunOptions(store=StoreOptions(results=results, cache=cache),
                                 resources=Resources(max_concurrent=args.concurrent), verbose=0)
            concurrent = args.concurrent or int(ray.cluster_resources().get("CPU", 1) / 0.25)
            start = time.perf_counter()
            run_sweep(studies(count), options)
            wall = time.perf_counter() - start
            rows = ResultsStore(results).read_trials().to_pylist()
            epochs = sum(r["epochs"] or 0 for r in rows)
            inside = sum(r["wall_s"] or 0 for r in rows)
            overhead = (wall - inside / concurrent) / len(rows)
            line = (f"{len(rows):>5} trials ({epochs:,} epochs, {concurrent} at once): wall {wall:.1f} s, {wall / len(rows):.3f} s a trial, "
                    f"{wall / max(epochs, 1):.3f} s an epoch; trials' own time {inside:.1f} s; "
                    f"per-trial overhead {overhead:.3f} s")
            print(line, flush=True)
            lines.append(overhead)
    ray.shutdown()
    print(f"per-trial overhead: {lines[-1]:.3f} s")


if __name__ == "__main__":
    main()
