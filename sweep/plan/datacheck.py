"""``sweep data check``: read a dataset's layout, decode every image once, report.

Example::

    >>> report = check_dataset("pneumonia", "/data/chest_xray")   # doctest: +SKIP
    >>> report["train"], report["train_classes"], report["problems"][:1]   # doctest: +SKIP
    (5216, {'NORMAL': 1341, 'PNEUMONIA': 3875}, [])
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np

from trainables.data.datasets import DatasetError, get_dataset_info, load_dataset
from trainables.data.images import FileImages, ImageDecodeError, decode_file


def unreadable(images, workers: Optional[int] = None) -> list[tuple[int, str]]:
    """(index, message) of every image that does not decode."""
    if not isinstance(images, FileImages):
        return []  # already decoded in memory (digits, MedMNIST)
    workers = workers or min(8, os.cpu_count() or 1)

    def one(path: str) -> Optional[str]:
        try:
            decode_file(path)
        except ImageDecodeError as exc:
            return str(exc)
        return None

    # Decoding releases the GIL in libpng/libjpeg/libtiff: threads keep every core busy.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [(i, p) for i, p in enumerate(pool.map(one, images.paths, chunksize=64)) if p]


def skip_list(name: str, root: Optional[str]) -> tuple[list[str], list[str]]:
    """``--skip-unreadable``: (ids of images that do not decode, every problem found)."""
    problems: list[str] = []
    data = load_dataset(name, root, problems)
    ids = []
    for part in (data.pool, data.test):
        for index, message in unreadable(part.images):
            ids.append(part.ids[index])
            problems.append(message)
    return ids, problems


def check_dataset(name: str, root: Optional[str], workers: Optional[int] = None) -> dict:
    """The report of ``sweep data check``; ``usable`` is False when any problem was found."""
    problems: list[str] = []
    report = {"dataset": name, "root": root, "train": 0, "train_classes": {}, "test": 0,
              "test_labels": False, "groups": None, "problems": problems, "usable": False}
    try:
        data = load_dataset(name, root, problems)
    except DatasetError as exc:
        problems.append(str(exc))
        data = None
    if data is None or not len(data.pool) or (root and not os.path.exists(root)):
        # Missing or misshapen: say where the public data set is and how to fetch it.
        report["where_to_get"] = list(get_dataset_info(name).published_at)
    if data is None:
        return report
    for part in (data.pool, data.test):
        problems.extend(message for _, message in unreadable(part.images, workers))
    counts = np.bincount(data.pool.labels, minlength=len(data.classes)) if len(data.pool) else []
    report.update(
        train=len(data.pool),
        train_classes={cls: int(n) for cls, n in zip(data.classes, counts)},
        test=len(data.test),
        test_labels=bool(len(data.test)) and bool((data.test.labels >= 0).all()),
        groups=None if data.pool.groups is None else int(len(np.unique(data.pool.groups))),
        fingerprint=data.fingerprint,
        excluded=data.excluded,
        not_read=data.not_read,
        usable=not problems and len(data.pool) > 0,
    )
    return report
