"""Bootstrap resamples of a test set: how far a cell's test score could move with another
draw of test images, the fold models held fixed (Patho-Bench's 95% intervals).

A trial scores its selected model on ``RESAMPLES`` stratified resamples of the test set (each
class drawn with replacement to its own count, so every resample holds every class as often
as the test set does) and keeps the ``RESAMPLES`` scores (``bootstrap/<study>/<trial>.npy``).
The resamples depend only on the test labels and ``SEED``: every trial of one test set draws
the same ones, so the query can average a cell's fold models resample by resample and read
the 2.5th and 97.5th percentiles of that mean (sweep/store/intervals.py).

A resample is a vector of counts (how often each test image was drawn), and each score is
computed with those counts as weights, which is the score of the resampled set exactly: AUC in
its Mann-Whitney form over the distinct scores (ties half), quadratic kappa from the weighted
confusion matrix with scikit-learn's definition. In torch, on the trial's device: 1,000
resamples of 32,768 images (PatchCam's test set) take about a second on one CPU core; a trial
scores them only when its validation score improves (a few-shot trial: every episode).

Example::

    >>> labels = np.array([0, 0, 1, 1, 1])
    >>> probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])
    >>> resamples = BootstrapResamples(labels, resamples=3)
    >>> resamples.counts.sum(dim=1).tolist()
    [5, 5, 5]
"""

from __future__ import annotations

import numpy as np
import torch

from trainables.training.metrics import METRICS, MetricError

RESAMPLES = 1000
SEED = 0
# Resamples scored at once: bounds the float32 weight matrix to about 32 MiB (x a few copies).
CHUNK_ELEMENTS = 8_000_000
# Positives x negatives of one class up to which AUC is one matrix product over the pairs
# (a float32 matrix of 16 MiB); above it, by ranks.
PAIRWISE_MAX = 4_000_000
DRAW_BLOCK = 50  # resamples drawn at once (50 x 32,768 images: 13 MiB of uniforms)


