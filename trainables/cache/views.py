"""One pass over a split's images for every cached view a backbone lacks: each image read and
decoded once, transformed once per view that wants it, and each view's batch embedded.

Why: the paper grid caches the evaluation view and 4 augmented views of every training image.
Extracted view by view, each image is decoded and resized 5 times per backbone; decoding and
resizing, not the GPU, are what bound extraction (PNG and TIFF have no GPU decoder), so here
they happen once for all the views (the resize to 256 precedes every view's crop).
A view's features are those a pass of its own gives: an augmented view seeds each image's draw
by its row (``View.apply``), whatever else the pass extracts.

Example::

    >>> views = {View(0, evaluation, None): np.arange(100), View(1, train, 77): np.arange(80)}  # doctest: +SKIP
    >>> features = embed_views(model, info, images, views, device)                              # doctest: +SKIP
    >>> features[0].shape, features[1].shape                                                   # doctest: +SKIP
    ((100, 2048), (80, 2048))
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainables.cache.device_decode import DeviceBatch, EncodedViews, collate, decodes_on_device
from trainables.models.backbones import embed


@dataclass(frozen=True, eq=False)
class View:
    index: int  # 0: the evaluation transform; >= 1: an augmented copy
    transform: Callable
    seed: Optional[int]  # None: the evaluation view, which draws nothing

    def apply(self, row: int, image: torch.Tensor, transform: Optional[Callable] = None) -> torch.Tensor:
        """The view's transform of the image at ``row`` (or ``transform``: what is left of it
        after steps that draw nothing, already run on ``image``)."""
        if self.seed is not None:
            # transforms v2 draw from torch's global generator: seeding it per image makes the
            # view independent of batch size, worker count, order and of the rows extracted with it.
            torch.manual_seed(self.seed + row)
        return (transform or self.transform)(image)


# Steps that draw nothing: where the views' pipelines begin alike with them (to float, resize to
# 256), that beginning is computed once per image and each view goes on from it.
DRAW_NOTHING = ("ToDtype", "Resize")


def shared_prefix(transforms: list) -> tuple[Callable, list[Callable]]:
    """(the steps every transform begins with and none of which draws, what is left of each):
    running the first and then one of the rest is running that transform, value for value."""
    # Imported here, as in trainables/data/transforms.py: the driver imports this module for
    # its names, and torchvision brings torch._dynamo (2 s).
    from torchvision.transforms import v2

    draw_nothing = tuple(getattr(v2, name) for name in DRAW_NOTHING)
    steps = [list(t.transforms) if isinstance(t, v2.Compose) else None for t in transforms]
    n = 0
    if steps and all(s is not None for s in steps):
        while (all(len(s) > n for s in steps) and isinstance(steps[0][n], draw_nothing)
               and all(repr(s[n]) == repr(steps[0][n]) for s in steps)):
            n += 1
    if n == 0:
        return v2.Identity(), list(transforms)
    return v2.Compose(steps[0][:n]), [v2.Compose(s[n:]) for s in steps]


class ViewSet(Dataset):
    """Item ``i``: ``(row, {view index: transformed image})`` for the views that want ``rows[i]``;
    the image decoded once for them all, and the steps their transforms share (to float, the
    resize) run once too."""

    def __init__(self, images, rows: np.ndarray, wants: list[tuple[View, ...]], views: list[View]):
        self.images, self.rows, self.wants = images, rows, wants
        self.views = {view.index: view for view in views}
        self.prefix, rests = shared_prefix([view.transform for view in views])
        self.rest = {view.index: rest for view, rest in zip(views, rests)}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = int(self.rows[i])
        return row, self.transformed(i, self.images[row])

    def transformed(self, i: int, image: torch.Tensor) -> dict:
        row, shared = int(self.rows[i]), self.prefix(image)
        return {view.index: self.finish(view, row, shared) for view in self.wants[i]}

    def finish(self, view: View, row: int, shared: torch.Tensor) -> torch.Tensor:
        """``view``'s transform of an image the shared steps have already run on."""
        return view.apply(row, shared, self.rest[view.index])


def collate_views(items: list) -> dict:
    """A batch of ``ViewSet`` items -> {view index: (n, C, H, W)}, each view's images in item order."""
    grouped: dict = defaultdict(list)
    for _, images in items:
        for index, image in images.items():
            grouped[index].append(image)
    return {index: torch.stack(images) for index, images in grouped.items()}


