"""What a dataset reader returns (trainables/data/readers.py) and the registry hands out
(trainables/data/datasets.py): apart, so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from trainables.errors import UserError


class DatasetError(UserError):
    """Data that cannot be used; the message names the dataset, file or value."""


@dataclass
class ImageSet:
    """Images (uint8, C x H x W each, indexable), integer labels (-1 where hidden), groups."""

    images: torch.Tensor
    labels: np.ndarray
    ids: list[str]
    groups: Optional[np.ndarray] = None  # patient of each image, where the data has patients

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> "ImageSet":
        """The images at ``idx`` (nothing decoded for images on disk)."""
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSet(
            self.images[idx], self.labels[idx], [self.ids[i] for i in idx],
            None if self.groups is None else self.groups[idx],
        )


@dataclass
class LoadedDataset:
    name: str
    classes: tuple[str, ...]
    pool: ImageSet  # the training pool that subsets and folds are drawn from
    test: ImageSet  # the fixed test set every fold's model is scored on
    fingerprint: str  # content digest: part of every embedding-cache key
    # What the protocol leaves out on purpose (NIH: rows not adjudicated, several findings),
    # counted so that nothing is dropped unsaid.
    excluded: dict = field(default_factory=dict)
    # Files in the data's image folders of a suffix no reader takes (suffix -> count): left
    # out, and listed by `sweep data check`, `sweep plan --data` and `sweep run`.
    not_read: dict = field(default_factory=dict)


def counts_line(counts: dict) -> str:
    """``.gif 2, .txt 1``: a dict of counts (``not_read``) as one line."""
    return ", ".join(f"{key} {count}" for key, count in sorted(counts.items()))
