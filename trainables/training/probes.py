"""Probes fitted without epochs (logistic regression, kNN, few-shot): one small fitter each behind the
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
- ``fewshot``: SimpleShot (CL2N centroids) on ``shots`` images per class, over seeded episodes
  (nothing searched: one trial per study).

Example::

    >>> records = list(fit_logistic(run))      # doctest: +SKIP
    >>> records[0]["epoch"], records[0]["val_score"]  # doctest: +SKIP
    (1, 0.93)
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from trainables.cache.embeddings import load_embeddings
from trainables.context import TrialRun
from trainables.data.datasets import get_dataset_info
from trainables.data.splits import episode_support
from trainables.training.bootstrap import resamples_of
from trainables.training.outputs import save_bootstrap, save_predictions
from trainables.training.memory import resident_mib
from trainables.training.metrics import score

KNN_TEMPERATURE = 0.07  # DINO's kNN evaluation
KNN_CHUNK = 4096  # query rows a similarity block holds (x the training rows, float32)
LBFGS_ITERATIONS = 1000
# scikit-learn's fit is converged when the largest entry of the (mean-scaled) objective's
# gradient is below this: scikit-learn's own default. 1e-6 took 2.3x as long on a PatchCam-sized
# pool (40,000 x 2,048) and selected the same C with the same test AUC. (The GPU's torch L-BFGS
# keeps a tighter 1e-7: there a fit is a few hundred matrix products either way.)
LOGISTIC_TOL = 1e-4
# Below this many feature values (rows x width) scikit-learn fits on one thread. Its BLAS and
# OpenMP workers, woken for a fit this small, gain nothing, and their spinning afterwards stalls
# torch's own threads: the trial's bootstrap took 25-110 ms after a threaded fit, 13 ms after
# a single-threaded one (2 cores).
SINGLE_THREAD_VALUES = 1 << 20


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
    """The one record of a probe fitted once: its validation and test scores; beside the row its
    test probabilities (Kaggle's, where the labels are hidden) and its bootstrap scores."""
    metric = get_dataset_info(run.study.dataset).metric
    hidden = bool((data.test_y < 0).any())
    save_predictions(run.files.predictions, test_probs, data.test_y)
    scored = not hidden and len(data.test_y)
    test_score = score(metric, data.test_y, test_probs, where="test set") if scored else float("nan")
    if scored:
        save_bootstrap(run.files.bootstrap, resamples_of(data.test_y, device=_device(run)).scores(metric, test_probs))
    return _probe_record(run, started, train_loss, score(metric, data.val_y, val_probs, where="validation fold"),
                         log_loss(val_probs, data.val_y), test_score)


def _probe_record(run: TrialRun, started: float, train_loss: float, val_score: float, val_loss: float,
                  test_score: float, **extra) -> dict:
    return {"epoch": 1, "train_loss": train_loss, "val_loss": val_loss, "val_score": val_score, "lr_now": run.lr,
            "best_val_score": val_score, "best_epoch": 1, "test_score": test_score,
            "peak_rss_mib": round(resident_mib(), 1), "trial_wall_s": time.monotonic() - started,
            "resumed_from_epoch": None, **extra}


def _device(run: TrialRun) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and run.context.gpus else "cpu")


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Each array centred and scaled by the training rows' mean and std (a constant feature: 1)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0
    out = []
    for a in (train, *others):
        a = a - mean
        a /= std  # in place: PatchCam's 40,000 x 2,048 rows once less through memory
        out.append(a)
    return out


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
        probs = logistic_sklearn(train_x, data.train_y, C, data.n_classes, val_x, test_x)
    train_loss = log_loss(probs[0], data.train_y)
    yield _record(run, started, train_loss, probs[1], data, probs[2])


def logistic_sklearn(x: np.ndarray, y: np.ndarray, C: float, n_classes: int, *others: np.ndarray) -> list[np.ndarray]:
    """scikit-learn's lbfgs fit of the same objective; the class probabilities of ``x`` and of
    each of ``others``. On one thread when the problem is small (fit and predictions both: a
    prediction's matrix product wakes the BLAS workers too)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=LBFGS_ITERATIONS, tol=LOGISTIC_TOL)
    small = x.size < SINGLE_THREAD_VALUES
    with _thread_pools().limit(limits=1) if small else contextlib.nullcontext():
        model.fit(x, y)
        return [_all_classes(model, a, n_classes) for a in (x, *others)]


@functools.lru_cache(maxsize=1)
def _thread_pools():
    """The process's BLAS and OpenMP libraries, found once (a search of the loaded libraries
    takes milliseconds, a trial's fit as few)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


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


