"""Mini-batches of cached embeddings, gathered batch by batch from the memory-mapped files.

A frozen trial never copies its split out of the cache: each batch gathers its rows from the
mapped pages (float16 files converted to float32 one batch at a time), so a trial's own
memory is a batch and a head, whatever the cache's size, and the pages are shared by every
trial on the node. It replaces a DataLoader, whose per-row collation cost more than the
linear head's whole step.

Several views (``--views K``): each pass over the batches reads the next view of the rows,
so epoch e trains on view e mod K.

Example::

    >>> batches = FeatureBatches([[pool_features]], labels, rows, batch_size=64, shuffle=True, seed=0)  # doctest: +SKIP
    >>> for features, y in batches: ...                                                                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np
import torch


def balanced_weights(labels: torch.Tensor) -> torch.Tensor:
    """Oversampling weights: each class drawn equally often in expectation."""
    return 1.0 / torch.bincount(labels)[labels].double()


class FeatureBatches:
    """``views[v][b]``: the (N, D) matrix of backbone b in view v; ``rows`` index all of them."""

    def __init__(
        self,
        views: Sequence[Sequence[np.ndarray]],
        labels: np.ndarray,
        rows: Optional[np.ndarray],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        balance: bool = False,
    ):
        if not views or any(len(v) != len(views[0]) for v in views):
            raise ValueError("every view needs one feature matrix per backbone")
        self.views = views
        self.rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.labels = torch.as_tensor(np.asarray(labels)[self.rows])
        self.batch_size, self.shuffle, self.balance = batch_size, shuffle, balance
        self.generator = torch.Generator().manual_seed(seed)
        self.passes = 0
        if balance:
            self.weights = balanced_weights(self.labels)

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def _order(self) -> torch.Tensor:
        n = len(self.rows)
        if self.balance:
            return torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def __iter__(self) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
        matrices = self.views[self.passes % len(self.views)]
        self.passes += 1
        order = self._order()
        for start in range(0, len(order), self.batch_size):
            picked = order[start : start + self.batch_size]
            rows = self.rows[picked.numpy()]
            # Fancy indexing copies just this batch out of the mapped pages.
            features = [torch.from_numpy(np.asarray(m[rows], dtype=np.float32)) for m in matrices]
            yield features, self.labels[picked]
