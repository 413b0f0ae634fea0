"""Image pipelines (torchvision transforms v2 on uint8 C x H x W tensors).

The dataset says how its modality is resized and augmented (protocol.md: larger than 224 ->
resize to 256, crop 224, flip or rotate as fits; patchcam only flipped at 96x96); the backbone
says how pixels are normalised, and a foundation model also how they are resized and cropped
(its card's input size, whatever the dataset's). Evaluation uses the centre crop and no augmentation.

Images come as uint8 with one channel (greyscale files) or three: the pipeline resizes, crops
and augments what it is given and makes it RGB just before normalising, so greyscale X-rays
cost a third of the work and give the same values as three copied channels would.
"""

from __future__ import annotations

import torch

from trainables.models.backbones import BackboneInfo
from trainables.data.datasets import DatasetInfo

ROTATION_DEGREES = 10  # small: anatomy keeps its orientation, acquisition tilt varies a little
# (horizontal, vertical) of each flip combination: identity, horizontal, vertical, both.
FLIPS = ((False, False), (True, False), (False, True), (True, True))


def flips_only(dataset: DatasetInfo) -> bool:
    """A dataset whose training augmentation is its flips and nothing else (PatchCam: no resize,
    no crop, no rotation): its augmented images are exactly the 4 flip combinations."""
    return dataset.augment == "flip" and not dataset.resize_to


def build_transform(dataset: DatasetInfo, backbone: BackboneInfo, train: bool,
                    flips: tuple[bool, bool] | None = None) -> v2.Compose:
    """``flips`` (training only, a flips-only dataset): that one combination of FLIPS, for
    every image, instead of random flips: a cached view of each combination."""
    # torchvision is imported where a pipeline is built, not with this module: the driver and
    # the CLI read this module's names only, and torchvision brings torch._dynamo (2 s).
    from torchvision.transforms import v2

    ops: list = [v2.ToDtype(torch.float32, scale=True)]
    if backbone.imposed_size:
        # A foundation model sees its card's geometry: resize, then centre-crop to its input
        # size (a random crop for training, except where the training views are the flips).
        size, resize = backbone.imposed_size, backbone.resize_size or backbone.imposed_size
        ops.append(v2.Resize((resize, resize), antialias=True))
        if resize > size:
            ops.append(v2.RandomCrop(size) if train and not flips_only(dataset) else v2.CenterCrop(size))
    elif dataset.resize_to:
        ops.append(v2.Resize((dataset.resize_to, dataset.resize_to), antialias=True))
        ops.append(v2.RandomCrop(dataset.image_size) if train else v2.CenterCrop(dataset.image_size))
    else:
        ops.append(v2.Resize((dataset.image_size, dataset.image_size), antialias=True))
    if train and flips is not None:
        ops += [flip(p=1.0) for flip, on in zip((v2.RandomHorizontalFlip, v2.RandomVerticalFlip), flips) if on]
    elif train and dataset.augment in ("flip", "flip_rotate"):
        ops += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    if train and dataset.augment in ("rotate", "flip_rotate"):
        ops.append(v2.RandomRotation(ROTATION_DEGREES))
    ops.append(v2.RGB())  # after every per-channel step, before the per-channel normalisation
    ops.append(v2.Normalize(mean=list(backbone.mean), std=list(backbone.std)))
    return v2.Compose(ops)


# Steps that draw no random numbers: each image's values are the same whether it is transformed
# alone or in a batch with others (torchvision's kernels work image by image along the batch).
DETERMINISTIC_STEPS = ("ToDtype", "Resize", "CenterCrop", "RGB", "Normalize", "Identity")


def draws_nothing(transform) -> bool:
    """Whether ``transform`` is a pipeline of deterministic steps only: the evaluation
    transform, and the training one of a dataset that is not augmented (the demo's digits)."""
    from torchvision.transforms import v2

    deterministic = tuple(getattr(v2, name) for name in DETERMINISTIC_STEPS)
    steps = transform.transforms if isinstance(transform, v2.Compose) else [transform]
    return all(type(step) in deterministic for step in steps)


def describe(transform: v2.Compose) -> str:
    """A stable text of a transform: part of the embedding-cache key. ``RGB()`` is left out:
    it changes no value (greyscale copied to three channels before resizing, as before it
    was added, or after, gives the same floats), so caches written before it still serve."""
    from torchvision.transforms import v2

    return " | ".join(repr(t) for t in transform.transforms if not isinstance(t, v2.RGB))
