"""Dataset registry: name -> what the grid needs to know (metric, pool size, image size) and a loader.

Like timm's ``register_model``/``create_model``: grids name datasets, never paths; an unknown
name raises an error listing the valid ones.

Example::

    >>> info = get_dataset_info("digits")
    >>> info.metric, info.pool_size
    ('auc', 1257)
    >>> data = load_dataset("digits")
    >>> data.pool.labels.shape, tuple(data.pool.images.shape[1:])
    ((1257,), (3, 8, 8))
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from trainables.data import readers
from trainables.data.dataset_types import DatasetError, ImageSet, LoadedDataset
from trainables.training.metrics import METRICS
from trainables.registry import Registry

__all__ = ["DatasetError", "ImageSet", "LoadedDataset", "DatasetInfo", "get_dataset_info", "load_dataset"]

# Chest X-rays are not flipped (the heart sits on the left); fundus and histology may be.
AUGMENTS = ("none", "flip", "rotate", "flip_rotate")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    metric: str
    n_classes: Optional[int]  # None: read from the data (medmnist, folder)
    pool_size: Optional[int]  # the largest training pool the published data gives; None where it depends on the data
    # Training augmentation of the modality: one of AUGMENTS.
    augment: str = "none"
    # Side of the square images the backbones see. With resize_to set, images are resized to
    # resize_to then cropped to image_size (the paper: 256 -> 224, random crop in training,
    # centre crop in evaluation); without it they are resized straight to image_size.
    image_size: int = 224
    resize_to: Optional[int] = None
    needs_root: bool = True
    # Kaggle competitions with hidden test labels: (id column, label column, alpha), alpha the
    # private leaderboard's share of the test set (final = alpha*private + (1-alpha)*public).
    kaggle: Optional[tuple] = None
    # Rare classes drawn more often in training (a sampler; validation rows are never repeated).
    oversample: bool = False
    # (pool images, test images) as published (formats.md): what `sweep plan --estimate` counts
    # without reading the data; None where they depend on the user's files.
    published_counts: Optional[tuple[int, int]] = None
    description: str = ""
    # Where the public data set is published and the command that fetches it, one line each
    # (shown by `sweep data check` and the pre-flight when the data is missing or misshapen).
    published_at: tuple[str, ...] = ()
    # loader(root, problems): problems None -> raise on any; a list -> append each and go on.
    loader: Optional[Callable[..., LoadedDataset]] = None


_REGISTRY: Registry[DatasetInfo] = Registry("dataset", DatasetError)


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    if info.metric not in METRICS:
        raise DatasetError(f"dataset {info.name!r}: unknown metric {info.metric!r}; valid: {METRICS}")
    if info.augment not in AUGMENTS:
        raise DatasetError(f"dataset {info.name!r}: unknown augment {info.augment!r}; valid: {AUGMENTS}")
    return _REGISTRY.add(info.name, info)


def dataset_names() -> list[str]:
    return _REGISTRY.names()


def get_dataset_info(name: str) -> DatasetInfo:
    return _REGISTRY.get(name)


DATA_ENV = "MEDSWEEP_DATA"  # a folder with one sub-folder (or .npz) per dataset name


def resolve_root(name: str, roots: Optional[dict] = None) -> Optional[str]:
    """``--data NAME=ROOT`` first, else ``$MEDSWEEP_DATA/NAME`` if it exists; absolute."""
    root = (roots or {}).get(name)
    if not root and os.environ.get(DATA_ENV):
        candidates = [os.path.join(os.environ[DATA_ENV], name), os.path.join(os.environ[DATA_ENV], f"{name}.npz")]
        root = next((c for c in candidates if os.path.exists(c)), None)
    return os.path.abspath(root) if root else None


HOLDOUT_SEED = 1729  # fixed: the holdout never moves between sweeps, sizes or folds


def apply_holdout(data: LoadedDataset, fraction: float) -> LoadedDataset:
    """Carve a labelled test set out of the training pool (stratified by class, grouped by
    patient where there are patients); it replaces the data set's own test set, and the
    folds are drawn from the rest, so it is disjoint from every fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < fraction <= 0.5:
        raise DatasetError(f"--holdout {fraction}: expected a fraction in (0, 0.5]")
    pool = data.pool
    n_splits = max(2, round(1 / fraction))
    groups = pool.groups if pool.groups is not None else np.arange(len(pool))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=HOLDOUT_SEED)
    keep, held = next(splitter.split(np.zeros(len(pool)), pool.labels, groups))
    return dataclasses.replace(data, pool=pool.take(np.sort(keep)), test=pool.take(np.sort(held)),
                               fingerprint=f"{data.fingerprint}-holdout{fraction:g}")


