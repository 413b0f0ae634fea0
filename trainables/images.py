"""Images on disk, decoded on demand into uint8 C x H x W tensors (greyscale -> 3 channels).

A ``FileImages`` behaves like the in-memory image tensor of small data sets: ``len``,
integer indexing (decodes one image), slicing and index arrays (a new ``FileImages`` over
those files, nothing decoded), iteration. Decoding is Pillow's: it reads every format of the
four datasets (PNG, JPEG, PatchCam's TIFF), where torchvision's decoders (deprecated since
0.29) read no TIFF.

Example::

    >>> images = FileImages(["/data/a.png", "/data/b.jpeg"])   # doctest: +SKIP
    >>> images[0].shape, len(images[[1]])                       # doctest: +SKIP
    (torch.Size([3, 96, 96]), 1)
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image


class ImageDecodeError(ValueError):
    """A file that is not a readable image; the message names it."""


def decode_file(path: str) -> torch.Tensor:
    """One image file -> uint8 tensor (3, H, W); a clear error naming the file if unreadable."""
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
        return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: file not found") from None
    except Exception as exc:
        raise ImageDecodeError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


class FileImages(Sequence):
    def __init__(self, paths: Sequence[str]):
        self.paths = [os.fspath(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return decode_file(self.paths[index])
        if isinstance(index, slice):
            return FileImages(self.paths[index])
        return FileImages([self.paths[i] for i in np.asarray(index).tolist()])

    def __iter__(self) -> Iterator[torch.Tensor]:
        for path in self.paths:
            yield decode_file(path)