def view_set(images, plan: dict) -> ViewSet:
    """The ``ViewSet`` over the union of the rows ``plan`` (View -> sorted pool rows) asks for."""
    union = np.unique(np.concatenate([np.asarray(r, np.int64) for r in plan.values()])) if plan else np.zeros(0, np.int64)
    member = {view: np.isin(union, rows) for view, rows in plan.items()}
    wants = [tuple(view for view in plan if member[view][i]) for i in range(len(union))]
    return ViewSet(images, union, wants, list(plan))


class Embedder:
    """Batches of one view -> features, on a GPU in bf16 autocast and channels_last. A batch's
    features come back to host memory only after the next batch is queued, so the GPU is not
    idle while the loop reads and decodes; each then goes to ``sink(view index, features)``.

    Out of GPU memory, the batch is embedded in halves, and every later batch in pieces of the
    size that fitted (down to 1 image): a 1.1B-parameter ViT-g sharing a GPU goes on at the
    batch it can hold. ``batch_size`` is the size it ended at."""

    def __init__(self, model, info, device: torch.device, sink: Callable, batch_size: int):
        self.model, self.info, self.device, self.sink = model, info, device, sink
        self.on_gpu = device.type == "cuda"
        self.pending: list = []
        self.batch_size = batch_size

    @torch.no_grad()
    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        if self.on_gpu:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.on_gpu):
            return embed(self.model, self.info, batch).float()

    def __call__(self, index: int, batch: torch.Tensor) -> None:
        start = 0
        while start < len(batch):
            piece = batch[start:start + self.batch_size]
            try:
                features = self._embed(piece)
            except torch.cuda.OutOfMemoryError:
                if len(piece) == 1:
                    raise
                self.batch_size = len(piece) // 2
                self.collect()  # what is queued leaves the GPU too
                if self.on_gpu:
                    torch.cuda.empty_cache()
                print(f"CUDA out of memory embedding {len(piece)} images: going on at {self.batch_size} a batch",
                      file=sys.stderr, flush=True)
                continue
            self.pending.append((index, features))
            start += len(piece)

    def collect(self, keep: int = 0) -> None:
        """Bring back all but the last ``keep`` pieces' features, each to the sink."""
        while len(self.pending) > keep:
            index, features = self.pending.pop(0)
            self.sink(index, features.cpu().numpy())


def embed_views(model, info, images, plan: dict, device: torch.device, batch_size: int = 256, workers: int = 0,
                bar=None, decode: str = "workers") -> dict:
    """{view index: (N, D) float32 features of its rows, in row order} for ``plan`` (View ->
    sorted pool rows of ``images``). ``decode="device"`` with image files: JPEGs decoded and
    transformed on ``device`` (trainables/cache/device_decode.py), the workers only reading them."""
    out: dict = defaultdict(list)
    stream_views(model, info, images, plan, device, lambda index, features: out[index].append(features),
                 batch_size, workers, bar, decode)
    return {view.index: np.concatenate(out[view.index]) if out[view.index] else np.zeros((0, 0), np.float32)
            for view in plan}


def stream_views(model, info, images, plan: dict, device: torch.device, sink: Callable, batch_size: int = 256,
                 workers: int = 0, bar=None, decode: str = "workers") -> int:
    """As :func:`embed_views`, each view's features handed to ``sink(view index, features)`` in
    row order as they are computed, none kept here: the batch size it ended at."""
    dataset = view_set(images, plan)
    on_device = decodes_on_device(decode, images, device)
    if on_device:
        source, collate_fn = EncodedViews(dataset), collate
        prepare = DeviceBatch(dataset, device)
    else:
        source, collate_fn = dataset, collate_views
        prepare = lambda batch: {i: x.to(device, non_blocking=True) for i, x in batch.items()}  # noqa: E731
    # Pinned batches copy to the GPU asynchronously; JPEG bytes go to nvJPEG as they are.
    loader = DataLoader(source, batch_size=batch_size, num_workers=workers, collate_fn=collate_fn,
                        pin_memory=device.type == "cuda" and not on_device, persistent_workers=False)
    embedder = Embedder(model, info, device, sink, batch_size)
    for batch in loader:
        batch = prepare(batch)
        held = len(embedder.pending)  # the previous batch's pieces
        for index, images_of_view in batch.items():
            embedder(index, images_of_view)
            if bar is not None:
                bar.update(len(images_of_view))
        # The previous batch's features, now that this one is queued (a halving collected them).
        embedder.collect(keep=max(0, len(embedder.pending) - held))
    embedder.collect()
    return embedder.batch_size