def drop_ids(data: LoadedDataset, skip: set) -> LoadedDataset:
    """The data set without the images whose ids are in ``skip`` (``--skip-unreadable``)."""

    def part(images: ImageSet) -> ImageSet:
        return images.take([i for i, x in enumerate(images.ids) if x not in skip])

    digest = hashlib.sha256("\n".join(sorted(skip)).encode()).hexdigest()[:8]
    return dataclasses.replace(data, pool=part(data.pool), test=part(data.test), fingerprint=f"{data.fingerprint}-skip{digest}")


def _get_it(info: DatasetInfo) -> str:
    """The first place the public data set is published, for an error that says it is missing."""
    return f" (get it: {info.published_at[0]})" if info.published_at else ""


def load_dataset(
    name: str,
    root: Optional[str] = None,
    problems: Optional[list] = None,
    holdout: Optional[float] = None,
    skip: Optional[list] = None,
) -> LoadedDataset:
    """Read ``name`` from ``root``; see trainables/data/readers.py for ``problems``; ``holdout``
    replaces the test set by that fraction of the pool (see :func:`apply_holdout`).

    ``skip`` (``--skip-unreadable``): read leniently — rows the reader finds unusable (missing
    file, bad label) are left out — and leave out the images with these ids too (those that
    failed to decode). The driver records every such file; trials pass the same list."""
    info = get_dataset_info(name)
    if info.needs_root and not root:
        raise DatasetError(
            f"dataset {name!r} is read from local files: give its folder with --data {name}=ROOT "
            f"or put it in ${DATA_ENV}/{name}{_get_it(info)}"
        )
    if info.needs_root and not os.path.exists(root):
        raise DatasetError(f"dataset {name!r}: {root} does not exist{_get_it(info)}")
    if skip is not None and problems is None:
        problems = []  # lenient: the driver has recorded what this leaves out
    data = info.loader(root, problems)
    if skip:
        data = drop_ids(data, set(skip))
    return apply_holdout(data, holdout) if holdout else data




# --- digits: the demo's data, shipped inside scikit-learn (no download) -----------------------

DIGITS_TEST_FRACTION = 0.3  # a fixed, stratified test set of 540 images; the pool keeps 1,257
DIGITS_SPLIT_SEED = 20210823  # the paper's arXiv date: fixed so the test set never moves