def simpleshot_probabilities(support_x: torch.Tensor, support_y: torch.Tensor, queries: torch.Tensor,
                             n_classes: int) -> torch.Tensor:
    """SimpleShot with CL2N: every feature centred on the support set's mean and L2-normalised,
    one centroid per class (the mean of its normalised support features), a query's class
    probabilities the softmax of its negative squared distances to the centroids. The nearest
    centroid is the prediction (as SimpleShot's); the softmax only turns distances into the
    probabilities AUC ranks. A class without support images gets probability 0."""
    mean = support_x.mean(dim=0, keepdim=True)
    support = torch.nn.functional.normalize(support_x - mean, dim=1)
    queries = torch.nn.functional.normalize(queries - mean, dim=1)
    sums = torch.zeros(n_classes, support.shape[1], device=support.device, dtype=support.dtype)
    sums.index_add_(0, support_y, support)
    counts = torch.bincount(support_y, minlength=n_classes)
    centroids = sums / counts.clamp(min=1)[:, None].to(sums.dtype)
    distances = torch.cdist(queries, centroids).square()
    distances[:, counts == 0] = math.inf
    return torch.softmax(-distances, dim=1)


def fit_fewshot(run: TrialRun) -> Iterator[dict]:
    """SimpleShot over ``study.episodes`` episodes: each draws ``study.shots`` images per class
    from the fold's training rows (nested across shot counts, trainables/data/splits.py) and
    scores the validation fold and the test set. The record holds the episodes' mean scores,
    the test score's sample std over episodes (``test_score_std``) and, beside the row, the
    bootstrap scores of the episodes' mean (the same resamples scored by every episode)."""
    started = time.monotonic()
    study, data = run.study, probe_data(run)
    metric = get_dataset_info(study.dataset).metric
    device = _device(run)
    to = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    train_x, train_y, val_x, test_x = to(data.train_x), to(data.train_y).long(), to(data.val_x), to(data.test_x)
    hidden = bool((data.test_y < 0).any())
    scored = not hidden and len(data.test_y)
    resamples = resamples_of(data.test_y, device=device) if scored else None
    val_scores, val_losses, test_scores, bootstrap, test_sum = [], [], [], 0.0, 0.0
    for episode in range(study.episodes):
        support = to(episode_support(data.train_y, study.shots, study.seed, study.fold, episode))
        with torch.no_grad():
            val_probs, test_probs = (
                simpleshot_probabilities(train_x[support], train_y[support], q, data.n_classes).cpu().numpy()
                .astype(np.float64) for q in (val_x, test_x))
        val_scores.append(score(metric, data.val_y, val_probs, where="validation fold"))
        val_losses.append(log_loss(val_probs, data.val_y))
        if scored:
            test_scores.append(score(metric, data.test_y, test_probs, where="test set"))
            bootstrap = bootstrap + resamples.scores(metric, test_probs) / study.episodes
        elif hidden:
            test_sum = test_sum + test_probs / study.episodes
    if hidden:  # Kaggle scores the episodes' mean probabilities
        save_predictions(run.files.predictions, test_sum, data.test_y)
    if scored:
        save_bootstrap(run.files.bootstrap, bootstrap)
    spread = float(np.std(test_scores, ddof=1)) if len(test_scores) > 1 else float("nan")
    yield _probe_record(run, started, math.nan, float(np.mean(val_scores)), float(np.mean(val_losses)),
                        float(np.mean(test_scores)) if test_scores else float("nan"), test_score_std=spread)


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
        logistic_sklearn(standardise(x)[0], y, 1.0, 5)
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


def fewshot_seconds_per_row(study, widths, device) -> float:
    """One SimpleShot episode (16 shots of 5 classes, 2,048 random queries) per query row, times
    the study's episodes (``sweep plan --estimate`` multiplies by the rows)."""
    x, y = _calibration_data(widths)
    t, labels = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device).long()
    support = torch.as_tensor(episode_support(y, 16, 0, 0, 0), device=device)
    started = time.perf_counter()
    simpleshot_probabilities(t[support], labels[support], t, 5)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) * study.episodes / CALIBRATION_ROWS
