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
confusion matrix with scikit-learn's definition. In torch, on the trial's device: scoring
1,000 resamples of 32,768 images (PatchCam's test set) takes about a quarter second on 2 CPU
cores, drawing them twice that, once per process (``resamples_of``); a trial scores its
selected epoch once, when it ends (a few-shot trial: every episode).

Example::

    >>> labels = np.array([0, 0, 1, 1, 1])
    >>> probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])
    >>> resamples = BootstrapResamples(labels, resamples=3)
    >>> resamples.counts.sum(dim=1).tolist()
    [5, 5, 5]
"""

from __future__ import annotations

import collections
import hashlib
import numpy as np
import torch

from trainables.training.metrics import METRICS, MetricError

RESAMPLES = 1000
SEED = 0
# Resamples scored at once: bounds the float32 weight matrix to about 32 MiB (x a few copies).
CHUNK_ELEMENTS = 8_000_000
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
        # Scoring reads the counts image by image (the positives' rows gathered, every row
        # binned), so they are kept images x resamples: an image's counts are one contiguous row.
        # In float32 too, once, where a chunk holds them all (test sets below 8,000 images).
        self._by_image = torch.from_numpy(np.ascontiguousarray(counts.T)).to(self.device)
        self._chunk = max(1, CHUNK_ELEMENTS // max(1, n))
        self._float = self._by_image.float() if self._chunk >= resamples else None

    @property
    def counts(self) -> torch.Tensor:
        """How often each image was drawn: resamples x images."""
        return self._by_image.T

    def scores(self, metric: str, probs) -> np.ndarray:
        """The score of ``probs`` (N x C) on every resample, as ``metrics.score`` would give it."""
        if metric not in METRICS:
            raise MetricError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
        probs = torch.as_tensor(np.asarray(probs, np.float64), device=self.device)
        labels = torch.as_tensor(self.labels, device=self.device)
        out = []
        for start in range(0, self._by_image.shape[1], self._chunk):
            counts = self._float if self._float is not None else self._by_image[:, start:start + self._chunk].float()
            out.append(_weighted_auc(labels, probs, counts) if metric == "auc"
                       else _weighted_kappa(labels, probs, counts))
        return np.concatenate(out)


# Test sets whose resamples a process keeps: a worker runs trial after trial on one test set,
# and drawing PatchCam's resamples again would take longer than a demo trial's whole fit.
KEPT_TEST_SETS = 2
_kept: "collections.OrderedDict[tuple, BootstrapResamples]" = collections.OrderedDict()


def resamples_of(labels: np.ndarray, device=None) -> BootstrapResamples:
    """``BootstrapResamples(labels, device=device)``, drawn once per process for each of the last
    ``KEPT_TEST_SETS`` test sets (the draw depends on nothing else)."""
    labels = np.ascontiguousarray(labels)
    key = (hashlib.sha1(labels.tobytes()).hexdigest(), str(labels.dtype), len(labels), str(torch.device(device or "cpu")))
    if key in _kept:
        _kept.move_to_end(key)
        return _kept[key]
    resamples = _kept[key] = BootstrapResamples(labels, device=device)
    while len(_kept) > KEPT_TEST_SETS:
        _kept.popitem(last=False)
    return resamples


def _weighted_binary_auc(positive: torch.Tensor, scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per column of ``counts`` (images x resamples): P(score of a positive > score of a
    negative), ties half, each image counted as often as it was drawn.

    With the positives in score order and ``suffix[k]`` the count of those from the k-th on, a
    negative of score s is beaten by ``suffix[hi]`` positives and tied with ``suffix[lo] -
    suffix[hi]`` (lo, hi: the positives below s, and at or below it): half their sum. Summed
    over the negatives, that is half the dot product of ``suffix`` with the negatives' counts
    binned by lo and by hi: one pass over the counts, whatever the number of pairs (PatchCam's
    16,384 x 16,384 as the demo's 54 x 486)."""
    p = torch.nonzero(positive).flatten()
    ordered, order = torch.sort(scores[p])
    by_score = counts.index_select(0, p[order])
    prefix = torch.cat([by_score.new_zeros(1, by_score.shape[1]), torch.cumsum(by_score, dim=0)])
    suffix = prefix[-1] - prefix
    scores = scores.contiguous()
    lo, hi = torch.searchsorted(ordered, scores, right=False), torch.searchsorted(ordered, scores, right=True)
    # The positives' own counts go to a last bin, dropped: no gathering of the negatives' rows.
    dropped = len(p) + 1
    bins = counts.new_zeros(len(p) + 2, counts.shape[1])
    bins.index_add_(0, torch.where(positive, dropped, lo), counts)
    bins.index_add_(0, torch.where(positive, dropped, hi), counts)
    # Counts, their bins and suffix sums are integers below 2^24, exact in float32; the dot
    # products, up to twice the pairs, in float64.
    beaten = torch.linalg.vecdot(suffix.double(), bins[:-1].double(), dim=0) / 2
    # Every negative went into two kept bins: their sum is twice the negatives' count, read
    # off the bins instead of another pass over every image's counts (once per class).
    negatives = bins[:-1].sum(dim=0).double() / 2
    return beaten / (prefix[-1].double() * negatives)


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
    confusions = (onehot.T @ counts).T.double().reshape(-1, k, k).cpu().numpy()
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
