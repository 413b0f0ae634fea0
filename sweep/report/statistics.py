"""Paired comparisons of methods over the same folds, so that "DINO beats SwAV" carries a
p-value.

Within a family (one dataset, one training-set size, frozen or finetuned), every two methods
that were scored on the same folds are compared on their selected trials' test scores, fold
by fold: the mean difference, a paired t-test (scipy's ``ttest_rel``), the corrected
resampled t-test, and the Wilcoxon signed-rank test (``wilcoxon``; with 5 folds its smallest
two-sided p is 0.0625, so it can never reach 0.05 there).

The fold scores are not independent: the k fold models share (k-2)/(k-1) of their training
images and are scored on one test set, so the plain paired t-test underestimates the
variance of the mean difference and finds differences too often. Nadeau & Bengio's corrected
resampled t-test (Machine Learning 52, 2003) replaces the variance factor 1/k by
1/k + n2/n1, n2/n1 the held-out share over the training share of each resample: 1/(k-1) for
k folds (5 folds: 0.45 instead of 0.2, so t shrinks by 1.5x). Its p-values, Holm-corrected for
the number of pairs of a family, decide ``significant``; the plain t-test is shown beside it.

Example::

    >>> rows = paired_comparisons(select_studies(trials))      # doctest: +SKIP
    >>> [(r["a"], r["b"], r["p_holm"]) for r in rows]           # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from itertools import combinations
from types import SimpleNamespace

import numpy as np
from scipy.stats import ttest_rel, wilcoxon

from trainables.errors import UserError
from trainables.models.modes import get_mode

ALPHA = 0.05


def method_label(row: dict) -> str:
    """How a study's method reads in tables, naming every setting that makes two methods
    differ, so that no two are ever merged into one row: 'linear dino', 'linear dino (4
    views)', 'dvme simclr+swav+dino (listing attention, 4 views)', 'dvme simclr+swav+dino
    (3-token attention)', 'dvme ... (listing attention, qkv bias)', 'dvme ... (no attention)',
    'dvme ... (no attention, MLP head)', 'linear dino (float16)', 'finetune supervised'."""
    qualifiers = []
    if row["mode"] == "dvme":
        if not row.get("attention", True):
            qualifiers.append("no attention" + (", MLP head" if row.get("no_attention_head") == "mlp" else ""))
        else:
            qualifiers.append({"token": f"{len(row.get('backbones') or ())}-token attention"}.get(
                row.get("attention_form") or "token", f"{row.get('attention_form')} attention"))
            if row.get("qkv_bias"):
                qualifiers.append("qkv bias")
    if (row.get("views") or 1) > 1:
        qualifiers.append(f"{row['views']} views")
    if (row.get("embedding_dtype") or "float32") != "float32":
        qualifiers.append(row["embedding_dtype"])
    label = f"{row['mode']} {row['backbone']}"
    return f"{label} ({', '.join(qualifiers)})" if qualifiers else label


def size_of(row: dict) -> tuple[int, int]:
    """A row's training-set size as the tables and tests group it: (n_train, shots). A few-shot
    study draws its episodes from the same fold rows as a whole-pool study, so its shots per
    class tell the sizes apart (0 for every other mode)."""
    return int(row["n_train"]), int(row.get("shots") or 0)


def size_text(row: dict) -> str:
    """``250`` images, or a few-shot study's ``4-shot``."""
    n_train, shots = size_of(row)
    return f"{shots}-shot" if shots else str(n_train)


def family_of(row: dict) -> tuple:
    return (row["dataset"], get_mode(row["mode"]).family, *size_of(row))


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


def corrected_resampled_ttest(a: np.ndarray, b: np.ndarray, held_out_over_training: float):
    """Nadeau & Bengio's corrected resampled t-test of paired scores over k resamples (two-
    sided): t = mean(d) / sqrt((1/k + n2/n1) * var(d)), k - 1 degrees of freedom."""
    from scipy.stats import t as student

    d = np.asarray(a, float) - np.asarray(b, float)
    k = len(d)
    variance = d.var(ddof=1) * (1 / k + held_out_over_training)
    statistic = d.mean() / math.sqrt(variance)
    return SimpleNamespace(statistic=statistic, pvalue=float(2 * student.sf(abs(statistic), k - 1)))


def _p(test, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.allclose(a, b):
        return math.nan  # no pairs to test, or no difference at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on tiny samples; the p-value says it
        return float(test(a, b).pvalue)


def paired_comparisons(studies: list[dict]) -> list[dict]:
    """One row per pair of methods per family: n folds, mean of each, mean difference (a - b),
    paired t-test p, Wilcoxon p, corrected resampled t-test p, each t-test Holm-adjusted, and
    whether the corrected one's adjusted p is below 0.05."""
    scores: dict = defaultdict(dict)  # (family, method) -> {fold: test score}
    metric, n_folds = {}, {}
    for row in studies:
        if row.get("test_score") is None or math.isnan(row["test_score"]):
            continue
        key = (family_of(row), method_label(row))
        if row["fold"] in scores[key]:
            raise UserError(f"two studies of {key[1]} score fold {row['fold']} of {key[0]}: the method label "
                             f"does not tell them apart")
        scores[key][row["fold"]] = row["test_score"]
        metric[family_of(row)] = row.get("metric")
        n_folds[family_of(row)] = int(row.get("n_folds") or 5)
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
                "dataset": family[0], "modes": family[1], "n_train": family[2], "shots": family[3],
                "metric": metric[family],
                "a": a, "b": b, "folds": len(folds),
                "mean_a": float(x.mean()), "mean_b": float(y.mean()), "difference": float((x - y).mean()),
                "p_ttest": _p(ttest_rel, x, y), "p_wilcoxon": _p(wilcoxon, x, y),
                # k-fold cross-validation: each fold model holds out 1/k and trains on (k-1)/k.
                "p_corrected": _p(lambda u, v: corrected_resampled_ttest(u, v, 1 / (n_folds[family] - 1)), x, y),
            })
        for row, adjusted in zip(rows, holm([r["p_ttest"] for r in rows])):
            row["p_holm"] = adjusted
        for row, adjusted in zip(rows, holm([r["p_corrected"] for r in rows])):
            row["p_corrected_holm"] = adjusted
            row["significant"] = bool(not math.isnan(adjusted) and adjusted < ALPHA)
        out += rows
    return out
