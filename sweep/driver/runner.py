"""Run a list of studies as one Ray Tune experiment, results into the store.

Steps: open the store (refusing another grid's), drop studies already complete there
(``resume``), check every dataset and weight file before anything starts, extract the
embeddings frozen modes need (Ray tasks, once per dataset x backbone), then one ``tune.Tuner``
whose searcher and scheduler keep each study to itself.

Example::

    >>> summary = run_sweep(load_grid("demo"), RunOptions(store=StoreOptions(results="/tmp/r")))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from importlib.metadata import version
from typing import Optional

from sweep.driver.console import capture, echo, end_status, status, warn
from sweep.report.kaggle import write_submissions
from sweep.driver.manifests import StudySplit, write_manifests
from sweep.options import Inputs, Resources, RunOptions, StoreOptions, TrialPolicy
from sweep.store.intervals import cell_intervals
from sweep.store.queries import aggregate_cells, select_studies
from sweep.plan.planning import check_studies
from sweep.plan.preflight import resolve_inputs
from sweep.spec import SpecError, StudySpec, resolve_pools
from sweep.store.store import ResultsStore, StoreError
from trainables.errors import UserError
from trainables import storage
from trainables.models.backbones import get_backbone_info, weights_digest
from trainables.context import CONTEXT, TrialContext
from trainables.models.modes import get_mode
from trainables.data.dataset_types import counts_line
from trainables.data.datasets import DatasetError, get_dataset_info, load_dataset
from trainables.cache.embeddings import cached_views
from trainables.data.images import ImageDecodeError


class ExtractionError(UserError):
    """An embedding extraction failed on the data or the weights (not on the machine)."""


@dataclass
class RunSummary:
    results: str
    studies: int
    skipped: int
    trials_written: int
    wall_s: float
    submissions: int = 0  # Kaggle submission files written (hidden test labels)
    extracted: int = 0  # embedding-cache files this sweep extracted (the rest were cached)
    study_ids: tuple = ()  # the sweep's studies, whole-pool sizes resolved (as the rows have them)
    # Each stage of the sweep as it ran, in order: name -> (start, end), Unix seconds
    # (benchmarks/overhead.py reads where a sweep's time goes; `sweep run -v` prints it).
    phases: dict = dataclasses.field(default_factory=dict)

    def phase_line(self) -> str:
        return ", ".join(f"{name} {end - start:.1f} s" for name, (start, end) in self.phases.items())

    def outcome(self, store: ResultsStore) -> dict:
        """What the store holds of this sweep's studies: its cells (mean ± std over folds), the
        answer per dataset and size (best method, runner-up, p) and its trials counted (all,
        stopped early by ASHA, failed), for the closing lines."""
        ours = set(self.study_ids)
        from sweep.report.answer import answers

        trials = [r for r in store.read_trials().to_pylist() if r["study_id"] in ours]
        studies = select_studies(trials)
        return {
            "cells": aggregate_cells(studies, cell_intervals(store.root, studies)),
            "answers": answers(studies),
            "trials": len(trials),
            "stopped": sum(1 for r in trials if r["stopped_early"]),
            "failed": sum(1 for r in trials if r["status"] == "error"),
        }


def _versions() -> dict:
    names = ("medsweep", "torch", "torchvision", "timm", "ray", "optuna", "scikit-learn", "pyarrow")
    return {n: version(n) for n in names}


def _check_named_inputs(studies: list[StudySpec], inputs: Inputs) -> None:
    """Every ``--data`` and ``--weights`` name is a known dataset or backbone (a typo would
    otherwise be dropped unsaid); a known one no study of this sweep uses is pointed out."""
    used_data = {s.dataset for s in studies}
    used_backbones = {b for s in studies for b in s.backbones}
    for name in inputs.data_roots:
        get_dataset_info(name)  # an unknown name: an error listing the valid ones
        if name not in used_data:
            echo(f"note: --data {name}=...: no study of this sweep uses {name}")
    for name in inputs.weights:
        get_backbone_info(name)
        if name not in used_backbones:
            echo(f"note: --weights {name}=...: no study of this sweep uses {name}")


def _check_weights(studies: list[StudySpec], weights: dict, trusted: tuple = ()) -> None:
    missing = {}
    for s in studies:
        for b in s.backbones:
            info = get_backbone_info(b)
            if info.needs_weights and b not in weights:
                missing[b] = info.weight_files
    if missing:
        lines = "; ".join(f"{b} (published file: {', '.join(f)})" for b, f in sorted(missing.items()))
        raise SpecError(f"weights missing for: {lines}. Give each with --weights NAME=PATH or put the files in $MEDSWEEP_WEIGHTS")
    for b, path in weights.items():
        if not os.path.isfile(path):
            raise SpecError(f"--weights {b}={path}: no such file")
    # Each file loaded whole into its architecture, as `sweep weights check` does, before Ray
    # starts: a file of another model would otherwise fail every finetune trial, one error row
    # each, or an extraction after the image check.
    from sweep.plan.weightcheck import check_weights

    for b, path in sorted(weights.items()):
        report = check_weights(b, path, trust_remote_code=b in trusted)
        if not report["ok"]:
            raise SpecError(f"--weights {b}={path} does not load into {b}: {report['error']} "
                            f"(`sweep weights check {b} --file {path}` lists the keys)")


def _skip_unreadable(names: list[str], inputs: Inputs, store: ResultsStore) -> dict:
    """dataset -> ids to leave out; every problem written to ``skipped/<dataset>.json``."""
    from sweep.plan.datacheck import skip_list

    skips = {}
    for name in names:
        ids, problems = skip_list(name, inputs.data_roots.get(name))
        skips[name] = ids
        report = {"dataset": name, "skipped_ids": ids, "problems": problems}
        storage.write_atomic(storage.join(store.skipped_dir, f"{name}.json"), json.dumps(report, indent=1).encode())
        if problems:
            echo(f"{name}: {len(problems)} problem(s) left out, listed in {store.skipped_dir}/{name}.json")
    return skips


def resource_override(overrides: dict, study: StudySpec, default: float) -> float:
    """``mode:backbone`` first, then ``mode``, then the study's own value."""
    return overrides.get(f"{study.mode}:{study.backbone}", overrides.get(study.mode, default))


