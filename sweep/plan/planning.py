"""What a grid will run, checked before any trial starts.

``check_studies`` validates names and sizes against the registries; ``summarize`` counts
studies, trials and cells per dataset and mode (trials = studies x n_trials, the most a
study runs; ASHA stops some of them early but each still counts as a trial).
"""

from __future__ import annotations

from collections import Counter

from sweep.spec import SpecError, StudySpec
from trainables.models.backbones import get_backbone_info
from trainables.data.datasets import get_dataset_info
from trainables.cache.embeddings import views_problem


def check_studies(studies: list[StudySpec]) -> None:
    """Raise SpecError naming the first study field that cannot run."""
    for s in studies:
        info = get_dataset_info(s.dataset)
        for b in s.backbones:
            get_backbone_info(b)
        problem = views_problem(info, s.views)
        if problem:
            raise SpecError(f"study {s.study_id}: {problem}; use views=1")
        if s.n_train is None:
            continue  # the whole pool: checked against the data when the sweep starts
        if info.pool_size is not None and s.n_train > info.pool_size:
            raise SpecError(
                f"study {s.study_id}: n_train {s.n_train} is larger than the {s.dataset} "
                f"training pool ({info.pool_size} images)"
            )
        if s.n_train // s.n_folds < 2:
            raise SpecError(
                f"study {s.study_id}: {s.n_train} images in {s.n_folds} folds leave validation "
                f"folds of fewer than 2 images"
            )


def summarize(grid: str, studies: list[StudySpec]) -> dict:
    by_key: Counter = Counter()
    trials_by_key: Counter = Counter()
    for s in studies:
        by_key[(s.dataset, s.mode)] += 1
        trials_by_key[(s.dataset, s.mode)] += s.n_trials
    rows = [
        {"dataset": d, "mode": m, "studies": by_key[(d, m)], "trials": trials_by_key[(d, m)]}
        for d, m in sorted(by_key)
    ]
    return {
        "grid": grid,
        "studies": len(studies),
        "trials": sum(s.n_trials for s in studies),
        "cells": len({s.cell_id for s in studies}),
        "datasets": sorted({s.dataset for s in studies}),
        "backbones": sorted({b for s in studies for b in s.backbones}),
        "modes": sorted({s.mode for s in studies}),
        "by_dataset_mode": rows,
    }
