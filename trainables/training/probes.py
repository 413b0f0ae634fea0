"""Probes fitted without epochs (logistic regression, kNN): one small fitter each behind the
trial contract. A probe trial reads its TrialContext, fits once on the cached evaluation view
(view 0) of its backbones (several: their embeddings concatenated, as DVME takes them), and
yields one record of the same fields an epoch of a gradient head yields: Tune gets one report,
the store one row, and ASHA has nothing to stop.

Why view 0 only: a probe fitted to convergence on the augmented views would fit K copies of
each image's features at once, which is not what the benchmarks it stands beside do (DINOv2's
and Patho-Bench's logistic regression, DINO's kNN fit the evaluation features of the training
set); the augmented views are the Adam-trained heads' way to see variation across epochs.

- ``logistic``: standardised features (train mean and std), multinomial logistic regression
  fitted to convergence by L-BFGS at the trial's C (the searched value): scikit-learn on a CPU
  (its lbfgs, exact and threaded by BLAS), a full-batch torch L-BFGS of the same objective on
  a GPU share (the features are already there; the fit is a few hundred matrix products).
- ``knn``: DINO's weighted kNN: L2-normalised features, cosine similarity to every training
  row, the k nearest (k the searched value) voting with weight exp(similarity / 0.07).

Example::

    >>> records = list(fit_logistic(run))      # doctest: +SKIP
    >>> records[0]["epoch"], records[0]["val_score"]  # doctest: +SKIP
    (1, 0.93)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from trainables.cache.embeddings import load_embeddings
from trainables.context import TrialRun
from trainables.data.datasets import get_dataset_info
from trainables.training.memory import resident_mib
from trainables.training.metrics import score

KNN_TEMPERATURE = 0.07  # DINO's kNN evaluation
KNN_CHUNK = 4096  # query rows a similarity block holds (x the training rows, float32)
LBFGS_ITERATIONS = 1000


@dataclass
class ProbeData:
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray  # -1 where hidden (Kaggle)
    n_classes: int


def probe_data(run: TrialRun) -> ProbeData:
    """The study's rows of view 0 of each backbone, concatenated across backbones, float32."""
    from trainables.training.trainable import _require_rows, study_split

    context, study = run.context, run.study
    train_rows, val_rows = study_split(context)
    caches = [load_embeddings(context.embedding_files[b][0]) for b in study.backbones]
    for b, cache in zip(study.backbones, caches):
        _require_rows(cache["pool"], np.concatenate([train_rows, val_rows]), b, 0)

    def take(split: str, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(c[split].features[rows], np.float32) for c in caches], axis=1)

    labels = caches[0]["pool"].labels
    test = caches[0]["test"]
    test_rows = np.arange(len(test.labels))
    return ProbeData(take("pool", train_rows), labels[train_rows], take("pool", val_rows), labels[val_rows],
                     take("test", test_rows) if len(test_rows) else np.zeros((0, 1), np.float32), test.labels,
                     context.n_classes)


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of class probabilities (the loss an epoch of a head reports)."""
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))


def _record(run: TrialRun, started: float, train_loss: float, val_probs: np.ndarray, data: ProbeData,
            test_probs: np.ndarray) -> dict:
    from trainables.training.trainable import save_predictions

    metric = get_dataset_info(run.study.dataset).metric
    val_score = score(metric, data.val_y, val_probs, where="validation fold")
    val_loss = log_loss(val_probs, data.val_y)
    hidden = bool((data.test_y < 0).any())
    if hidden:
        save_predictions(run.files.predictions, test_probs)
    test_score = float("nan") if hidden or not len(data.test_y) else score(metric, data.test_y, test_probs,
                                                                            where="test set")
    return {"epoch": 1, "train_loss": train_loss, "val_loss": val_loss, "val_score": val_score, "lr_now": run.lr,
            "best_val_score": val_score, "best_epoch": 1, "test_score": test_score,
            "peak_rss_mib": round(resident_mib(), 1), "trial_wall_s": time.monotonic() - started,
            "resumed_from_epoch": None}


def _device(run: TrialRun) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and run.context.gpus else "cpu")


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Each array centred and scaled by the training rows' mean and std (a constant feature: 1)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0
    return [(a - mean) / std for a in (train, *others)]


def logistic_torch(x: torch.Tensor, y: torch.Tensor, n_classes: int, C: float) -> torch.nn.Linear:
    """scikit-learn's objective, full batch: mean cross-entropy + ||W||^2 / (2 C n), by L-BFGS."""
    layer = torch.nn.Linear(x.shape[1], n_classes, device=x.device, dtype=x.dtype)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=LBFGS_ITERATIONS, tolerance_grad=1e-7,
                                  tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")
    decay = 1.0 / (2.0 * C * len(y))

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(x), y) + decay * layer.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return layer


