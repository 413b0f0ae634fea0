"""Class-balanced subsets and stratified (grouped) folds, deterministic from a seed.

The subset rule ("equal counts per class where the pool allows"): classes are visited in
rounds, one image per class per round, in a seeded random class order each round; a class
whose images run out drops out and the others go on. The first ``n`` images of that order are
the subset of size ``n``. So every class gets ``n // n_classes`` images (one more for some
when ``n`` does not divide), a class smaller than its share gives all it has and its shortfall
is spread equally over the others, and subsets are nested: for one seed the 50-image subset
is inside the 500-image one (size curves compare like with like).

Folds: ``StratifiedKFold`` on the subset, or ``StratifiedGroupKFold`` where images have
patients, so no patient is in both training and validation of a fold.

Example::

    >>> labels = np.array([0] * 10 + [1] * 3)
    >>> sub = balanced_subset(labels, 6, seed=0)
    >>> np.bincount(labels[sub]).tolist()
    [3, 3]
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from trainables.errors import UserError


class SplitError(UserError):
    """A subset or fold the data cannot give; the message says which size or class."""


def balanced_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """All pool indices in class-balanced round-robin order (see the module docstring)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    queues = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in classes}
    order: list[int] = []
    while queues:
        for c in rng.permutation(list(queues)):
            order.append(queues[c].pop())
            if not queues[c]:
                del queues[c]
    return np.asarray(order, dtype=np.int64)


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The first ``n`` indices of :func:`balanced_order`, sorted."""
    if n > len(labels):
        raise SplitError(f"subset of {n} images asked from a pool of {len(labels)}")
    return np.sort(balanced_order(labels, seed)[:n])


def fold_split(
    labels: np.ndarray,
    subset: np.ndarray,
    n_folds: int,
    fold: int,
    seed: int,
    groups: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) pool indices of ``fold`` of ``n_folds`` over ``subset``."""
    sub_labels = np.asarray(labels)[subset]
    if len(np.unique(sub_labels)) < 2:
        raise SplitError(f"the subset of {len(subset)} images holds a single class: nothing to classify")
    # A class with fewer images than folds is allowed (the paper's NIH S subset has 4 per class
    # for 5 folds): scikit-learn warns and some validation folds then miss that class.
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(subset, sub_labels)
    else:
        sub_groups = np.asarray(groups)[subset]
        if len(np.unique(sub_groups)) < n_folds:
            raise SplitError(f"{len(np.unique(sub_groups))} patients cannot make {n_folds} folds")
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(subset, sub_labels, sub_groups)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        train, val = list(splits)[fold]
    return subset[train], subset[val]


def episode_support(labels: np.ndarray, shots: int, seed: int, fold: int, episode: int) -> np.ndarray:
    """Indices (into ``labels``) of one few-shot episode's support set: ``shots`` images of each
    class, or all a class has when it holds fewer, sorted.

    Each class's images are put in a random order seeded by (seed, fold, episode, class) alone,
    and the support takes the first ``shots``: for one episode the 1-shot support is inside
    the 2-shot one, and so on (shot curves compare like with like, as the nested subsets do).

    >>> labels = np.array([0, 0, 0, 1, 1, 1, 1])
    >>> one, two = (episode_support(labels, k, seed=0, fold=0, episode=3) for k in (1, 2))
    >>> set(one) <= set(two), np.bincount(labels[two]).tolist()
    (True, [2, 2])
    """
    labels = np.asarray(labels)
    support = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rng = np.random.default_rng([seed, fold, episode, int(c)])
        support.append(rng.permutation(members)[:shots])
    return np.sort(np.concatenate(support)) if support else np.zeros(0, np.int64)
