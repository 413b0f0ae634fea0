"""Images on disk, decoded on demand into uint8 C x H x W tensors: one channel for an 8-bit
greyscale file (the X-ray sets), three for anything else.

Greyscale stays one channel until the transform has resized it (trainables/data/transforms.py
makes it RGB just before normalising): resizing, cropping and rotating one channel and then
copying it gives the very values the three copies would, at a third of the work, and no
conversion or copy is spent on decoding (a 1400 x 1100 X-ray JPEG: 2.8 ms instead of 10 ms).

A ``FileImages`` behaves like the in-memory image tensor of small data sets: ``len``,
integer indexing (decodes one image), slicing and index arrays (a new ``FileImages`` over
those files, nothing decoded), iteration. Decoding is Pillow's: it reads every format of the
four datasets (PNG, JPEG, PatchCam's TIFF), where torchvision's decoders (deprecated since
0.29) read no TIFF, and WebP and JPEG 2000; 16-bit PNG and TIFF are scaled over their range to
8 bits. DICOM files are pydicom's (trainables/data/dicom.py: LUTs, windows, MONOCHROME1).

Example::

    >>> images = FileImages(["/data/a.png", "/data/b.jpeg"])   # doctest: +SKIP
    >>> images[0].shape, len(images[[1]])                       # doctest: +SKIP
    (torch.Size([3, 96, 96]), 1)
"""

from __future__ import annotations

import io
import os
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from trainables.data.dicom import DICOM_SUFFIXES, DicomError, read_dicom, scale_to_uint8
from trainables.errors import UserError


class ImageDecodeError(UserError):
    """A file that is not a readable image; the message names it."""


# Every suffix a reader of folders takes as an image (lower case): what Pillow decodes here
# (JPEG 2000 and WebP through its bundled openjpeg and libwebp) and DICOM through pydicom.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".jp2", ".j2k") + DICOM_SUFFIXES
# Pillow's modes of one 16-bit channel (PNG and TIFF greyscale; "I" is what older Pillows and
# some TIFFs give for them, 32-bit integers holding 0..65535).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _pillow_pixels(img: Image.Image) -> np.ndarray:
    """uint8 (1 or 3, H, W) of a Pillow image."""
    if img.mode == "L":
        return np.array(img)[None]
    if img.mode in SIXTEEN_BIT_MODES:
        # Over the format's whole range (0..65535 -> 0..255), as a viewer shows the file: a
        # per-image stretch would change contrast from image to image. (Pillow's own
        # convert("L") clips every value above 255 to white.)
        return scale_to_uint8(np.asarray(img), 0.0, 65535.0)[None]
    if img.mode == "F":  # 32-bit float TIFF: no declared range, so its own
        values = np.asarray(img)
        return scale_to_uint8(values, float(values.min()), float(values.max()))[None]
    # palette, alpha, CMYK, bilevel, 48-bit RGB: Pillow's 8-bit RGB
    return np.ascontiguousarray(np.asarray(img.convert("RGB")).transpose(2, 0, 1))


def is_dicom(path: str) -> bool:
    return path.lower().endswith(DICOM_SUFFIXES)


def _decode(source, path: str) -> torch.Tensor:
    try:
        if is_dicom(path):
            pixels = read_dicom(source, path)
            pixels = pixels[None] if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(2, 0, 1))
        else:
            with Image.open(source) as img:
                pixels = _pillow_pixels(img)
        return torch.from_numpy(pixels)
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: file not found") from None
    except DicomError as exc:
        raise ImageDecodeError(str(exc)) from None
    except Exception as exc:
        raise ImageDecodeError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def decode_file(path: str) -> torch.Tensor:
    """One image file -> uint8 tensor (1 or 3, H, W); a clear error naming the file if unreadable."""
    return _decode(path, path)


def decode_bytes(data: bytes, path: str) -> torch.Tensor:
    """The bytes of the image file ``path`` (read already, to digest them too) -> as ``decode_file``."""
    return _decode(io.BytesIO(data), path)


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


class H5Images(Sequence):
    """Images in (N, H, W, 3) uint8 HDF5 datasets (the original PCam files), read one at a time.

    ``rows`` pairs (file number, row); indexing by slice or array gives a new ``H5Images``
    over those rows. The HDF5 handles open lazily in each process: they do not pickle, and a
    handle inherited through fork (a DataLoader worker) is not shared but reopened.
    """

    def __init__(self, files: Sequence[str], key: str = "x", rows: Optional[np.ndarray] = None):
        import h5py

        self.files, self.key = [os.fspath(f) for f in files], key
        if rows is None:
            sizes = []
            for f in self.files:
                with h5py.File(f, "r") as h5:
                    sizes.append(h5[key].shape[0])
            rows = np.concatenate([np.stack([np.full(n, i), np.arange(n)], 1) for i, n in enumerate(sizes)])
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        self._handles: dict = {}
        self._pid = os.getpid()

    def __getstate__(self):
        return {"files": self.files, "key": self.key, "rows": self.rows, "_handles": {}, "_pid": None}

    def _dataset(self, number: int):
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if number not in self._handles:
            import h5py

            self._handles[number] = h5py.File(self.files[number], "r")[self.key]
        return self._handles[number]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            number, row = self.rows[index]
            pixels = np.asarray(self._dataset(int(number))[int(row)])
            if pixels.ndim == 2:
                pixels = np.repeat(pixels[..., None], 3, axis=2)
            return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).contiguous()
        return H5Images(self.files, self.key, self.rows[index])

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(len(self)):
            yield self[i]
