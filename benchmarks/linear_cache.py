"""The same linear-probe study trained (a) from the embedding cache and (b) naively, with a
frozen backbone forward over every training and validation image every epoch (what DINO's
eval_linear does), the test set scored whenever validation improves in both (as a trial
does). Same data, backbone, epochs and learning rates; one run on this machine.

    .venv/bin/python benchmarks/linear_cache.py                  # the paper's ResNet-50 at 224 px
    .venv/bin/python benchmarks/linear_cache.py --backbone test_resnet --dataset digits --n-train 250 --epochs 12

Default: the paper's architecture (``random``: ResNet-50, seeded random weights) on a
generated ``folder`` data set of 256 px PNGs seen at 224 px (a few hundred images; the tiny
test backbone on digits understates what the cache saves, its forward pass costs almost
nothing). About 9 minutes on 2 CPU cores, most of it the naive path (whose cost grows with
epochs and learning rates; the cached path's hardly does: the paper's 100 epochs and 8 rates
would widen the gap far beyond what a benchmark run can wait for).

The cache's extraction runs once per (dataset, backbone) key and serves every frozen study
that uses the backbone: in the demo grid 20 studies (2 sizes x 5 folds, linear and DVME).
So (a) is charged the study's training plus its share of one extraction, and the figures
with the whole extraction charged to this one study are printed above it.

Prints the wall time of each and, last, ``speedup: X`` = naive / (training + extraction
share).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from sweep.driver.runner import standalone_context
from sweep.spec import StudySpec
from trainables.context import TrialRun
from trainables.models.backbones import create_backbone, embed
from trainables.data.datasets import get_dataset_info, load_dataset
from trainables.cache.embeddings import ensure_embeddings
from trainables.training.engine import fit, predict
from trainables.training.metrics import score
from trainables.training.trainable import ImageDataset, study_split, trial_epochs
from trainables.data.transforms import build_transform

LRS = (1e-3, 3e-3, 1e-2, 3e-2)


class FrozenProbe(nn.Module):
    def __init__(self, backbone, info, dim, n_classes):
        super().__init__()
        self.backbone, self.info = backbone.eval().requires_grad_(False), info
        self.linear = nn.Linear(dim, n_classes)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics never move
        return self

    def forward(self, images):
        with torch.no_grad():
            features = embed(self.backbone, self.info, images)
        return self.linear(features)


def naive(context, lrs=LRS, max_epochs=None) -> None:
    study = context.study
    data = load_dataset(study.dataset, context.data_root)
    ds_info = get_dataset_info(study.dataset)
    train_rows, val_rows = study_split(context)
    for lr in lrs:
        backbone, info = create_backbone(study.backbones[0], img_size=ds_info.image_size)
        tf = build_transform(ds_info, info, train=False)
        train = DataLoader(ImageDataset(data.pool.images[train_rows], data.pool.labels[train_rows], tf),
                           batch_size=study.batch_size, shuffle=True)
        val = DataLoader(ImageDataset(data.pool.images[val_rows], data.pool.labels[val_rows], tf),
                         batch_size=study.batch_size)
        test = DataLoader(ImageDataset(data.test.images, data.test.labels, tf), batch_size=study.batch_size)
        model = FrozenProbe(backbone, info, backbone.num_features, len(data.classes))
        best = -1.0
        for record in fit(model, train, val, lr=lr, max_epochs=max_epochs or study.max_epochs, metric=ds_info.metric,
                          parameters=list(model.linear.parameters())):
            if record["val_score"] > best:  # as trial_epochs: score the test set of the selected epoch
                best = record["val_score"]
                _, probs, labels = predict(model, test, "cpu")
                score(ds_info.metric, labels, probs)


def generated_folder(root: str, images: int, test: int) -> None:
    """A two-class ``folder`` data set of 256 px PNGs (noise around a class colour)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images + test):
        split, label = ("test" if i >= images else "train"), ("a", "b")[i % 2]
        os.makedirs(os.path.join(root, split, label), exist_ok=True)
        pixels = rng.normal(100 + 40 * (i % 2), 40, (256, 256, 3)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(root, split, label, f"{i}.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="random", help="random: the paper's ResNet-50 (random weights)")
    parser.add_argument("--dataset", default="folder", choices=("folder", "digits"),
                        help="folder: generated 256 px images seen at 224 px; digits: 8x8 digits at 32 px")
    parser.add_argument("--images", type=int, default=240, help="folder: training-pool images (plus 60 test)")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lrs", type=int, default=2, help="learning rates (trials) of the study")
    parser.add_argument("--sharing", type=int, default=20,
                        help="studies that share one extraction (demo grid: 2 sizes x 5 folds x linear and DVME)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a packed trial runs
    lrs = LRS[: args.lrs]
    spec = StudySpec(grid="bench", dataset=args.dataset, backbones=(args.backbone,), mode="linear", subset="M",
                     n_train=args.n_train, fold=0, max_epochs=args.epochs, grace_period=1, batch_size=32)
    with tempfile.TemporaryDirectory() as work:
        root = None
        if args.dataset == "folder":
            root = os.path.join(work, "data")
            generated_folder(root, args.images, 60)
        start = time.perf_counter()
        path = ensure_embeddings(args.dataset, root, args.backbone, None, os.path.join(work, "cache"), progress=False)
        extract = time.perf_counter() - start
        images = len(load_dataset(args.dataset, root).pool) + len(load_dataset(args.dataset, root).test)
        results = os.path.join(work, "results")
        context = standalone_context(spec, results, {args.backbone: (path,)}, data_root=root)
        warm_up = standalone_context(spec.replace(max_epochs=1, grace_period=1), results, {args.backbone: (path,)},
                                     data_root=root)
        # One untimed epoch of each path first: lazy imports and first-call set-up are paid
        # once per worker process in a sweep, not once per trial.
        for _ in trial_epochs(TrialRun(warm_up, lrs[0], "warm-up")):
            pass
        naive(context, lrs[:1], max_epochs=1)
        start = time.perf_counter()
        for i, lr in enumerate(lrs):
            for _ in trial_epochs(TrialRun(context, lr, f"t{i}")):
                pass
        cached = time.perf_counter() - start
        start = time.perf_counter()
        naive(context, lrs)
        naive_s = time.perf_counter() - start
    share = extract / args.sharing
    print(f"{args.backbone} on {args.dataset} ({get_dataset_info(args.dataset).image_size} px), {args.n_train} images, "
          f"{args.epochs} epochs, {len(lrs)} learning rates, 1 thread")
    print(f"(a) cached: training {cached:.2f} s; extraction {extract:.2f} s once (all {images:,} images), "
          f"shared by {args.sharing} studies: {share:.3f} s each")
    print(f"(b) naive:  {naive_s:.2f} s")
    print(f"training only, naive / cached: {naive_s / cached:.1f}")
    print(f"whole extraction charged to this study, naive / (training + extraction): {naive_s / (cached + extract):.2f}")
    print(f"speedup: {naive_s / (cached + share):.2f}")


if __name__ == "__main__":
    main()
