"""JPEG files decoded and transformed on the extraction device, so that CPU workers only read them.

Why: a DataLoader worker spends about 6 ms of CPU decoding and resizing one 1400 x 1100
greyscale X-ray JPEG (the pneumonia set), so even the 8 workers of a 16-CPU node feed about
1,300 images/s to a GPU that embeds 5,000 a second with a ResNet-50: the loop waits on the CPUs
(``benchmarks/gpu_extract.py`` and ``device_check.py`` measure both rates and name the
bottleneck). nvJPEG decodes a batch of JPEGs on the GPU itself.

``decode="device"``: workers read a JPEG file's bytes and nothing else; the batch is decoded in
one call by TorchCodec's ``decode_jpeg`` on the extraction device (nvJPEG on a GPU, libjpeg-turbo
on a CPU), once for all the views that want each image, and the views' transforms (resize,
crop, augmentation, normalisation) run there too (trainables/cache/views.py). Every other image
(PNG, TIFF, HDF5 rows, arrays in memory: no GPU decoder is at hand for them, and their decoded
pixels, up to 20 MB an APTOS photograph, would crowd host memory in flight) is decoded and
transformed by the workers as with ``decode="workers"``. A JPEG the device decoder rejects
(CMYK, arithmetic coding) is decoded by Pillow instead, on its own; one with an EXIF
orientation stays with the workers. Without a working TorchCodec (not installed, built for
another torch, nvJPEG failing to start) every image takes the workers' path, and it is said.

``decode="auto"`` (the default): ``device`` on a GPU, ``workers`` on a CPU.

The features differ from the workers' path within decoder rounding (nvJPEG's IDCT and chroma
upsampling are not libjpeg-turbo's; a GPU resize is not a CPU one to the last bit): the cache
key does not change with the decoder, as it does not with bf16 autocast, and the file's
metadata records which decoded it (``decode``).
"""

from __future__ import annotations

import functools
import io
from collections import defaultdict
from typing import Callable, NamedTuple, Optional

import torch
from PIL import Image
from torch.utils.data import Dataset

from trainables.data.images import FileImages, decode_bytes
from trainables.errors import UserError

DECODE_CHOICES = ("auto", "workers", "device")
JPEG_MAGIC = b"\xff\xd8\xff"  # SOI marker and the first marker's 0xFF: every JPEG file starts so
EXIF_ORIENTATION = 0x0112


class DecodeChoiceError(UserError):
    """A decode choice that is not one of DECODE_CHOICES."""


@functools.lru_cache(maxsize=None)
def _load_decode_jpeg() -> tuple[Optional[Callable], str]:
    try:
        from torchcodec.decoders import decode_jpeg
    except Exception as exc:  # ImportError, or OSError/RuntimeError from its native library
        return None, f"TorchCodec not loaded ({type(exc).__name__}: {exc})"
    return decode_jpeg, ""


@functools.lru_cache(maxsize=None)
def jpeg_decoder(device: str = "cpu") -> tuple[Optional[Callable], str]:
    """(TorchCodec's ``decode_jpeg``, working on ``device``, or None and why not). Loaded once
    per process and tried on one small JPEG there: a build for another torch fails to load, and
    nvJPEG may fail to start (an old driver, no memory left); either sends the whole extraction
    to the workers at once rather than every image to Pillow one by one."""
    decode, why = _load_decode_jpeg()
    if decode is None:
        return None, why
    probe = io.BytesIO()
    Image.new("L", (16, 16), 128).save(probe, "JPEG")
    try:
        image = decode(torch.frombuffer(bytearray(probe.getvalue()), dtype=torch.uint8), mode="UNCHANGED",
                       device=device)
        if tuple(image.shape) != (1, 16, 16):
            raise RuntimeError(f"a 16 x 16 greyscale JPEG came out {tuple(image.shape)}")
    except Exception as exc:
        return None, f"TorchCodec's decode_jpeg failed on {device} ({type(exc).__name__}: {exc})"
    return decode, ""


def decoder_missing(decode: str, device: torch.device) -> Optional[str]:
    """Why ``device`` decoding falls back to the workers (TorchCodec did not load or does not
    decode on ``device``), else None."""
    decoder, why = jpeg_decoder(str(device))
    return why if decode == "device" and decoder is None else None


def resolve_decode(decode: str, device: torch.device) -> str:
    """``auto`` -> ``device`` on a GPU, ``workers`` elsewhere; the others as given."""
    if decode not in DECODE_CHOICES:
        raise DecodeChoiceError(f"decode {decode!r}: expected one of {', '.join(DECODE_CHOICES)}")
    if decode == "auto":
        return "device" if device.type == "cuda" else "workers"
    return decode


def describe_decode(decode: str, device: torch.device, images) -> str:
    """What decoded ``images``, for the cache file's metadata and the extraction's line."""
    if not decodes_on_device(decode, images, device):
        return "workers (Pillow)"
    library = "nvJPEG" if device.type == "cuda" else "libjpeg-turbo"
    return f"device: JPEG by {library} (TorchCodec), other formats by Pillow in workers"


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


def device_decodable(data: bytes) -> bool:
    """A JPEG whose pixels the device decoder gives as Pillow does: TorchCodec turns an image by
    its EXIF orientation, the workers' Pillow does not (nor did any cache before), so a JPEG
    with one stays with the workers. Reads the headers only."""
    if not is_jpeg(data):
        return False
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.getexif().get(EXIF_ORIENTATION, 1) == 1
    except Exception:
        return True  # unreadable headers: the device decoder or Pillow will name the file


