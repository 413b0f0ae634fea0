"""A cache key's part files: which pool rows each holds, and features gathered across them.

A sweep extracts only the images its studies draw (the largest subset of each dataset, since
subsets are nested) plus the test set, not the whole pool: for the paper's PatchCam that is
50,000 of 220,025 images per backbone and view. A later sweep that draws more extracts only
the rows no part of the key holds yet, into one more part. Parts are written once and never
changed, so trials of a running sweep keep reading theirs while another sweep adds one.

Names: ``<key>.arrow`` holds the whole pool (and the test set for view 0), as ``sweep embed``
writes it and as caches made before parts existed hold it; ``<key>.<rows digest>.arrow`` is a
part. A part's schema metadata records its pool rows as a bitmap of the pool (``pool_rows``,
``pool_size``) and whether it holds the test set, so the driver learns what a key holds from
the files' footers alone (a range read on an object store, not a download).

Example::

    >>> coverage = encode_rows(np.array([0, 5, 7]), 10)
    >>> decode_rows(coverage, 10).tolist()
    [0, 5, 7]
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from trainables import storage
from trainables.errors import UserError

SUFFIX = ".arrow"


class MissingRowsError(UserError):
    """A trial asked the cache for rows no part of its key holds."""


def key_of(path: str) -> str:
    """The cache key of a whole file or of a part (the name up to its first dot)."""
    return storage.basename(path).split(".", 1)[0]


def whole_path(cache_dir: str, key: str) -> str:
    return storage.join(cache_dir, f"{key}{SUFFIX}")


def part_path(cache_dir: str, key: str, pool_rows: np.ndarray, test: bool) -> str:
    """Named by what it holds: two sweeps that extract the same missing rows at once write
    the same file (atomically), not two."""
    digest = hashlib.sha256(np.asarray(pool_rows, np.int64).tobytes() + bytes([test])).hexdigest()[:12]
    return storage.join(cache_dir, f"{key}.{digest}{SUFFIX}")


def encode_rows(rows: np.ndarray, size: int) -> str:
    """Pool rows as a compressed bitmap (220,025 rows: 28 KB before compression)."""
    bitmap = np.zeros(size, bool)
    bitmap[np.asarray(rows, np.int64)] = True
    return base64.b64encode(zlib.compress(np.packbits(bitmap).tobytes())).decode()


def decode_rows(text: str, size: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8), count=size)
    return np.flatnonzero(bits).astype(np.int64)


@dataclass(frozen=True)
class Part:
    path: str
    pool_rows: Optional[np.ndarray]  # None: the whole pool (a whole file)
    test: bool


def read_part(path: str, metadata: dict) -> Part:
    """What a file holds, from its schema metadata (str -> str)."""
    if "pool_rows" not in metadata:
        return Part(path, None, metadata.get("view", "0") == "0")
    size = int(metadata["pool_size"])
    return Part(path, decode_rows(metadata["pool_rows"], size), metadata.get("test") == "1")


class RowFeatures:
    """The (pool size, D) feature matrix of a split whose rows lie in several parts (or in
    one part that does not hold every row): ``m[rows]`` gathers the rows from the parts'
    memory-mapped pages, a copy of those rows only, as indexing a matrix would.
    Rows no part holds raise :class:`MissingRowsError`."""

    def __init__(self, pieces: list[tuple[np.ndarray, np.ndarray]], size: int, what: str):
        # pieces: (pool rows, their features) per part; a row held twice (two sweeps that
        # extracted it at once) is read from the later part: both are the same image's features.
        self.what = what
        self.matrices = [features for _, features in pieces]
        self.part = np.full(size, -1, np.int16)
        self.position = np.zeros(size, np.int64)
        for i, (rows, _) in enumerate(pieces):
            self.part[rows] = i
            self.position[rows] = np.arange(len(rows))
        first = self.matrices[0]
        self.shape = (size, first.shape[1])
        self.dtype = first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        which = self.part[rows]
        if (which < 0).any():
            missing = rows[which < 0]
            raise MissingRowsError(
                f"{self.what}: the embedding cache holds no features of {len(missing)} asked row(s) "
                f"(first: {missing[:5].tolist()}); run the sweep again to extract them"
            )
        if len(self.matrices) == 1:
            return self.matrices[0][self.position[rows]]
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        for i, matrix in enumerate(self.matrices):
            picked = which == i
            if picked.any():
                out[picked] = matrix[self.position[rows[picked]]]
        return out
