"""The same linear-probe study trained (a) from the embedding cache and (b) naively, with a
frozen backbone forward over every training and validation image every epoch (what DINO's
eval_linear does), the test set scored whenever validation improves in both (as a trial
does). Same data, backbone, epochs and learning rates; one run on this machine.

    .venv/bin/python benchmarks/linear_cache.py [--backbone test_resnet] [--n-train 250] [--epochs 12]

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
    data = load_dataset("digits")
    ds_info = get_dataset_info("digits")
    train_rows, val_rows = study_split(context)
    for lr in lrs:
        backbone, info = create_backbone(study.backbones[0], img_size=ds_info.image_size)
        tf = build_transform(ds_info, info, train=False)
        train = DataLoader(ImageDataset(data.pool.images[train_rows], data.pool.labels[train_rows], tf),
                           batch_size=study.batch_size, shuffle=True)
        val = DataLoader(ImageDataset(data.pool.images[val_rows], data.pool.labels[val_rows], tf),
                         batch_size=study.batch_size)
        test = DataLoader(ImageDataset(data.test.images, data.test.labels, tf), batch_size=study.batch_size)
        model = FrozenProbe(backbone, info, backbone.num_features, 10)
        best = -1.0
        for record in fit(model, train, val, lr=lr, max_epochs=max_epochs or study.max_epochs, metric="auc",
                          parameters=list(model.linear.parameters())):
            if record["val_score"] > best:  # as trial_epochs: score the test set of the selected epoch
                best = record["val_score"]
                _, probs, labels = predict(model, test, "cpu")
                score("auc", labels, probs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="test_resnet")
    parser.add_argument("--n-train", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--sharing", type=int, default=20,
                        help="studies that share one extraction (demo grid: 2 sizes x 5 folds x linear and DVME)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a packed trial runs
    spec = StudySpec(grid="bench", dataset="digits", backbones=(args.backbone,), mode="linear", subset="M",
                     n_train=args.n_train, fold=0, max_epochs=args.epochs, batch_size=32)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        path = ensure_embeddings("digits", None, args.backbone, None, os.path.join(work, "cache"), progress=False)
        extract = time.perf_counter() - start
        context = standalone_context(spec, os.path.join(work, "results"), {args.backbone: (path,)})
        warm_up = standalone_context(spec.replace(max_epochs=1, grace_period=1), os.path.join(work, "results"), {args.backbone: (path,)})
        # One untimed epoch of each path first: lazy imports and first-call set-up are paid
        # once per worker process in a sweep, not once per trial.
        for _ in trial_epochs(TrialRun(warm_up, LRS[0], "warm-up")):
            pass
        naive(context, LRS[:1], max_epochs=1)
        start = time.perf_counter()
        for i, lr in enumerate(LRS):
            for _ in trial_epochs(TrialRun(context, lr, f"t{i}")):
                pass
        cached = time.perf_counter() - start
        start = time.perf_counter()
        naive(context)
        naive_s = time.perf_counter() - start
    share = extract / args.sharing
    print(f"{args.backbone}, {args.n_train} images, {args.epochs} epochs, {len(LRS)} learning rates, 1 thread")
    print(f"(a) cached: training {cached:.2f} s; extraction {extract:.2f} s once (all 1,797 images), "
          f"shared by {args.sharing} studies: {share:.3f} s each")
    print(f"(b) naive:  {naive_s:.2f} s")
    print(f"training only, naive / cached: {naive_s / cached:.1f}")
    print(f"whole extraction charged to this study, naive / (training + extraction): {naive_s / (cached + extract):.2f}")
    print(f"speedup: {naive_s / (cached + share):.2f}")


if __name__ == "__main__":
    main()