MAX_EXTRACT_CPUS = 9  # 8 decoding workers (trainables' default_workers cap) and the model's own


def default_extract_cpus(node_cpus: float, node_gpus: float) -> int:
    """CPUs of one extraction task beside a GPU on a node of ``node_cpus`` and ``node_gpus``: its
    share of the node's CPUs, up to 9. Extraction runs before any trial, one task per GPU, so
    the share is idle otherwise, and decoding is what holds a GPU back (PNG and TIFF have no
    GPU decoder): a 16-CPU one-GPU node gives 8 workers, not 3."""
    return max(1, min(MAX_EXTRACT_CPUS, int(node_cpus // max(node_gpus, 1))))


def extraction_cpus(resources: Resources, has_gpu: bool) -> int:
    """CPUs of one extraction task: the option, else 1 without GPUs, else each GPU's share of
    its node's CPUs, the smallest over the GPU nodes: every GPU can take an extraction task (a
    larger request would never be placed on the smaller nodes, or anywhere)."""
    import ray

    if resources.extract_cpus:
        return resources.extract_cpus
    if not has_gpu:
        return 1
    shares = [default_extract_cpus(n["Resources"].get("CPU", 0), n["Resources"]["GPU"])
              for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")]
    return min(shares, default=1)


def extraction_requests(studies: list[StudySpec]) -> dict:
    """Each study's cache files per backbone as (dataset, backbone, view, dtype) requests:
    view 0 (evaluation) always, views 1..K when the study trains on K augmented views."""
    out = {}
    for s in studies:
        if not get_mode(s.mode).frozen:
            continue  # its backbone trains on images: nothing to cache
        out[s.study_id] = {
            b: [(s.dataset, b, v, s.embedding_dtype) for v in cached_views(s.views)] for b in s.backbones
        }
    return out


def _verify_images(datasets: dict, cache_dir: str, verbose: int) -> dict:
    """Each data set with its content fingerprint, once every image the sweep will use has
    been decoded, in parallel as Ray tasks. Files already checked with the same stat are not
    read again (the cache's file index: trainables/data/filedigests.py); an image that does not
    decode stops the sweep here, before any trial starts, named."""
    import ray

    from trainables.cache.embeddings import files_index_dir
    from trainables.data.filedigests import content_fingerprint, inspect_files_in_worker

    task = ray.remote(num_cpus=1)(inspect_files_in_worker)

    def on_ray(chunks: list, decode: bool) -> list:
        return ray.get([task.remote(chunk, decode) for chunk in chunks])

    out = {}
    for name, data in datasets.items():
        checked = time.perf_counter()
        out[name], problems = content_fingerprint(data, files_index_dir(cache_dir), check=True, run_chunks=on_ray)
        if problems:
            head = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise DatasetError(
                f"{len(problems)} image(s) of {name} cannot be used: {head}. `sweep data check {name}` lists "
                f"every such file, --skip-unreadable leaves them out"
            )
        if verbose and time.perf_counter() - checked > 1:
            echo(f"{name}: every image checked ({len(data.pool) + len(data.test):,} images, "
                        f"{time.perf_counter() - checked:.1f} s)")
    return out


def extraction_rows(requests: dict, manifests: dict[str, StudySplit]) -> dict:
    """(dataset, backbone, view, dtype) -> the pool rows the pending studies read from it:
    view 0 their training and validation rows (validation always reads it, and the labels of
    every row come from it), an augmented view their training rows. Subsets are nested, so
    this is each dataset's largest subset drawn, not its whole pool."""
    rows: dict = {}
    for study_id, per_backbone in requests.items():
        split = manifests[study_id]
        for requested in per_backbone.values():
            for request in requested:
                wanted = split.train_rows + (split.val_rows if request[2] == 0 else ())
                rows.setdefault(request, set()).update(wanted)
    return {request: sorted(r) for request, r in rows.items()}


def _extract_all(requests: dict, options: RunOptions, cache_dir: str, has_gpu: bool, skips: dict,
                 fingerprints: dict) -> dict:
    """(dataset, backbone, view, dtype) -> the cache files holding the rows asked of it
    (``requests``: request -> pool rows), as Ray tasks, one per (dataset, backbone, dtype) for
    all its views, so that each image is decoded once for them: one GPU each where the cluster
    has GPUs, with CPUs for decoding workers beside it. Only rows no file of a key holds yet are
    extracted."""
    import ray

    from sweep.driver.extraction_progress import ProgressBoard, extraction_status
    from trainables.cache.embeddings import extract_views_in_worker, extraction_name

    cpus = extraction_cpus(options.resources, has_gpu)
    task = ray.remote(num_cpus=cpus, num_gpus=1 if has_gpu else 0)(extract_views_in_worker)
    board = ray.remote(num_cpus=0)(ProgressBoard).remote() if options.verbose > 0 else None
    groups: dict = defaultdict(dict)  # (dataset, backbone, dtype) -> view -> rows
    for (d, b, v, t), rows in sorted(requests.items()):
        groups[(d, b, t)][v] = rows
    names = {g: extraction_name(g[0], g[1], views) for g, views in groups.items()}

    def reporter(name: str):
        return (lambda *state: board.update.remote(name, *state)) if board is not None else False

    refs = {
        task.remote(
            d, options.inputs.data_roots.get(d), b, options.inputs.weights.get(b), cache_dir,
            holdout=options.inputs.holdout, skip=skips.get(d), views=views, dtype=t, progress=reporter(names[(d, b, t)]),
            fingerprint=fingerprints[d], decode=options.resources.decode,
            trust_remote_code=b in options.inputs.trust_remote_code,
        ): (d, b, t)
        for (d, b, t), views in groups.items()
    }
    files, extracted = {}, 0
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
        state = ray.get(board.snapshot.remote()) if board is not None else {}
        for ref in ready:
            d, b, t = group = refs[ref]
            result = _extraction_result(ref, group, sorted(groups[group]))
            for v, (held, fresh) in result.items():
                files[(d, b, v, t)] = held
                extracted += fresh
            if any(fresh for _, fresh in result.values()) and names[group] in state:
                _, images, seconds = state[names[group]]
                echo(f"extracted {names[group]}: {images:,} images in {seconds:.1f} s "
                     f"({images / max(seconds, 1e-9):,.0f} img/s)")
        running = {names[refs[r]]: state[names[refs[r]]] for r in pending if names[refs[r]] in state}
        if running:
            status(extraction_status(running, len(groups) - len(pending), len(groups)))
    end_status(keep=False)
    return files, extracted


def _extraction_result(ref, group: tuple, views: list) -> dict:
    """View -> (files, whether extracted) of one extraction task, or its named error."""
    import ray

    from trainables.cache.embeddings import extraction_name

    d, b, _ = group
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        # A named error of the data or weights (an image that does not decode, a weight
        # file of another architecture): one line naming it, not the task's traceback.
        # Extractions already finished stay in the cache for the next try.
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, ValueError):
            raise
        hint = ""
        if isinstance(cause, ImageDecodeError):
            hint = f"; `sweep data check {d}` lists every such file, --skip-unreadable leaves them out"
        raise ExtractionError(f"embeddings of {extraction_name(d, b, views)}: {cause}{hint}") from None


def trial_context(study: StudySpec, options: RunOptions, store: ResultsStore, n_classes: int,
                  manifest: StudySplit, embedding_files: dict, skip: Optional[list], has_gpu: bool) -> TrialContext:
    """What every trial of ``study`` reads (trainables/context.py), from the sweep's options
    and what the driver prepared: the split, the cache files, the store."""
    return TrialContext(
        study=study,
        cpus=resource_override(options.resources.cpus_per_trial, study, study.cpus),
        gpus=resource_override(options.resources.gpus_per_trial, study, study.gpus) if has_gpu else 0.0,
        data_root=options.inputs.data_roots.get(study.dataset),
        holdout=options.inputs.holdout,
        skip=tuple(skip) if skip is not None else None,
        weights={b: options.inputs.weights[b] for b in study.backbones if b in options.inputs.weights},
        trusted_code=tuple(b for b in study.backbones if b in options.inputs.trust_remote_code),
        n_classes=n_classes,
        manifest_file=manifest.path,
        manifest_digest=manifest.digest,
        embedding_files={b: _per_view(files) for b, files in embedding_files.items()},
        store_root=store.root,
        checkpoint_every_s=options.policy.checkpoint_every_s,
    )


def _per_view(files) -> tuple[tuple[str, ...], ...]:
    """A backbone's cache files as the context holds them, one tuple of parts per view, from a
    path (one view, one file) or a sequence with a path or the parts of each view."""
    if isinstance(files, str):
        return ((files,),)
    return tuple((view,) if isinstance(view, str) else tuple(view) for view in files)


def standalone_context(study: StudySpec, results: str, embedding_files: Optional[dict] = None,
                       data_root: Optional[str] = None, checkpoint_every_s: Optional[float] = None,
                       weights: Optional[dict] = None) -> TrialContext:
    """The TrialContext of one study outside a sweep (a benchmark, a notebook): its split
    written to ``results``/manifests as a sweep writes it, no GPU.

    >>> run = TrialRun(standalone_context(study, "/tmp/r", {"test_resnet": path}), 1e-3, "t1")  # doctest: +SKIP
    >>> records = list(trial_epochs(run))                                                      # doctest: +SKIP
    """
    data = load_dataset(study.dataset, data_root)
    store = ResultsStore(results)
    manifest = write_manifests(store.manifests_dir, [study], {study.dataset: data})[study.study_id]
    options = RunOptions(inputs=Inputs(data_roots={study.dataset: data_root} if data_root else {}, weights=weights or {}),
                         store=StoreOptions(results=results), policy=TrialPolicy(checkpoint_every_s=checkpoint_every_s))
    return trial_context(study, options, store, len(data.classes), manifest, embedding_files or {}, None,
                         has_gpu=False)


def _resumable(store: ResultsStore, contexts: list[TrialContext]) -> dict[str, list[dict]]:
    """Checkpoints of trials in flight when the last driver died, of studies still pending and
    trained on the same split (the manifest digest); the rest are reported and left out."""
    digests = {c.study.study_id: c.manifest_digest for c in contexts}
    out = {}
    for sid, metas in store.checkpoints_in_flight().items():
        if sid not in digests:
            continue  # a study of another grid, or complete: its checkpoints stay for that sweep
        usable = [m for m in metas if m.get("manifest_digest") == digests[sid]]
        for m in metas:
            if m not in usable:
                echo(f"checkpoint of trial {m['trial_id']} ({sid}) is of another split: not resumed")
        if usable:
            out[sid] = usable
    return out


def run_sweep(studies: list[StudySpec], options: RunOptions) -> RunSummary:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one "study created" line per study
    started = time.perf_counter()
    grid = studies[0].grid
    check_studies(studies)
    if options.store.mlflow:
        from sweep.driver.tracking import require_mlflow

        require_mlflow()
    _check_named_inputs(studies, options.inputs)
    roots, found = resolve_inputs(studies, options.inputs.data_roots, options.inputs.weights)
    options = dataclasses.replace(options, inputs=dataclasses.replace(options.inputs, data_roots=roots, weights=found))
    _check_weights(studies, options.inputs.weights, options.inputs.trust_remote_code)
    # Its warnings (a damaged file, left out) reach the terminal, not only the run's log.
    store = ResultsStore(options.store.results, warn=warn)
    store.open_for(grid, options.store.allow_other_grid, options.inputs.holdout)
    log = _log_path(store)
    try:
        with store.driver_lock(take_over=options.store.resume), capture(log):
            if options.verbose:
                kept = "" if storage.is_local(store.root) else f" (moved to {_stored_log(store, log)} when the sweep ends)"
                echo(f"Ray's and Tune's own output: {log}{kept}")
            try:
                return _sweep_locked(studies, options, store, grid, started)
            finally:
                _stop_ray()
    finally:
        _keep_log(store, log)


def _log_path(store: ResultsStore) -> str:
    """RESULTS/logs/run-<time>.log; for a store on an object store, a node-local file while
    the sweep runs (appended line by line; an object is written whole), moved into the store
    when it ends (:func:`_keep_log`)."""
    name = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    if storage.is_local(store.root):
        return os.path.join(storage.filesystem(store.root)[1], "logs", name)
    return os.path.join(storage.local_cache_dir(), "logs", name)


def _stored_log(store: ResultsStore, log: str) -> str:
    return storage.join(store.root, "logs", os.path.basename(log))


def _keep_log(store: ResultsStore, log: str) -> None:
    """A node-local log into the store, where every other file of the sweep is; left where it
    is (and said) if the store cannot take it."""
    if storage.is_local(store.root) or not os.path.exists(log):
        return
    try:
        storage.upload(log, _stored_log(store, log))
    except OSError as exc:
        warn(f"the run's log stays at {log}: it could not be copied into {store.root} ({exc})")


_started_ray = False  # whether this process's sweep started the Ray it runs on


def _stop_ray() -> None:
    """A Ray this sweep started ends with it, while its output still goes to the log (a
    Ray that was running before, a test's or a cluster's, is left as it was)."""
    global _started_ray
    if _started_ray:
        import ray

        ray.shutdown()
        _started_ray = False


class _DataLoader:
    """Each dataset of the sweep read once on the driver, on first use (after its
    ``--skip-unreadable`` list, when asked for, is made)."""

    def __init__(self, inputs: Inputs, store: ResultsStore):
        self.inputs, self.store = inputs, store
        self.loaded: dict = {}
        self.skips: dict = {}

    def get(self, name: str):
        if name not in self.loaded:
            inputs = self.inputs
            if inputs.skip_unreadable:
                self.skips.update(_skip_unreadable([name], inputs, self.store))
            self.loaded[name] = load_dataset(name, inputs.data_roots.get(name), holdout=inputs.holdout,
                                             skip=self.skips.get(name))
            if self.loaded[name].not_read:
                echo(f"{name}: files of a suffix no reader takes, left out: {counts_line(self.loaded[name].not_read)} "
                     f"(`sweep data check {name}` lists what it reads)")
        return self.loaded[name]


@dataclass
class _Plan:
    """What this sweep runs: its studies (whole pools resolved), the trials the store already
    holds (scores of those that finished, learning rates of those that failed), the studies
    with trials left, costliest first."""

    studies: list
    done: dict
    failed: dict
    pending: list


def _sweep_locked(studies: list[StudySpec], options: RunOptions, store: ResultsStore, grid: str, started: float) -> RunSummary:
    """The sweep once this driver holds the store's lock, stage by stage: store, data, Ray,
    data checked, extraction, trial contexts, tune, finish."""
    phases = _Phases()
    data = _DataLoader(options.inputs, store)
    with phases("store"):
        plan = _prepare_store(studies, options, store, data)
    ids = tuple(s.study_id for s in plan.studies)
    if not plan.pending:
        return RunSummary(store.root, len(studies), len(studies), 0, time.perf_counter() - started, study_ids=ids,
                          phases=phases.times)
    with phases("data read"):
        datasets = _prepare_data(plan.pending, data, store)
    with phases("Ray start"):
        has_gpu, cpus = _start_ray(options)
    cache_dir = store.cache_at(options.store.cache)
    with phases("image check"):
        # Every image decoded once, content fingerprints; the splits written with them.
        datasets = _verify_images(datasets, cache_dir, options.verbose)
        manifests = write_manifests(store.manifests_dir, plan.pending, datasets, data.skips)
    with phases("extraction"):
        requests = extraction_requests(plan.pending)
        facts = _row_facts(plan.pending, datasets, options)
        files, extracted = _extract_all(extraction_rows(requests, manifests), options, cache_dir, has_gpu, data.skips,
                                        facts["fingerprints"])
    with phases("tuner"):
        contexts = [
            trial_context(s, options, store, n_classes=len(datasets[s.dataset].classes), manifest=manifests[s.study_id],
                          embedding_files={b: [files[r] for r in rs] for b, rs in requests.get(s.study_id, {}).items()},
                          skip=data.skips.get(s.dataset), has_gpu=has_gpu)
            for s in plan.pending
        ]
        written = _tune(plan, contexts, options, store, facts, grid, cpus)
    with phases("finish"):
        submissions = _finish(store, plan, datasets)
    return RunSummary(store.root, len(studies), len(studies) - len(plan.pending), written,
                      time.perf_counter() - started, submissions, extracted, ids, phases.times)


class _Phases:
    """Times the stages of a sweep: ``with phases("name"):`` records (start, end)."""

    def __init__(self):
        self.times: dict = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.time()
        try:
            yield
        finally:
            self.times[name] = (start, time.time())


def _prepare_store(studies: list[StudySpec], options: RunOptions, store: ResultsStore, data: "_DataLoader") -> _Plan:
    """What the store already holds, and what is left to run."""
    if options.store.resume:
        # Damaged row or history files (an interrupted copy) go aside; their trials count as missing.
        for path, why in store.quarantine_unreadable().items():
            echo(f"moved {path} ({why}) to {store.quarantine_dir}/: its trial runs again")
    # The whole pool (the paper's F) is counted in the data: the study's size, id and rows.
    unresolved = sorted({s.dataset for s in studies if s.n_train is None})
    studies = resolve_pools(studies, {d: len(data.get(d).pool) for d in unresolved})
    done, failed = store.trial_outcomes()
    ours = {s.study_id for s in studies} & (set(done) | set(failed))
    if ours and not options.store.resume:
        raise StoreError(
            f"{store.root} already holds trials of {len(ours)} of these studies; "
            f"pass --resume to continue the sweep, or use another --results"
        )
    # Costliest first (the modes' run order: finetune, then DVME, then linear) so that no long
    # trial starts last and leaves the rest of the machine idle while it finishes.
    pending = sorted((s for s in studies if len(done.get(s.study_id, [])) < s.n_trials),
                     key=lambda s: get_mode(s.mode).run_order)
    return _Plan(studies, done, failed, pending)


def _prepare_data(pending: list[StudySpec], data: "_DataLoader", store: ResultsStore) -> dict:
    """Each dataset read once on the driver (a missing root or unreadable layout fails here,
    before Ray starts) and every study's split checked: a fold that cannot be scored (one
    class only) is an error now, not in the middle of the sweep. The splits are written once
    the data's content fingerprint, which each records, is known."""
    datasets = {d: data.get(d) for d in sorted({s.dataset for s in pending})}
    write_manifests(store.manifests_dir, pending, datasets, data.skips, write=False)
    return datasets


def _start_ray(options: RunOptions) -> tuple[bool, float]:
    """Join the cluster of --address (or RAY_ADDRESS), else start a Ray of this sweep's own;
    (whether it has GPUs, its CPUs)."""
    global _started_ray
    import ray

    if not ray.is_initialized():
        # Without --address (or a RAY_ADDRESS from `ray job submit`) a Ray of its own:
        # ray.init() alone would join any cluster `ray start` left on this machine.
        address = options.resources.address or os.environ.get("RAY_ADDRESS") or "local"
        if (address == "local" and os.environ.get("RAY_AUTH_MODE", "token").lower() == "token"
                and not {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ)):
            # Ray guards a new local Ray with a token, which it would otherwise save to
            # ~/.ray/auth_token: a token of this run's alone, in the environment its workers
            # inherit, keeps the guard and writes nothing outside the results and cache.
            # (RAY_AUTH_MODE is left to ray.init, which also refreshes its own copy of it.)
            os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        try:
            # Workers' output reaches the driver, whose stdout is the run's log file while it
            # runs (sweep/driver/console.py): nothing of it on the terminal, all of it kept.
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
            _started_ray = True
        except ConnectionError as exc:
            raise SpecError(
                f"--address {options.resources.address}: no Ray cluster to join there ({exc}). Start one "
                f"(ray up cluster.yaml, or ray start --head), or leave --address out to run on this machine"
            ) from exc
    resources = ray.cluster_resources()
    return resources.get("GPU", 0) > 0, resources.get("CPU", 1)


def _row_facts(pending: list[StudySpec], datasets: dict, options: RunOptions) -> dict:
    """What every row of this sweep records beside its trial: metric, data fingerprint,
    weights digest of each, package versions."""
    return {
        "metrics": {d: get_dataset_info(d).metric for d in datasets},
        "fingerprints": {d: loaded.fingerprint for d, loaded in datasets.items()},
        "weights_digests": {b: weights_digest(b, options.inputs.weights.get(b)) for s in pending for b in s.backbones},
        "versions": _versions(),
    }


def _tune(plan: _Plan, contexts: list[TrialContext], options: RunOptions, store: ResultsStore, facts: dict,
          grid: str, cpus: float) -> int:
    """One Tuner for every pending study (sweep/driver/routing.py); the rows it wrote."""
    from ray import tune

    from sweep.driver.progress import SweepProgress
    from sweep.driver.recorder import StoreCallback
    from sweep.driver.routing import METRIC, MODE, StudyScheduler, StudySearcher
    from sweep.driver.tune_overheads import tune_overheads_avoided
    from trainables.training.entry import run_trial

    done, pending = plan.done, plan.pending
    # Trials that fit the CPUs at once: without --max-concurrent the resources are the limit,
    # and Tune holds as many more trials waiting beside them (pending_trials).
    capacity = max(1, int(cpus / min(c.cpus for c in contexts)))
    resumable = _resumable(store, contexts) if options.store.resume else {}
    if resumable and options.verbose:
        echo(f"resuming {sum(map(len, resumable.values()))} trial(s) from their checkpoints")
    searcher = StudySearcher(contexts, done={s.study_id: done.get(s.study_id, []) for s in pending},
                             resumable=resumable, failed={s.study_id: plan.failed.get(s.study_id, []) for s in pending})
    left = {s.study_id: s.n_trials - len(done.get(s.study_id, [])) for s in pending}
    progress = SweepProgress(left, studies_total=len(plan.studies),
                             complete_before=len(plan.studies) - len(pending)) if options.verbose else None
    recorder = StoreCallback(store, facts, total=sum(left.values()), echo=echo if options.verbose > 1 else None,
                             requeue=searcher.requeue, max_failures=options.policy.max_failures,
                             on_written=progress.trial_written if progress else None)
    # Tune's own per-trial loggers (CSV, JSON and TensorBoard files under ray/) repeat what the
    # store's rows and history hold, write files every epoch of every trial and log each
    # trial's whole config: off, unless the environment asks for them (=0).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    tracker = None
    if options.store.mlflow:
        from sweep.driver.tracking import mlflow_callback

        tracker = mlflow_callback(options.store.mlflow, experiment=f"medsweep-{grid}")
    trainable = tune.with_resources(run_trial, lambda config: tune.PlacementGroupFactory(
        [{k: v for k, v in (("CPU", config[CONTEXT].cpus), ("GPU", config[CONTEXT].gpus)) if v > 0}]))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=searcher, scheduler=StudyScheduler(),
                                    num_samples=-1, max_concurrent_trials=options.resources.max_concurrent,
                                    reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"{grid}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=store.ray_dir,
            callbacks=[c for c in (recorder, progress, tracker) if c is not None],
            # Tune's own tables print every trial's whole config; the recorder's one line per
            # finished trial is the progress view instead.
            verbose=0,
            # A trial whose process dies (a killed worker, a lost spot node, an out-of-memory
            # kill) is run again, up to this many times (Tune retries a RUNNING trial, the
            # recorder requeues one that failed PENDING: sweep/driver/faults.py); errors of the
            # trial's own code are recorded at once (trainables/training/trainable.py), not retried.
            failure_config=tune.FailureConfig(max_failures=options.policy.max_failures),
        ),
    )
    # Everything alive now (torch's, timm's and scikit-learn's modules, the sweep's plan) lives
    # as long as the sweep: out of the garbage collector's reach, a full collection of the
    # driver's loop takes milliseconds instead of 0.46 s (benchmarks/overhead.py's profile).
    # Unfrozen after: what of it becomes garbage later (a second sweep in this process) is freed.
    gc.freeze()
    try:
        with (pending_trials(None if options.resources.max_concurrent else capacity), snapshots_at_end(),
              tune_overheads_avoided()):
            tuner.fit()
    finally:
        gc.unfreeze()
        store.flush_index()  # the rows of this sweep, indexed: the first read after it opens none
    end_status()
    return len(recorder.written)


PENDING_TRIALS = "TUNE_MAX_PENDING_TRIALS_PG"
SNAPSHOT_PERIOD = "TUNE_GLOBAL_CHECKPOINT_S"


@contextlib.contextmanager
def _environment_default(name: str, value: Optional[str]):
    """``name`` set to ``value`` while the Tuner runs (Tune reads it when the Tuner starts),
    unless the environment already sets it (the user's value is kept) or ``value`` is None."""
    if value is None or name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def pending_trials(limit: Optional[int]):
    """Tune holds up to ``limit`` trials waiting for resources beside the running ones (Tune's
    own default for a searcher of its own, like medsweep's: 1; with --max-concurrent N, N).

    A trial that ends hands its actor (its process, torch imported) to a waiting trial of the
    same resources; with nothing waiting the actor is stopped, and the next trial starts a new
    process that imports torch, timm and scikit-learn again (about 5 CPU-seconds). On the demo
    (2 cores) waiting trials took the actor processes from 41 to 15 (benchmarks/overhead.py).
    Waiting trials hold no resources: their actors start only when the CPUs free up, and one
    handed an actor before that never starts its own. A limit the environment sets is kept."""
    return _environment_default(PENDING_TRIALS, None if limit is None else str(limit))


def snapshots_at_end():
    """Tune's experiment-state snapshot (every trial's config and run metadata as JSON, the
    searcher's 85-to-thousands of Optuna studies pickled) taken once, when the Tuner ends,
    instead of every 10 s or more: it serves only ``Tuner.restore``, and medsweep resumes from
    its store and its trials' checkpoints instead (``--resume``). Each snapshot rewrote the
    whole sweep on the driver's one thread: 7% of the demo's driver time, more as the sweep
    grows. A period the environment sets is kept."""
    return _environment_default(SNAPSHOT_PERIOD, "inf")


def _finish(store: ResultsStore, plan: _Plan, datasets: dict) -> int:
    """Leftover checkpoints cleared; Kaggle submissions where test labels are hidden (the
    number of files written)."""
    # Checkpoints of trials that ended are deleted as their rows are written; a trial stopped
    # while it saved one can leave one behind, deleted here.
    store.checkpoints_in_flight()
    hidden = {d: loaded.test.ids for d, loaded in datasets.items() if (loaded.test.labels < 0).any()}
    if not hidden:
        return 0
    ours = {s.study_id for s in plan.studies}
    selected = select_studies(r for r in store.read_trials().to_pylist() if r["study_id"] in ours)
    return len(write_submissions(store.root, selected, hidden))
