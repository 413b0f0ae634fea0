"""The training loop, one small engine for every mode: Adam, ReduceLROnPlateau on the
validation loss (patience 5, the paper's), one yielded record per epoch.

The caller decides what to do with each epoch (report to Tune, keep the best model), which
keeps this loop free of Ray and testable alone.

Example::

    >>> for record in fit(model, train, val, lr=1e-3, max_epochs=3, metric="auc"):
    ...     print(record["epoch"], record["val_score"])   # doctest: +SKIP
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from trainables.training.metrics import score

PLATEAU_PATIENCE = 5  # epochs without a better validation loss before the LR drops (paper 5.5)
PLATEAU_FACTOR = 0.1


def to_device(x, device):
    if isinstance(x, (list, tuple)):
        return [t.to(device, non_blocking=True) for t in x]
    return x.to(device, non_blocking=True)


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean cross-entropy, class probabilities, labels) over a loader; loss is nan without labels."""
    model.eval()
    losses, probs, labels = [], [], []
    for x, y in loader:
        logits = model(to_device(x, device)).float()
        y = y.to(device)
        if (y >= 0).all():
            losses.append(nn.functional.cross_entropy(logits, y, reduction="sum").item())
        probs.append(logits.softmax(dim=1).cpu().numpy())
        labels.append(y.cpu().numpy())
    n = sum(len(p) for p in probs)
    loss = sum(losses) / n if len(losses) == len(probs) else float("nan")
    return loss, np.concatenate(probs), np.concatenate(labels)


class Fit:
    """Training of one model, one epoch per ``next()``; its state is a checkpoint.

    ``state_dict()`` after an epoch holds what the next epochs depend on: weights, Adam's
    moments, the plateau schedule, the epoch count, the random state of the training batches
    (their shuffling and augmentation draws) and torch's. A fresh ``Fit`` given that state
    with ``load_state_dict`` continues exactly where the saved one would have: a trial killed
    mid-way resumes from its last checkpoint and trains as if it had never stopped (exactly so
    where batches are made in this process; a DataLoader's decoding workers draw fresh seeds
    when their iterator is created, so there the resumed epochs see other random draws).
    """

    def __init__(self, model: nn.Module, train_loader, val_loader, *, lr: float, max_epochs: int, metric: str,
                 device: torch.device | str = "cpu", parameters=None):
        self.model, self.train_loader, self.val_loader = model.to(device), train_loader, val_loader
        self.lr, self.max_epochs, self.metric, self.device = lr, max_epochs, metric, device
        params = [p for p in (model.parameters() if parameters is None else parameters) if p.requires_grad]
        # fused: one kernel for all parameters; a frozen head's step is otherwise mostly per-op overhead
        self.optimizer = torch.optim.Adam(params, lr=lr, fused=True)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", patience=PLATEAU_PATIENCE, factor=PLATEAU_FACTOR
        )
        self.epoch = 0

    def __iter__(self) -> "Fit":
        return self

    def __next__(self) -> dict:
        if self.epoch >= self.max_epochs:
            raise StopIteration
        self.epoch += 1
        epoch, model, device = self.epoch, self.model, self.device
        model.train()
        total, count = 0.0, 0
        for x, y in self.train_loader:
            y = y.to(device)
            loss = nn.functional.cross_entropy(model(to_device(x, device)).float(), y)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at epoch {epoch} (lr {self.lr:.3g})")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += value * len(y)
            count += len(y)
        val_loss, val_probs, val_labels = predict(model, self.val_loader, device)
        self.plateau.step(val_loss)
        return {
            "epoch": epoch,
            "train_loss": total / max(count, 1),
            "val_loss": val_loss,
            "val_score": score(self.metric, val_labels, val_probs, where="validation fold"),
            "lr_now": self.optimizer.param_groups[0]["lr"],
        }

    def state_dict(self) -> dict:
        """Tensors and plain values only: loads with ``torch.load(weights_only=True)``."""
        state = {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "plateau": self.plateau.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        # The batches' own generator draws the shuffling and, through the DataLoader, the seeds
        # of its decoding workers; FeatureBatches also counts its passes (the view of an epoch).
        generator = getattr(self.train_loader, "generator", None)
        if generator is not None:
            state["batches_rng"] = generator.get_state()
        if hasattr(self.train_loader, "passes"):
            state["batches_passes"] = self.train_loader.passes
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.plateau.load_state_dict(state["plateau"])
        torch.set_rng_state(state["torch_rng"])
        if "batches_rng" in state:
            self.train_loader.generator.set_state(state["batches_rng"])
        if "batches_passes" in state:
            self.train_loader.passes = int(state["batches_passes"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda_rng"])


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    *,
    lr: float,
    max_epochs: int,
    metric: str,
    device: torch.device | str = "cpu",
    parameters=None,
) -> Fit:
    """Train ``model``; each epoch yields ``epoch, train_loss, val_loss, val_score, lr_now``."""
    return Fit(model, train_loader, val_loader, lr=lr, max_epochs=max_epochs, metric=metric, device=device,
               parameters=parameters)
