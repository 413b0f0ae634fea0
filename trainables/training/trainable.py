"""What runs inside one Ray Tune trial: one learning rate of one study.

Everything comes from the trial's config: its ``TrialContext`` (the study, the data, weights,
split and cache files, where its files go: trainables/context.py) and its learning rate.
Frozen modes (trainables/models/modes.py: linear, dvme) train a head on cached embeddings and never
run a backbone; finetune trains the whole backbone on images.

Each epoch's record reaches the driver once: reported at ASHA's rungs and the last epoch, with
the epochs between carried along (trainables/training/reports.py). ``test_score`` is the test
score of the epoch with the best validation score so far (scored whenever validation improves),
so a trial that ASHA stops still carries the test score of its selected model.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import os
import time
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from trainables import artifacts, storage
from trainables.models.backbones import create_backbone, embedding_dim
from trainables.training.batches import FeatureBatches, balanced_weights
from trainables.data.datasets import get_dataset_info, load_dataset
from trainables.cache.embeddings import load_embeddings
from trainables.cache.parts import MissingRowsError
from trainables.training.bootstrap import resamples_of
from trainables.training.outputs import save_bootstrap, save_predictions
from trainables.training.reports import pack, reported, rung_epochs
from trainables.training.checkpoints import load_checkpoint, save_checkpoint, settle_meta
from trainables.training.engine import Fit, predict
from trainables.errors import ERROR_CHARS, error_line
from trainables.gcfreeze import freeze_long_lived
from trainables.context import TrialContext, TrialRun
from trainables.models.heads import DVME, Finetuned
from trainables.training.memory import resident_mib
from trainables.training.metrics import score
from trainables.models.modes import get_mode
from trainables.data.transforms import build_transform, draws_nothing


EVAL_BATCH = 2048  # rows per evaluation batch of a frozen head (8 MiB at 1,024 float32 dims)


class ImageDataset(Dataset):
    """Images and labels of one split under one transform. A transform that draws nothing
    (evaluation's; training's where the dataset is not augmented) runs once per batch instead
    of once per image (torch's ``__getitems__``), with the same values: the demo's finetuning
    trials spent a third of their time in per-image transform calls."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, torch.as_tensor(labels), transform
        # In memory and one size (not files decoded one by one), and a transform without draws.
        self.batched = isinstance(images, torch.Tensor) and draws_nothing(transform)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]

    def __getitems__(self, indices: list[int]) -> list:
        if not self.batched:  # each image its own draws, as the sampler orders them
            return [self[i] for i in indices]
        rows = torch.as_tensor(indices)
        return list(zip(self.transform(self.images[rows]), self.labels[rows]))