def decodes_on_device(decode: str, images, device: torch.device) -> bool:
    """Whether an extraction of ``images`` takes the device path: ``decode`` resolved to ``device``,
    TorchCodec working there, and images that are files (arrays in memory have nothing to decode)."""
    return decode == "device" and isinstance(images, FileImages) and jpeg_decoder(str(device))[0] is not None


class Encoded(NamedTuple):
    """One image as a worker hands it over: a JPEG's bytes, or the views' images made already."""
    row: int
    jpeg: Optional[torch.Tensor]  # the file's bytes (uint8, 1-D), or None
    transformed: dict  # view index -> image, for what the workers decoded (empty for a JPEG)
    path: Optional[str]  # the JPEG's path (None when the workers decoded it)
    wanted: tuple  # the indices of the views that want the image


class EncodedViews(Dataset):
    """The workers' side of ``decode="device"`` over a ``views.ViewSet`` of image files: item ``i``
    is an ``Encoded``: a JPEG file's bytes and path; or, for any other file (and a JPEG with an
    EXIF orientation), the image decoded once and transformed for each view as the ``ViewSet``
    does it. Each file is read once."""

    def __init__(self, view_set):
        self.view_set = view_set

    def __len__(self) -> int:
        return len(self.view_set)

    def __getitem__(self, i: int):
        row = int(self.view_set.rows[i])
        path = self.view_set.images.paths[row]
        wanted = tuple(view.index for view in self.view_set.wants[i])
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return Encoded(row, None, self.view_set[i][1], None, wanted)  # the workers' path names the missing file
        if device_decodable(data):
            return Encoded(row, torch.frombuffer(bytearray(data), dtype=torch.uint8), {}, path, wanted)
        return Encoded(row, None, self.view_set.transformed(i, decode_bytes(data, path)), None, wanted)


def collate(items: list) -> list:
    """A batch as the list of its items: JPEG bytes differ in length, nothing to stack."""
    return items


class DeviceBatch:
    """The device's side: a batch of ``EncodedViews`` items -> {view index: (n, 3, H, W) float32
    on ``device``}, each view's images in item order. JPEGs are decoded in one call, the steps
    the views share (to float, resize) run once, and each view's own steps follow, all here; an
    augmented view seeds each image's draw by its row exactly as the workers do, so the same
    crop, flip and angle are drawn on either path."""

    def __init__(self, view_set, device: torch.device):
        if device.type == "cuda" and device.index is None:  # nvJPEG is handed one device, by index
            device = torch.device("cuda", torch.cuda.current_device())
        self.view_set, self.device = view_set, device
        self.decode_jpeg = jpeg_decoder(str(device))[0]

    def __call__(self, items: list[Encoded]) -> dict:
        by_view: dict = defaultdict(list)  # view index -> [(position in the batch, image)]
        for k, item in enumerate(items):
            for index, image in item.transformed.items():
                by_view[index].append((k, image.to(self.device, non_blocking=True)))
        jpegs = [k for k, item in enumerate(items) if item.jpeg is not None]
        if jpegs:
            shared = dict(zip(jpegs, _batched(self.view_set.prefix, self._decode([items[k] for k in jpegs]))))
            for index in sorted({index for k in jpegs for index in items[k].wanted}):
                view = self.view_set.views[index]
                members = [k for k in jpegs if index in items[k].wanted]
                if view.seed is None:  # draws nothing: images of one size go on together
                    images = _batched(self.view_set.rest[index], [shared[k] for k in members])
                else:
                    images = [self.view_set.finish(view, items[k].row, shared[k]) for k in members]
                by_view[index] += zip(members, images)
        return {index: torch.stack([image for _, image in sorted(pairs, key=lambda p: p[0])])
                for index, pairs in by_view.items()}

    def _decode(self, items: list[Encoded]) -> list[torch.Tensor]:
        """uint8 (1 or 3, H, W) images on the device, one per JPEG item; the batch in one call,
        an image the decoder rejects by Pillow (named error if Pillow cannot either)."""
        try:
            images = self.decode_jpeg([item.jpeg for item in items], mode="UNCHANGED", device=self.device)
        except (RuntimeError, ValueError):  # one bad image fails the whole batch: one by one
            images = [self._one(item.jpeg, item.path) for item in items]
        # A channel count other than grey or RGB (CMYK): Pillow converts it as the workers do.
        return [image if image.shape[0] in (1, 3) else self._pillow(item.jpeg, item.path)
                for image, item in zip(images, items)]

    def _one(self, data: torch.Tensor, path: str) -> torch.Tensor:
        try:
            return self.decode_jpeg(data, mode="UNCHANGED", device=self.device)
        except (RuntimeError, ValueError):  # truncated, arithmetic-coded, lossless: Pillow's to judge
            return self._pillow(data, path)

    def _pillow(self, data: torch.Tensor, path: str) -> torch.Tensor:
        return decode_bytes(data.numpy().tobytes(), path).to(self.device)



def _batched(transform, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """``transform`` (one that draws nothing) of each image, images of one size in one call."""
    by_shape: dict = defaultdict(list)
    for i, image in enumerate(images):
        by_shape[tuple(image.shape)].append(i)
    out: list = [None] * len(images)
    for members in by_shape.values():
        done = transform(torch.stack([images[i] for i in members]))
        for j, i in enumerate(members):
            out[i] = done[j]
    return out