class BootstrapResamples:
    """The stratified resamples of one test set, as counts (resamples x images) on ``device``
    (a trial's GPU share scores them there). uint8 keeps PatchCam's 1,000 x 32,768 at 31 MiB: an
    image's count is Binomial(n_c, 1/n_c) for a class of n_c images, and P(count > 255) is below
    1e-500."""

    def __init__(self, labels: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, device=None):
        self.labels = np.asarray(labels)
        n = len(self.labels)
        # Each image's draw: a uniform number picks a member of the image's own class, so every
        # class is drawn to its own count. Resamples come in blocks of DRAW_BLOCK, block k from a
        # generator seeded (seed, k): resample b is the same whatever the count asked for.
        members = np.argsort(self.labels, kind="stable")
        classes, first, sizes = np.unique(self.labels[members], return_index=True, return_counts=True)
        position = np.searchsorted(classes, self.labels)
        start, size = first[position], sizes[position]
        counts = np.zeros((resamples, n), np.uint8)
        for block in range(0, resamples, DRAW_BLOCK):
            rows = min(DRAW_BLOCK, resamples - block)
            uniform = np.random.default_rng([seed, block // DRAW_BLOCK]).random((rows, n))
            drawn = members[start + (uniform * size).astype(np.int64)]
            flat = (drawn + np.arange(rows)[:, None] * n).ravel()
            counts[block:block + rows] = np.bincount(flat, minlength=rows * n).reshape(rows, n)
        self.device = torch.device(device or "cpu")
        self.counts = torch.from_numpy(counts).to(self.device)

    def scores(self, metric: str, probs) -> np.ndarray:
        """The score of ``probs`` (N x C) on every resample, as ``metrics.score`` would give it."""
        if metric not in METRICS:
            raise MetricError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
        probs = torch.as_tensor(np.asarray(probs, np.float64), device=self.device)
        labels = torch.as_tensor(self.labels, device=self.device)
        chunk = max(1, CHUNK_ELEMENTS // max(1, len(self.labels)))
        out = []
        for start in range(0, len(self.counts), chunk):
            counts = self.counts[start:start + chunk].float()
            out.append(_weighted_auc(labels, probs, counts) if metric == "auc"
                       else _weighted_kappa(labels, probs, counts))
        return np.concatenate(out)


def _weighted_binary_auc(positive: torch.Tensor, scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per row of ``counts``: P(score of a positive > score of a negative), ties half, each
    image counted as often as it was drawn. A test set of few pairs (the demo's: 54 x 486 a
    class) as one matrix product over every (positive, negative) pair; a large one (PatchCam's
    16,384 x 16,384) by ranks, in memory linear in the images."""
    p, n = torch.nonzero(positive).flatten(), torch.nonzero(~positive).flatten()
    if len(p) * len(n) <= PAIRWISE_MAX:
        diff = scores[p][:, None] - scores[n][None, :]
        beats = (diff > 0).float() + 0.5 * (diff == 0).float()
        c_pos, c_neg = counts.index_select(1, p), counts.index_select(1, n)
        # Every entry and product below is a multiple of 0.5 under 2^23, exact in float32; the
        # sums over a resample accumulate in float64.
        beaten = ((c_pos @ beats) * c_neg).sum(dim=1, dtype=torch.float64)
        return beaten / (c_pos.sum(dim=1).double() * c_neg.sum(dim=1).double())
    return _ranked_binary_auc(positive, scores, counts)


def _ranked_binary_auc(positive: torch.Tensor, scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per row of ``counts``: P(score of a positive > score of a negative), ties half, each
    image counted as often as it was drawn. In score order, a positive at position i beats the
    negatives before its group of tied scores and ties the negatives in it: half the sum of
    the negatives' cumulative count before the group's start and at its end."""
    order = torch.argsort(scores, stable=True)
    ordered, pos = scores[order], positive[order]
    n = len(ordered)
    new_group = torch.ones(n, dtype=torch.bool, device=scores.device)
    new_group[1:] = ordered[1:] != ordered[:-1]
    index = torch.arange(n, device=scores.device)
    group_start = torch.cummax(torch.where(new_group, index, 0), dim=0).values
    starts = torch.nonzero(new_group).flatten()
    ends = torch.cat([starts[1:], starts.new_tensor([n])]) - 1
    group_end = ends[torch.cumsum(new_group.long(), dim=0) - 1]
    counts = counts.index_select(1, order)
    # float32 holds every count and cumulative count exactly (below 2^24); products and sums
    # go to float64.
    negatives = torch.cumsum(counts * ~pos, dim=1)
    p = torch.nonzero(pos).flatten()
    start, end = group_start[p], group_end[p]
    before_start = negatives.index_select(1, start) - counts.index_select(1, start) * ~pos[start]
    both = (before_start + negatives.index_select(1, end)).double()
    c_pos = counts.index_select(1, p).double()
    beaten = (c_pos * both).sum(dim=1) / 2
    return beaten / (c_pos.sum(dim=1) * negatives[:, -1].double())


def _weighted_auc(labels: torch.Tensor, probs: torch.Tensor, counts: torch.Tensor) -> np.ndarray:
    """metrics.score's AUC: the positive class's with two classes, else one-vs-rest over the
    classes present, averaged."""
    if probs.shape[1] == 2:
        return _weighted_binary_auc(labels == 1, probs[:, 1], counts).cpu().numpy()
    per_class = [_weighted_binary_auc(labels == c, probs[:, c], counts) for c in torch.unique(labels)]
    return torch.stack(per_class).mean(dim=0).cpu().numpy()


def _weighted_kappa(labels: torch.Tensor, probs: torch.Tensor, counts: torch.Tensor) -> np.ndarray:
    """scikit-learn's quadratic kappa of the argmax: over the labels that occur in the resample
    (true or predicted), weights (i - j)^2 by their positions in that sorted list."""
    k = probs.shape[1]
    codes = labels * k + probs.argmax(dim=1)
    onehot = torch.nn.functional.one_hot(codes, k * k).float()
    confusions = (counts @ onehot).double().reshape(-1, k, k).cpu().numpy()
    out = np.empty(len(confusions))
    for b, confusion in enumerate(confusions):
        present = np.flatnonzero(confusion.sum(axis=0) + confusion.sum(axis=1))
        c = confusion[np.ix_(present, present)]
        expected = np.outer(c.sum(axis=1), c.sum(axis=0)) / c.sum()
        positions = np.arange(len(present))
        quadratic = (positions[:, None] - positions[None, :]) ** 2
        denominator = (quadratic * expected).sum()
        out[b] = 1.0 - (quadratic * c).sum() / denominator if denominator else np.nan
    return out