def study_split(context: TrialContext) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) pool indices: the driver's fold manifest, so that the row's
    manifest digest is the split the trial used."""
    manifest = json.loads(storage.read_bytes(context.manifest_file))
    return np.asarray(manifest["train_rows"], dtype=np.int64), np.asarray(manifest["val_rows"], dtype=np.int64)


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, balance: bool = False,
            workers: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    options = dict(batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0,
                   pin_memory=torch.cuda.is_available())
    if balance:
        return DataLoader(dataset, sampler=class_balanced_sampler(dataset.labels, generator), **options)
    return DataLoader(dataset, shuffle=shuffle, generator=generator, **options)


def class_balanced_sampler(labels: torch.Tensor, generator: torch.Generator) -> WeightedRandomSampler:
    """Oversampling: each class drawn equally often in expectation, one epoch = len(labels) draws."""
    return WeightedRandomSampler(balanced_weights(labels), num_samples=len(labels), replacement=True,
                                 generator=generator)


def _require_rows(split, rows: np.ndarray, backbone: str, view: int) -> None:
    missing = np.setdiff1d(rows, split.rows)
    if len(missing):
        raise MissingRowsError(
            f"the embedding cache of {backbone} (view {view}) holds no features of {len(missing)} row(s) this "
            f"study trains or validates on (first: {missing[:5].tolist()}); run the sweep again to extract them"
        )


def build_frozen(context: TrialContext):
    """Model and batches of a frozen-mode trial (linear, DVME), from the embedding cache only.

    Validation and test read view 0 (the evaluation transform); training reads the augmented
    views when the study has them (``views`` > 1), one per epoch in turn, else view 0.
    """
    study = context.study
    files = [context.embedding_files[b] for b in study.backbones]
    evaluation = [load_embeddings(f[0]) for f in files]
    pool, test = [c["pool"] for c in evaluation], [c["test"] for c in evaluation]
    augmented = [[load_embeddings(parts)["pool"] for parts in f[1:]] for f in files]
    n_views = len(augmented[0])
    if any(len(a) != n_views for a in augmented):
        raise ValueError(f"every backbone needs the same number of views: {context.embedding_files}")
    train_rows, val_rows = study_split(context)
    # Every row the study reads must be held (a cache pruned by hand, or files from another
    # sweep): said here, naming the backbone and view, not mid-epoch. View 0 holds the training
    # rows too, even when they train on augmented views: their labels are read from it.
    for b, split in zip(study.backbones, pool):
        _require_rows(split, np.concatenate([train_rows, val_rows]), b, 0)
    for b, views in zip(study.backbones, augmented):
        for v, split in enumerate(views, start=1):
            _require_rows(split, train_rows, b, v)
    train_views = [[a[v].features for a in augmented] for v in range(n_views)] or [[p.features for p in pool]]
    labels = pool[0].labels
    balance = get_dataset_info(study.dataset).oversample
    # Evaluation batches can be large (heads have no batch statistics): a few matrix products
    # score the whole validation fold and test set.
    evaluation_batch = max(study.batch_size, EVAL_BATCH)
    batches = (
        FeatureBatches(train_views, labels, train_rows, study.batch_size, shuffle=True, seed=study.seed, balance=balance),
        FeatureBatches([[p.features for p in pool]], labels, val_rows, evaluation_batch),
        FeatureBatches([[t.features for t in test]], test[0].labels, None, evaluation_batch),
    )
    dims = [p.features.shape[1] for p in pool]
    return get_mode(study.mode).head(dims, context.n_classes, study), batches


def build_finetune(context: TrialContext):
    """Model and loaders of a finetuning trial: the whole backbone trains on images."""
    study = context.study
    name = study.backbones[0]
    ds_info = get_dataset_info(study.dataset)
    data = load_dataset(study.dataset, context.data_root, holdout=context.holdout,
                        skip=list(context.skip) if context.skip is not None else None)
    backbone, bb_info = create_backbone(name, img_size=ds_info.image_size, weights_path=context.weights.get(name),
                                        seed=study.seed, trust_remote_code=name in context.trusted_code)
    train_rows, val_rows = study_split(context)
    train_tf = build_transform(ds_info, bb_info, train=True)
    eval_tf = build_transform(ds_info, bb_info, train=False)
    seed, batch = study.seed, study.batch_size
    # Decoding in worker processes when the trial has CPUs to spare (one stays for the model).
    workers = max(0, int(context.cpus) - 1)
    pool = data.pool
    loaders = (
        _loader(ImageDataset(pool.images[train_rows], pool.labels[train_rows], train_tf), batch, True, seed,
                ds_info.oversample, workers),
        _loader(ImageDataset(pool.images[val_rows], pool.labels[val_rows], eval_tf), batch, False, seed,
                workers=workers),
        _loader(ImageDataset(data.test.images, data.test.labels, eval_tf), batch, False, seed, workers=workers),
    )
    return Finetuned(backbone, bb_info, embedding_dim(backbone, bb_info), len(data.classes)), loaders


@torch.no_grad()
def mean_attention(model: DVME, loader: DataLoader, device) -> list[list[float]]:
    """DVME's attention between backbones averaged over a loader's images."""
    model.eval()
    total, count = None, 0
    for x, _ in loader:
        weights = model.backbone_attention([t.to(device) for t in x]).sum(dim=0)
        total = weights if total is None else total + weights
        count += len(x[0])
    return (total / count).cpu().tolist()


DVME_FEATURE_ROWS = 500  # test images whose fused DVME embedding a trial keeps, for the t-SNE plot


@torch.no_grad()
def save_dvme_features(path: str, model: DVME, test: FeatureBatches, device) -> None:
    """The fused embedding of up to DVME_FEATURE_ROWS test images (evenly spaced, the same in
    every trial) at the selected epoch, float16, with their labels (.npz; a path or URI)."""
    model.eval()
    n = len(test.rows)
    picked = np.unique(np.linspace(0, n - 1, min(n, DVME_FEATURE_ROWS)).astype(np.int64))
    rows = test.rows[picked]
    features = [torch.from_numpy(np.asarray(m[rows], dtype=np.float32)).to(device) for m in test.views[0]]
    buffer = io.BytesIO()
    np.savez(buffer, features=model.embed(features).cpu().numpy().astype(np.float16),
             labels=test.labels[torch.as_tensor(picked)].numpy())
    storage.write_atomic(path, buffer.getvalue())


class Checkpointer:
    """When and where one trial saves its checkpoints (trainables/training/checkpoints.py).

    A checkpoint is written at the end of an epoch once ``every_s`` seconds have passed since
    the last one (0: every epoch), never after the last epoch: the bound on what a killed
    trial loses, traded against the write (a ResNet-50 with Adam's moments is ~300 MB, while
    a linear head's epoch takes milliseconds and is cheaper to redo than to save).
    """

    def __init__(self, folder: str, study_id: str, trial_id: str, every_s: float, manifest_digest: Optional[str] = None):
        self.folder, self.study_id, self.trial_id = folder, study_id, trial_id
        self.every_s, self.manifest_digest = every_s, manifest_digest
        self.last = time.monotonic()

    @classmethod
    def for_trial(cls, run: TrialRun) -> Optional["Checkpointer"]:
        context = run.context
        if context.checkpoint_every_s is None:
            return None
        return cls(artifacts.folder(context.store_root, "checkpoint"), run.study.study_id, run.trial_id,
                   float(context.checkpoint_every_s), context.manifest_digest)

    def restore(self, fit: Fit, lr: float) -> Optional[dict]:
        """Load the trial's checkpoint into ``fit``; its saved extras (best-so-far selection,
        records, wall time), or None to start from epoch 1."""
        checkpoint = load_checkpoint(self.folder, self.study_id, self.trial_id)
        if checkpoint is None:
            return None
        meta = checkpoint["meta"]
        # Only a checkpoint of this very trial: same learning rate, same training split.
        if meta.get("lr") != lr or meta.get("manifest_digest") != self.manifest_digest:
            return None
        fit.load_state_dict(checkpoint["state"]["fit"])
        settle_meta(self.folder, self.study_id, self.trial_id, meta)
        return {**checkpoint["state"]["extras"], "records": meta.get("records", [])}

    def due(self, epoch: int, max_epochs: int) -> bool:
        return epoch < max_epochs and time.monotonic() - self.last >= self.every_s

    def save(self, fit: Fit, lr: float, extras: dict, records: list[dict]) -> None:
        meta = {"lr": lr, "epoch": fit.epoch, "manifest_digest": self.manifest_digest, "records": records}
        save_checkpoint(self.folder, self.study_id, self.trial_id, {"fit": fit.state_dict(), "extras": extras}, meta)
        self.last = time.monotonic()


# What a checkpoint keeps of each reported epoch: the per-epoch history of the store.
RECORD_FIELDS = ("epoch", "train_loss", "val_loss", "val_score", "best_val_score", "test_score", "lr_now",
                 "trial_wall_s", "peak_rss_mib")


def trial_epochs(run: TrialRun, checkpointer: Optional[Checkpointer] = None) -> Iterator[dict]:
    """Train one trial; yield each epoch's record with the best-so-far selection and test score.

    The selected epoch's test probabilities go to the trial's predictions file (Kaggle's
    submission files where the test labels are hidden, which have no test score); its scores on
    the test set's bootstrap resamples to the bootstrap file, once: before the last epoch's
    record, or when the trial is ended at a report before that (ASHA).

    With a ``checkpointer`` the trial resumes from its checkpoint when it has one (records
    then start at the epoch after it and carry ``resumed_from_epoch``) and saves new ones.
    ``trial_wall_s`` counts the time of every attempt.
    """
    started = time.monotonic()
    context, study, lr = run.context, run.study, run.lr
    torch.manual_seed(study.seed * 1009 + study.fold)
    torch.set_num_threads(max(1, int(context.cpus)))
    fitter = get_mode(study.mode).fitter
    if fitter is not None:  # a probe: fitted once, one record
        yield from fitter(run)
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    build = build_frozen if get_mode(study.mode).frozen else build_finetune
    model, (train, val, test) = build(context)
    metric = get_dataset_info(study.dataset).metric
    best: dict = {"best_val_score": -math.inf, "best_epoch": 0, "test_score": float("nan")}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    peak_rss = resident_mib()
    fit = Fit(model, train, val, lr=lr, max_epochs=study.max_epochs, metric=metric, device=device)
    resumed = checkpointer.restore(fit, lr) if checkpointer else None
    wall_before, records, resumed_from = 0.0, [], None
    if resumed is not None:
        best, wall_before, records = resumed["best"], resumed["wall_s"], resumed["records"]
        peak_rss, resumed_from = max(peak_rss, resumed["peak_rss_mib"]), fit.epoch
    selected = None  # (labels, probs) of the selected epoch's test set, while labels are known
    try:
        for record in fit:
            if record["val_score"] > best["best_val_score"]:
                _, probs, labels = predict(model, test, device)
                hidden = bool((labels < 0).any())
                test_score = float("nan") if hidden else score(metric, labels, probs, where="test set")
                # Written before the epoch is reported (ASHA may end the trial at that report):
                # Kaggle's submission files, and the bootstrap's source when this trial ends
                # without writing its own (sweep/store/intervals.py).
                save_predictions(run.files.predictions, probs, labels)
                selected = None if hidden else (labels, probs)
                best = {"best_val_score": record["val_score"], "best_epoch": record["epoch"], "test_score": test_score}
                if isinstance(model, DVME) and model.attn is not None:
                    best["backbone_attention"] = json.dumps(mean_attention(model, test, device))
                if isinstance(model, DVME):
                    save_dvme_features(run.files.dvme_features, model, test, device)
            peak_rss = max(peak_rss, resident_mib())
            memory = {"peak_rss_mib": round(peak_rss, 1)}
            if device.type == "cuda":
                memory["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
            out = {**record, **best, **memory, "trial_wall_s": wall_before + time.monotonic() - started,
                   "resumed_from_epoch": resumed_from}
            records.append({k: out.get(k) for k in RECORD_FIELDS})
            if checkpointer and checkpointer.due(record["epoch"], study.max_epochs):
                extras = {"best": best, "wall_s": out["trial_wall_s"], "peak_rss_mib": peak_rss}
                checkpointer.save(fit, lr, extras, records)
            if record["epoch"] >= study.max_epochs:
                # Before the last epoch's record goes: its report ends the trial (reports.py),
                # and Tune may stop this thread right there (an actor no next trial takes over).
                # Not in trial_wall_s, as before: the training's time, without the bootstrap.
                _save_selected_bootstrap(run, metric, selected, device)
                selected = None
            yield out
    except GeneratorExit:  # ASHA ended the trial at a report: its selected epoch is final too
        _save_selected_bootstrap(run, metric, selected, device)
        raise


def _save_selected_bootstrap(run: TrialRun, metric: str, selected, device) -> None:
    """The selected epoch's scores on the test set's resamples, once per trial (on 2 CPU cores
    1,000 resamples of PatchCam's 32,768 test images take about 0.25 s: at every improvement
    they would cost more than a linear head's epochs)."""
    if selected is not None:
        labels, probs = selected
        save_bootstrap(run.files.bootstrap, resamples_of(labels, device=device).scores(metric, probs))


def error_text(exc: BaseException) -> str:
    """``Type: message`` of a trial's error, at most 2,000 characters. A DataLoader re-raises
    a decoding worker's error with the worker's whole traceback as its message: its last line
    is the error itself (an image that does not decode, named)."""
    text = str(exc).strip()
    if "Original Traceback" in text:
        name, _, message = text.splitlines()[-1].partition(": ")
        return f"{name.rsplit('.', 1)[-1]}: {message}"[:ERROR_CHARS]
    return error_line(exc)


def run_trial(config: dict) -> None:
    """The Ray Tune function trainable: ``config`` is ``trial_config(context, lr, ...)``."""
    import ray
    from ray import tune

    run = TrialRun.of(config, tune.get_context().get_trial_id())
    _freeze_imported_objects()
    # Tune reuses this actor for the next trial only if this one's thread ends within this
    # many seconds of being stopped (default 2): on a loaded node (a packed GPU, 2 cores) it
    # can take longer, and a failed reuse counts as a trial failure. Read at reuse time.
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "60")
    if not run.context.gpus:
        # Ray sets no CUDA_VISIBLE_DEVICES for a trial without GPUs: on a GPU node it would
        # see (and allocate on) every GPU. Hide them before torch first touches CUDA.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif torch.cuda.is_available():
        # Ray packs fractional trials onto one GPU but does not cap their memory: cap each at
        # its fraction, so a trial that grows fails alone (out of memory) instead of starving
        # the others on its GPU.
        torch.cuda.set_per_process_memory_fraction(min(1.0, float(run.context.gpus)), 0)
    ray_context = ray.get_runtime_context()
    placement = {
        "node_id": ray_context.get_node_id(),
        "gpu_ids": json.dumps([str(g) for g in ray_context.get_accelerator_ids().get("GPU", [])]),
        "started_at": time.time(),
    }
    study = run.study
    # Reported: ASHA's rungs, the last epoch and a resumed trial's first; the epochs between
    # ride along with the next report (trainables/training/reports.py).
    rungs = rung_epochs(study.max_epochs, study.grace_period, study.reduction_factor)
    last: dict = {}
    unreported: list[dict] = []
    first = True
    try:
        # Closed explicitly: when ASHA ends the trial, tune.report raises SystemExit in this
        # thread, and closing the generator then writes its selected epoch's bootstrap.
        with contextlib.closing(trial_epochs(run, Checkpointer.for_trial(run))) as epochs:
            for record in epochs:
                last = {**record, **placement}
                unreported.append(last)
                resumed_first, first = first and last.get("resumed_from_epoch") is not None, False
                if reported(last["epoch"], rungs, study.max_epochs, resumed_first):
                    # The last epoch's report ends the trial (reports.py): the driver stops the
                    # thread inside it (trial_epochs wrote the bootstrap before that record).
                    tune.report(pack(last, earlier=unreported[:-1], final=last["epoch"] >= study.max_epochs))
                    unreported = []
        if unreported:  # a trial that ended before its last epoch: nothing of it is left out
            tune.report(pack(unreported[-1], earlier=unreported[:-1], final=True))
    except (OSError, MemoryError, torch.cuda.OutOfMemoryError):
        raise  # may pass on another try (storage hiccup, a GPU neighbour's memory): Tune retries it
    except Exception as exc:
        # Deterministic for this config (a NaN loss, a weight file of another architecture):
        # trying again would fail again. Reported once, as the trial's last result, with the
        # epochs it did finish; the store records it with status "error".
        # Tune wants the metric in every result: the last epoch's, or nan before any epoch.
        failed = {"val_score": math.nan, **last, **placement, "trial_error": error_text(exc)}
        tune.report(pack(failed, earlier=unreported[:-1], final=True))  # the last epoch is the failure's record
    finally:
        release_memory()


def _freeze_imported_objects() -> None:
    """Before each trial: every object alive now (torch's, timm's and scikit-learn's modules:
    millions; what the last trial's release_memory left, caches meant to last) moves out of
    the garbage collector's reach (trainables/gcfreeze.py). Each full collection,
    release_memory's after every trial and Python's own, went through all of them: 0.28 s a
    collection on 2 cores, against 0.04 ms with them frozen."""
    freeze_long_lived()


def release_memory() -> None:
    """ASHA stops a trial by ending its function (the actor itself is reused): its model and
    batches go now, and the GPU blocks torch still caches go back for the next trial."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
