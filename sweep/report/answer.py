"""The answer first: for each dataset and training-set size, which method (backbone and mode)
is best, by how much over the runner-up, and whether that difference holds.

One sentence per (dataset, size): the best cell's mean ± std, the runner-up's, the mean
difference over the folds both were scored on, and the corrected resampled t-test's p-value
(sweep/report/statistics.py) between the two; "no clear winner" where p >= 0.05 or there are
fewer than two common folds. Every metric medsweep reports (AUC, quadratic kappa) is better
when higher. The p-value is the one test between the two leaders, not corrected for having
picked them as the two best of many (the statistics section has every pair, Holm-corrected).

Example::

    >>> [a["sentence"] for a in answers(studies)]          # doctest: +SKIP
    ['pneumonia, 500 images (M): linear dino is best, 0.9712 ± 0.0040 AUC; runner-up ...']
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from sweep.report.statistics import ALPHA, _p, corrected_resampled_ttest, method_label, size_of
from sweep.store.formatting import mean_std
from sweep.store.queries import aggregate_cells

METRIC_NAMES = {"auc": "AUC", "kappa_quadratic": "quadratic kappa"}


def _size(cell: dict) -> str:
    if cell.get("shots"):
        return f"{cell['shots']} image{'s' if cell['shots'] > 1 else ''} per class ({cell['subset']}, drawn from {cell['n_train']:,})"
    label = f"{cell['n_train']:,} images"
    return f"{label} ({cell['subset']})" if cell["subset"] in ("S", "M", "F") else label


def answers(studies: list[dict]) -> list[dict]:
    """One answer per (dataset, size) with at least one scored cell, in dataset and size order
    (a size: n_train, and a few-shot study's shots per class: statistics.size_of)."""
    folds: dict = defaultdict(dict)  # (dataset, size, method) -> {fold: test score}
    n_folds = {}
    for row in studies:
        if row.get("test_score") is not None and not math.isnan(row["test_score"]):
            folds[(row["dataset"], size_of(row), method_label(row))][row["fold"]] = row["test_score"]
            n_folds[(row["dataset"], size_of(row))] = int(row.get("n_folds") or 5)
    groups = defaultdict(list)
    for cell in aggregate_cells(studies):
        if cell["mean"] is not None:
            groups[(cell["dataset"], size_of(cell))].append({**cell, "method": method_label(cell)})
    out = []
    for (dataset, size), cells in sorted(groups.items()):
        ranked = sorted(cells, key=lambda c: c["mean"], reverse=True)
        out.append(_answer(dataset, size, ranked, folds, n_folds.get((dataset, size), 5)))
    return out


def _answer(dataset, size: tuple, ranked: list[dict], folds: dict, k: int) -> dict:
    best = ranked[0]
    metric = METRIC_NAMES.get(best.get("metric"), best.get("metric") or "score")
    head = f"{dataset}, {_size(best)}: "
    answer = {"dataset": dataset, "n_train": size[0], "shots": size[1], "subset": best["subset"], "metric": best.get("metric"),
              "best": best["method"], "best_mean": best["mean"], "best_std": best["std"], "runner_up": None,
              "runner_up_mean": None, "runner_up_std": None, "difference": None, "p_corrected": None,
              "folds": 0, "clear": False}
    if len(ranked) == 1:
        answer["sentence"] = (f"{head}only {best['method']} was run, {mean_std(best['mean'], best['std'])} {metric}; "
                              f"nothing to compare it with.")
        return answer
    second = ranked[1]
    a, b = folds[(dataset, size, best["method"])], folds[(dataset, size, second["method"])]
    common = sorted(set(a) & set(b))
    x, y = np.array([a[f] for f in common]), np.array([b[f] for f in common])
    p = _p(lambda u, v: corrected_resampled_ttest(u, v, 1 / (k - 1)), x, y) if len(common) >= 2 else math.nan
    difference = float((x - y).mean()) if common else best["mean"] - second["mean"]
    clear = not math.isnan(p) and p < ALPHA
    answer.update(runner_up=second["method"], runner_up_mean=second["mean"], runner_up_std=second["std"],
                  difference=difference, p_corrected=None if math.isnan(p) else p, folds=len(common), clear=clear)
    p_text = f"corrected p = {p:.3g}" if not math.isnan(p) else f"no p-value: {len(common)} common fold(s)"
    both = (f"{best['method']} {mean_std(best['mean'], best['std'])} and runner-up {second['method']} "
            f"{mean_std(second['mean'], second['std'])} {metric}, difference {difference:+.4f} over "
            f"{len(common)} folds ({p_text})")
    answer["sentence"] = (f"{head}{best['method']} is best, {mean_std(best['mean'], best['std'])} {metric}; "
                          f"runner-up {second['method']} {mean_std(second['mean'], second['std'])}, "
                          f"difference {difference:+.4f} over {len(common)} folds ({p_text})."
                          if clear else f"{head}no clear winner: {both}.")
    return answer
