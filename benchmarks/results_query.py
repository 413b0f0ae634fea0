"""Queries on a large results store: a synthetic store of 100,000 trial files (the paper
grid is about 10,000 trials; this is ten paper grids), then the time of the queries a user
runs afterwards.

    .venv/bin/python benchmarks/results_query.py [--trials 100000]

Writing the store takes a few minutes on 2 cores (one Parquet file per trial, written as the
driver writes them: each row also into the read index, in segments). Prints: the cold cells
query right after the writes (``sweep results --level cells`` in a fresh process's terms: a
new store object lists the trial files, reads the index segments, selects each study's best
trial, aggregates folds), a filtered studies query, then, for comparison, a read with the
index removed (every trial file opened, as before the driver kept the index); last line
``cold read: X s``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time

import numpy as np

from sweep.store.queries import aggregate_cells, filter_rows, select_studies
from sweep.store.store import ResultsStore

DATASETS = ("patchcam", "aptos", "pneumonia", "nih")
BACKBONES = ("random", "supervised", "swav", "simclr", "dino")


def _row(i: int) -> dict:
    rng = np.random.default_rng(i)
    study = i // 8  # 8 trials a study
    dataset, backbone = DATASETS[study % 4], BACKBONES[(study // 4) % 5]
    n_train, fold = (50, 500, 5000)[(study // 20) % 3], (study // 60) % 5
    cell = f"{dataset}-{backbone}-{n_train}-{study // 300}"
    val = float(rng.uniform(0.6, 0.95))
    return {
        "grid": "bench", "dataset": dataset, "backbone": backbone, "backbones": [backbone], "mode": "linear",
        "subset": str(n_train), "n_train": n_train, "fold": fold, "n_folds": 5, "study_id": f"s{study}",
        "cell_id": cell, "trial_id": f"t{i}", "lr": float(10 ** rng.uniform(-4, -3)), "epochs": 30,
        "max_epochs": 30, "stopped_early": False, "val_score": val, "test_score": val - 0.02, "metric": "auc",
        "status": "ok", "attention": True, "attention_form": "token", "views": 1, "embedding_dtype": "float32",
    }


def _write(args: tuple[str, range]) -> None:
    root, indices = args
    store = ResultsStore(root)
    for i in indices:
        store.write_trial(_row(i), index=True)  # as the driver's recorder does
    store.flush_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        store = ResultsStore(root)
        store.open_for("bench")
        start = time.perf_counter()
        workers = os.cpu_count() or 1
        chunks = [(root, range(k, args.trials, workers)) for k in range(workers)]
        with multiprocessing.Pool(workers) as pool:
            pool.map(_write, chunks)
        print(f"wrote {args.trials:,} trial files in {time.perf_counter() - start:.0f} s ({workers} processes)")

        segments = len(os.listdir(os.path.join(root, "index")))
        start = time.perf_counter()
        cold = ResultsStore(root)
        cells = aggregate_cells(select_studies(cold.read_trials().to_pylist()))
        cold_s = time.perf_counter() - start
        print(f"cold cells query after the writes: {len(cells):,} cells in {cold_s:.2f} s ({segments} index segments)")
        start = time.perf_counter()
        studies = filter_rows(select_studies(store.read_trials().to_pylist()),
                              {"dataset": ["aptos"], "n_train": ["100..1000"]})
        print(f"studies query --where dataset=aptos --where n_train=100..1000: {len(studies):,} studies in "
              f"{time.perf_counter() - start:.2f} s")
        for name in os.listdir(os.path.join(root, "index")):
            os.remove(os.path.join(root, "index", name))
        start = time.perf_counter()
        rows = ResultsStore(root).read_trials()
        print(f"read without an index (every trial file opened): {rows.num_rows:,} rows in "
              f"{time.perf_counter() - start:.1f} s")
        print(f"cold read: {cold_s:.2f} s")


if __name__ == "__main__":
    main()