def _load_digits(root: Optional[str], problems: Optional[list] = None) -> LoadedDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # 8x8 grey levels 0..16 -> uint8 0..255, three identical channels like a greyscale X-ray.
    grey = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = torch.from_numpy(grey).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    labels = bunch.target.astype(np.int64)
    ids = [f"digit{i:04d}" for i in range(len(labels))]
    pool_idx, test_idx = train_test_split(
        np.arange(len(labels)),
        test_size=DIGITS_TEST_FRACTION,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    everything = ImageSet(images, labels, ids)
    digest = hashlib.sha256(grey.tobytes() + labels.tobytes()).hexdigest()[:16]
    return LoadedDataset(
        name="digits",
        classes=tuple(str(c) for c in range(10)),
        pool=everything.take(np.sort(pool_idx)),
        test=everything.take(np.sort(test_idx)),
        fingerprint=f"digits-{digest}",
    )


register_dataset(
    DatasetInfo(
        name="digits",
        metric="auc",
        n_classes=10,
        pool_size=1257,
        augment="none",  # digits are orientation-sensitive: a flipped 2 is no 2
        image_size=32,  # 8x8 upsampled: the tiny timm backbones downsample 32x
        needs_root=False,
        published_counts=(1_257, 540),
        description="scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes); the demo's data",
        loader=_load_digits,
    )
)

# --- the paper's four datasets (protocol.md); readers in trainables/data/readers.py ----------------

register_dataset(
    DatasetInfo(
        name="patchcam",
        metric="auc",
        n_classes=2,
        pool_size=50000,
        augment="flip",
        image_size=96,  # the paper keeps patches at 96x96: no resize, no crop
        published_counts=(220_025, 57_458),
        description="Kaggle histopathologic-cancer-detection, 96x96 patches; test labels hidden",
        kaggle=("id", "label", 0.51),
        published_at=(
            'Kaggle histopathologic-cancer-detection (accept its rules on kaggle.com first): kaggle competitions download -c histopathologic-cancer-detection',
            'or the original PCam HDF5 release (https://github.com/basveeling/pcam): camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5.gz from zenodo.org/records/2546921',
        ),
        loader=readers.read_patchcam,
    )
)
register_dataset(
    DatasetInfo(
        name="aptos",
        metric="kappa_quadratic",
        n_classes=5,
        pool_size=3662,
        augment="flip_rotate",
        resize_to=256,
        published_counts=(3_662, 1_928),
        description="Kaggle APTOS 2019 fundus images, grades 0-4; test labels hidden",
        kaggle=("id_code", "diagnosis", 0.85),
        published_at=(
            'Kaggle aptos2019-blindness-detection (accept its rules on kaggle.com first): kaggle competitions download -c aptos2019-blindness-detection',
        ),
        loader=readers.read_aptos,
    )
)
register_dataset(
    DatasetInfo(
        name="pneumonia",
        metric="auc",
        n_classes=2,
        pool_size=5216,
        augment="rotate",
        resize_to=256,
        published_counts=(5_216, 624),
        description="Kermany chest X-ray (Kaggle chest-xray-pneumonia), patients in file names",
        published_at=(
            'Kaggle chest-xray-pneumonia (Kermany et al., Mendeley Data doi:10.17632/rscbjbr9sj.2): kaggle datasets download -d paultimothymooney/chest-xray-pneumonia',
        ),
        loader=readers.read_pneumonia,
    )
)
register_dataset(
    DatasetInfo(
        name="nih",
        metric="auc",
        n_classes=5,
        pool_size=2412,  # usable rows of the published CSVs (the paper says 2,414)
        augment="rotate",
        resize_to=256,
        published_counts=(2_412, 1_962),
        description="NIH ChestX-ray14 with the four-findings expert labels (5 classes)",
        oversample=True,  # the paper: too few images of the rarest findings to balance
        published_at=(
            'images: NIH ChestX-ray14, https://nihcc.app.box.com/v/ChestXray-NIHCC (images_001.tar.gz .. images_012.tar.gz), or kaggle datasets download -d nih-chest-xrays/data',
            "labels: Google's four-findings expert labels: gsutil cp -r gs://gcs-public-data--healthcare-nih-chest-xray-labels/four_findings_expert_labels .",
        ),
        loader=readers.read_nih,
    )
)

# --- any data the user has ------------------------------------------------------------------
register_dataset(
    DatasetInfo(
        name="medmnist",
        metric="auc",
        n_classes=None,
        pool_size=None,
        augment="none",
        image_size=32,
        description="any single-label MedMNIST .npz (pool = train + val), e.g. pneumoniamnist.npz",
        published_at=(
            "MedMNIST v2, https://medmnist.com (zenodo.org/records/10519652): pip install medmnist; python -c \"import medmnist; medmnist.PneumoniaMNIST(split='train', download=True, root='DIR')\"",
        ),
        loader=readers.read_medmnist,
    )
)
register_dataset(
    DatasetInfo(
        name="folder",
        metric="auc",
        n_classes=None,
        pool_size=None,
        augment="flip",
        resize_to=256,
        description="your own images: train/<class>/ and test/<class>/ folders, or train.csv/test.csv (path,label)",
        loader=readers.read_folder,
    )
)