def fit_logistic(run: TrialRun) -> Iterator[dict]:
    started = time.monotonic()
    data = probe_data(run)
    C = float(run.lr)
    train_x, val_x, test_x = standardise(data.train_x, data.val_x, data.test_x)
    device = _device(run)
    if device.type == "cuda":
        to = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        layer = logistic_torch(to(train_x), to(data.train_y).long(), data.n_classes, C)
        with torch.no_grad():
            probs = [torch.softmax(layer(to(a)), dim=1).cpu().numpy() for a in (train_x, val_x, test_x)]
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, max_iter=LBFGS_ITERATIONS, tol=1e-6)
        model.fit(train_x, data.train_y)
        probs = [_all_classes(model, a, data.n_classes) for a in (train_x, val_x, test_x)]
    train_loss = log_loss(probs[0], data.train_y)
    yield _record(run, started, train_loss, probs[1], data, probs[2])


def _all_classes(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's probabilities over every class of the dataset (a subset may lack one)."""
    out = np.zeros((len(x), n_classes), np.float64)
    if len(x):
        out[:, model.classes_] = model.predict_proba(x)
    return out


def knn_probabilities(train_x: torch.Tensor, train_y: torch.Tensor, queries: torch.Tensor, k: int,
                      n_classes: int) -> torch.Tensor:
    """DINO's weighted kNN votes, normalised to probabilities (rows L2-normalised first)."""
    train_x = torch.nn.functional.normalize(train_x, dim=1)
    k = min(k, len(train_x))
    out = []
    for start in range(0, len(queries), KNN_CHUNK):
        q = torch.nn.functional.normalize(queries[start:start + KNN_CHUNK], dim=1)
        similarity, index = (q @ train_x.T).topk(k, dim=1)
        weights = (similarity / KNN_TEMPERATURE).exp()
        votes = torch.zeros(len(q), n_classes, device=q.device)
        votes.scatter_add_(1, train_y[index], weights)
        out.append(votes / votes.sum(dim=1, keepdim=True))
    return torch.cat(out) if out else torch.zeros(0, n_classes)


def fit_knn(run: TrialRun) -> Iterator[dict]:
    started = time.monotonic()
    data = probe_data(run)
    k = max(1, int(round(run.lr)))
    device = _device(run)
    to = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    train_x, train_y = to(data.train_x), to(data.train_y).long()
    with torch.no_grad():
        probs = [knn_probabilities(train_x, train_y, to(a), k, data.n_classes).cpu().numpy().astype(np.float64)
                 for a in (data.val_x, data.test_x)]
    yield _record(run, started, math.nan, probs[0], data, probs[1])


CALIBRATION_ROWS = 2048


def _calibration_data(widths) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((CALIBRATION_ROWS, sum(widths))).astype(np.float32),
            rng.integers(0, 5, CALIBRATION_ROWS))


def logistic_seconds_per_row(widths, device) -> float:
    """One logistic fit (C = 1) on 2,048 random rows of 5 classes, per row (``sweep plan --estimate``)."""
    x, y = _calibration_data(widths)
    started = time.perf_counter()
    if device.type == "cuda":
        logistic_torch(torch.as_tensor(x, device=device), torch.as_tensor(y, device=device).long(), 5, 1.0)
        torch.cuda.synchronize(device)
    else:
        from sklearn.linear_model import LogisticRegression

        LogisticRegression(C=1.0, max_iter=LBFGS_ITERATIONS, tol=1e-6).fit(*standardise(x)[:1], y)
    return (time.perf_counter() - started) / CALIBRATION_ROWS


def knn_seconds_per_row(widths, device) -> float:
    """kNN votes (k = 20) of 2,048 random queries against 2,048 training rows, per row."""
    x, y = _calibration_data(widths)
    t = torch.as_tensor(x, device=device)
    started = time.perf_counter()
    knn_probabilities(t, torch.as_tensor(y, device=device).long(), t, 20, 5)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / CALIBRATION_ROWS
