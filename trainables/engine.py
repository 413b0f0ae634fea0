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
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from trainables.metrics import score

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
) -> Iterator[dict]:
    """Train ``model``; after each epoch yield ``epoch, train_loss, val_loss, val_score, lr``."""
    model.to(device)
    params = [p for p in (model.parameters() if parameters is None else parameters) if p.requires_grad]
    # fused: one kernel for all parameters; a frozen head's step is otherwise mostly per-op overhead
    optimizer = torch.optim.Adam(params, lr=lr, fused=True)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", patience=PLATEAU_PATIENCE, factor=PLATEAU_FACTOR
    )
    for epoch in range(1, max_epochs + 1):
        model.train()
        total, count = 0.0, 0
        for x, y in train_loader:
            y = y.to(device)
            loss = nn.functional.cross_entropy(model(to_device(x, device)).float(), y)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at epoch {epoch} (lr {lr:.3g})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += value * len(y)
            count += len(y)
        val_loss, val_probs, val_labels = predict(model, val_loader, device)
        plateau.step(val_loss)
        yield {
            "epoch": epoch,
            "train_loss": total / max(count, 1),
            "val_loss": val_loss,
            "val_score": score(metric, val_labels, val_probs, where="validation fold"),
            "lr_now": optimizer.param_groups[0]["lr"],
        }
