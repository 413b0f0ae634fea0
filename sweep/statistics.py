"""Paired comparisons of methods over the same folds, so that "DINO beats SwAV" carries a
p-value.

Within a family (one dataset, one training-set size, frozen or finetuned), every two methods
that were scored on the same folds are compared on their selected trials' test scores, fold
by fold: the mean difference, a paired t-test (scipy's ``ttest_rel``) and the Wilcoxon
signed-rank test (``wilcoxon``; with 5 folds its smallest two-sided p is 0.0625, so it can
never reach 0.05 there: the t-test is the one to read, the Wilcoxon the check that does not
assume normality). The t-test p-values of a family are Holm-corrected for its number of
pairs.

Example::

    >>> rows = paired_comparisons(select_studies(trials))      # doctest: +SKIP
    >>> [(r["a"], r["b"], r["p_holm"]) for r in rows]           # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from itertools import combinations

import numpy as np
from scipy.stats import ttest_rel, wilcoxon

ALPHA = 0.05


def method_label(row: dict) -> str:
    """How a study's method reads in tables: 'linear dino', 'dvme simclr+swav+dino',
    'dvme simclr+swav+dino (no attention)', 'finetune supervised'."""
    label = f"{row['mode']} {row['backbone']}"
    if row["mode"] == "dvme" and not row.get("attention", True):
        label += " (no attention)"
    if (row.get("views") or 1) > 1:
        label += f" ({row['views']} views)"
    return label


def family_of(row: dict) -> tuple:
    return row["dataset"], "finetune" if row["mode"] == "finetune" else "frozen", int(row["n_train"])


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the given order (nan stays nan, not counted)."""
    finite = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(finite)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _p(test, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.allclose(a, b):
        return math.nan  # no pairs to test, or no difference at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on tiny samples; the p-value says it
        return float(test(a, b).pvalue)


def paired_comparisons(studies: list[dict]) -> list[dict]:
    """One row per pair of methods per family: n folds, mean of each, mean difference (a - b),
    t-test p, Wilcoxon p, Holm-adjusted t-test p, and whether that is below 0.05."""
    scores: dict = defaultdict(dict)  # (family, method) -> {fold: test score}
    metric = {}
    for row in studies:
        if row.get("test_score") is None or math.isnan(row["test_score"]):
            continue
        key = (family_of(row), method_label(row))
        scores[key][row["fold"]] = row["test_score"]
        metric[family_of(row)] = row.get("metric")
    out = []
    families = sorted({family for family, _ in scores})
    for family in families:
        methods = sorted(m for f, m in scores if f == family)
        rows = []
        for a, b in combinations(methods, 2):
            folds = sorted(set(scores[(family, a)]) & set(scores[(family, b)]))
            x = np.array([scores[(family, a)][f] for f in folds])
            y = np.array([scores[(family, b)][f] for f in folds])
            if len(folds) < 2:
                continue
            rows.append({
                "dataset": family[0], "modes": family[1], "n_train": family[2], "metric": metric[family],
                "a": a, "b": b, "folds": len(folds),
                "mean_a": float(x.mean()), "mean_b": float(y.mean()), "difference": float((x - y).mean()),
                "p_ttest": _p(ttest_rel, x, y), "p_wilcoxon": _p(wilcoxon, x, y),
            })
        for row, adjusted in zip(rows, holm([r["p_ttest"] for r in rows])):
            row["p_holm"] = adjusted
            row["significant"] = bool(not math.isnan(adjusted) and adjusted < ALPHA)
        out += rows
    return out
