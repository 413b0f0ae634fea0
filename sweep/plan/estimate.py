"""What a grid costs before it runs: device-hours per mode (``sweep plan --estimate``).

Costs per image come from a short calibration on this machine's device (a few batches of
each backbone architecture at each image size), from a costs file that a calibration saved
elsewhere (run ``sweep plan --estimate --save-costs costs.json`` on a GPU node, then
``--costs costs.json`` anywhere), and, where a results store is given, from what its trials
and cache really took, which replace the calibrated figures they cover.

The model, in seconds, with image counts as published (``DatasetInfo.published_counts``):
  extraction, once per (dataset, backbone, view): images x forward_s, where images are the
    rows the grid's studies draw (subsets are nested: each seed's largest subset; an augmented
    view only their training rows) and, for view 0, the test set
  finetune trial: epochs x (train rows x train_s + validation rows x forward_s)
                  + test scorings x test images x forward_s
  frozen trial:   epochs x (train + validation rows) x head_s + test scorings x test x head_s
Every trial is counted at max_epochs (ASHA stops some early, so this is an upper bound) and
the test set is scored at half the epochs (it is scored when validation improves). Trials
are counted one at a time: packing several on one GPU shortens the wall time where a trial
does not fill the GPU (frozen heads never do), not the work.

Example::

    >>> costs = calibrate(load_grid("demo"))                  # doctest: +SKIP
    >>> estimate(load_grid("demo"), costs)["total_hours"]     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict
from typing import Optional

import torch

from sweep.spec import SpecError, StudySpec
from trainables.models.backbones import build_architecture, embed, get_backbone_info
from trainables.data.datasets import get_dataset_info
from trainables.cache.embeddings import cached_views
from trainables.models.modes import get_mode

TEST_SCORING_SHARE = 0.5  # test set scored at this share of the epochs (those that improve validation)


def arch_key(backbone: str, image_size: int) -> str:
    """Backbones that share an architecture share its costs: random, supervised, SwAV and
    SimCLR are all resnet50. A foundation model is its own, at its card's input size."""
    info = get_backbone_info(backbone)
    if info.foundation:
        return f"{backbone}@{info.input_size}"
    return f"{info.timm_name}@{image_size}"


# A foundation model's cost: its FLOPs (trainables/models/foundation/sizes.py) at the seconds
# per FLOP this device gives a ViT measured here; a training step as 3 forwards (the backward
# pass costs about twice the forward).
REFERENCE_VIT = "vit_small_patch16_224"
TRAIN_FORWARDS = 3.0


def _seconds_per_flop(dev, batch: int, repeats: int, cache: dict) -> float:
    if "seconds_per_flop" not in cache:
        from torch.utils.flop_counter import FlopCounterMode

        info = get_backbone_info(REFERENCE_VIT)  # any timm name: built at the size it is given
        model = build_architecture(info, 224).eval().to(dev)
        x = torch.randn(batch, 3, 224, 224, device=dev)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x[:1])

        @torch.no_grad()
        def forward():
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                return model(x)

        cache["seconds_per_flop"] = _seconds_per_image(forward, batch, dev, repeats) / counter.get_total_flops()
    return cache["seconds_per_flop"]


def _counts(dataset: str) -> tuple[int, int]:
    counts = get_dataset_info(dataset).published_counts
    if counts is None:
        raise SpecError(f"dataset {dataset!r} has no published image counts: its cost cannot be estimated")
    return counts


def _needs(studies: list[StudySpec]) -> tuple[set, set, set]:
    """(backbones to run forward, to train, frozen heads) of a grid, each with its sizes."""
    forward, train, heads = set(), set(), set()
    for s in studies:
        size = get_dataset_info(s.dataset).image_size
        frozen = get_mode(s.mode).frozen
        for b in s.backbones:
            forward.add((b, size))
            if not frozen:
                train.add((b, size, s.batch_size))
        if frozen:
            heads.add(s)
    return forward, train, heads


def head_key(study: StudySpec, dims: dict) -> str:
    """A frozen head's shape: its mode, input widths and, for DVME, projection and attention."""
    size = get_dataset_info(study.dataset).image_size
    widths = ",".join(str(dims.get(arch_key(b, size), "?")) for b in study.backbones)
    mode = get_mode(study.mode)
    if mode.fitter is not None or mode.max_backbones == 1:  # a probe, or the linear head: its widths say all
        return f"{study.mode}:{widths}"
    attention = study.attention_form if study.attention else f"none-{study.no_attention_head}"
    return f"dvme:{widths}:p{study.proj_dim}:{attention}"


def _seconds_per_image(step, batch: int, device, repeats: int) -> float:
    step()  # warm-up: kernels chosen, memory allocated
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / (repeats * batch)


def calibrate(studies: list[StudySpec], device: Optional[str] = None, echo=None) -> dict:
    """Time each architecture the grid needs: forward (as extraction runs it), training step
    (as finetuning runs it) and the frozen heads, on ``device`` (default: CUDA if present)."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_gpu = dev.type == "cuda"
    forward_batch, repeats = (64, 5) if on_gpu else (4, 2)
    forward_needs, train_needs, head_needs = _needs(studies)
    costs: dict = {
        "device": torch.cuda.get_device_name(dev) if on_gpu else f"cpu ({os.cpu_count()} cores)",
        "forward_s": {}, "train_s": {}, "head_s": {}, "dims": {},
    }
    for backbone, size in sorted(forward_needs):
        key = arch_key(backbone, size)
        if key in costs["forward_s"]:
            continue
        if echo:
            echo(f"calibrating {key} ...")
        info = get_backbone_info(backbone)
        if info.foundation:
            from trainables.models.foundation.sizes import model_size

            params, flops = model_size(backbone)
            costs.setdefault("params", {})[key], costs.setdefault("flops", {})[key] = params, flops
            costs["dims"][key] = info.dim
            costs["forward_s"][key] = flops * _seconds_per_flop(dev, forward_batch, repeats, costs)
            continue
        model = build_architecture(info, size).eval().to(dev)
        x = torch.randn(forward_batch, 3, size, size, device=dev)

        @torch.no_grad()
        def forward():
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=on_gpu):
                return embed(model, info, x)

        costs["dims"][key] = forward().shape[1]
        costs["forward_s"][key] = _seconds_per_image(forward, forward_batch, dev, repeats)
    for backbone, size, batch in sorted(train_needs):
        key = arch_key(backbone, size)
        if key in costs["train_s"]:
            continue
        info = get_backbone_info(backbone)
        if info.foundation:
            costs["train_s"][key] = TRAIN_FORWARDS * costs["forward_s"][key]
            continue
        model = build_architecture(info, size).train().to(dev)
        batch = batch if on_gpu else min(batch, 4)
        x = torch.randn(batch, 3, size, size, device=dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            loss = embed(model, info, x).float().square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        costs["train_s"][key] = _seconds_per_image(step, batch, dev, repeats)
    for study in sorted(head_needs, key=lambda st: st.study_id):
        key = head_key(study, costs["dims"])
        if key not in costs["head_s"]:
            size = get_dataset_info(study.dataset).image_size
            widths = [costs["dims"][arch_key(b, size)] for b in study.backbones]
            costs["head_s"][key] = _head_seconds_per_row(study, widths, dev)
    return costs


def _head_seconds_per_row(study: StudySpec, widths: list[int], dev) -> float:
    """One training epoch of the study's head over 2,048 random rows, per row (a probe: its fit)."""
    mode = get_mode(study.mode)
    if mode.row_seconds is not None:
        return mode.row_seconds(study, widths, dev)
    head = mode.head(widths, 5, study).to(dev)
    rows = [torch.randn(2048, w, device=dev) for w in widths]
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)

    def epoch():
        for start in range(0, 2048, study.batch_size):
            loss = head([r[start : start + study.batch_size] for r in rows]).float().square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return _seconds_per_image(epoch, 2048, dev, 1)


def measured_costs(rows: list[dict], cache_entries: list[dict]) -> dict:
    """Seconds per training row and epoch of each (dataset, mode, backbone) the store's trials
    ran, and seconds per image of each (dataset, backbone) extraction its cache holds."""
    per_row = defaultdict(list)
    for r in rows:
        if r["status"] == "ok" and r["epochs"] and r["wall_s"]:
            per_row[(r["dataset"], r["mode"], r["backbone"])].append(r["wall_s"] / (r["epochs"] * r["n_train"]))
    extraction = defaultdict(list)
    for e in cache_entries:
        if e["rows"] and e["extract_s"] == e["extract_s"]:  # not nan
            extraction[(e["dataset"], e["backbone"])].append(e["extract_s"] / e["rows"])
    return {
        "trial_row_epoch_s": {"|".join(k): statistics.median(v) for k, v in per_row.items()},
        "extract_image_s": {"|".join(k): statistics.median(v) for k, v in extraction.items()},
    }


def _lookup(table: dict, key: str, what: str, source: str) -> float:
    if key not in table:
        raise SpecError(f"{source} has no {what} cost for {key}: calibrate again with this grid "
                        f"(sweep plan --estimate --save-costs FILE)")
    return table[key]


def estimate(studies: list[StudySpec], costs: dict, measured: Optional[dict] = None, source: str = "calibration") -> dict:
    """Device-hours of the extraction and of each mode's trials, and where each figure came from."""
    measured = measured or {"trial_row_epoch_s": {}, "extract_image_s": {}}
    parts: dict = defaultdict(lambda: {"count": 0, "seconds": 0.0, "sources": set()})
    extractions = defaultdict(list)  # (dataset, backbone, view) -> the studies that read it
    for s in studies:
        info = get_dataset_info(s.dataset)
        _, n_test = _counts(s.dataset)
        n_val = s.n_train // s.n_folds
        n_fit = s.n_train - n_val
        scorings = max(1.0, TEST_SCORING_SHARE * s.max_epochs)
        part = parts[s.mode]
        part["count"] += s.n_trials
        observed = measured["trial_row_epoch_s"].get("|".join((s.dataset, s.mode, s.backbone)))
        if observed is not None:
            per_trial, src = s.max_epochs * s.n_train * observed, "measured"
        elif not get_mode(s.mode).frozen:
            key = arch_key(s.backbones[0], info.image_size)
            fwd = _lookup(costs["forward_s"], key, "forward", source)
            train = _lookup(costs["train_s"], key, "training", source)
            per_trial = s.max_epochs * (n_fit * train + n_val * fwd) + scorings * n_test * fwd
            src = source
        else:
            head = _lookup(costs["head_s"], head_key(s, costs.get("dims", {})), "head", source)
            per_trial = s.max_epochs * s.n_train * head + scorings * n_test * head
            src = source
        part["seconds"] += s.n_trials * per_trial
        part["sources"].add(src)
        if get_mode(s.mode).frozen:
            for b in s.backbones:
                for v in cached_views(s.views):
                    extractions[(s.dataset, b, v)].append(s)
    keys = []  # each cache key the grid extracts, with the images it extracts
    for (dataset, backbone, view), users in sorted(extractions.items()):
        # The augmented views (--views K) apart: what training frozen heads on augmented
        # images adds to the one evaluation pass.
        extraction = parts["extraction" if view == 0 else "extraction, augmented views"]
        n_pool, n_test = _counts(dataset)
        images = drawn_rows(users, view, n_pool) + (n_test if view == 0 else 0)
        observed = measured["extract_image_s"].get(f"{dataset}|{backbone}")
        if observed is not None:
            per_image, src = observed, "measured"
        else:
            key = arch_key(backbone, get_dataset_info(dataset).image_size)
            per_image, src = _lookup(costs["forward_s"], key, "forward", source), source
        extraction["count"] += 1
        extraction["seconds"] += images * per_image
        extraction["sources"].add(src)
        keys.append({"dataset": dataset, "backbone": backbone, "view": view, "images": images})
    table = [
        {"part": name, "count": p["count"], "unit": "cache keys" if name.startswith("extraction") else "trials",
         "seconds": round(p["seconds"], 1), "device_hours": round(p["seconds"] / 3600, 3), "source": ", ".join(sorted(p["sources"]))}
        for name, p in sorted(parts.items(), key=lambda kv: (not kv[0].startswith("extraction"), kv[0]))
    ]
    # The foundation models' sizes, counted (trainables/models/foundation/sizes.py).
    models = [{"backbone": key.split("@")[0], "input": int(key.split("@")[1]),
               "params_m": round(costs["params"][key] / 1e6, 1), "gflops_per_image": round(costs["flops"][key] / 1e9, 1)}
              for key in sorted(costs.get("params", {}))]
    return {"device": costs.get("device", "?"), "parts": table, "extractions": keys, "models": models,
            "total_hours": round(sum(p["seconds"] for p in parts.values()) / 3600, 3)}


def drawn_rows(studies: list[StudySpec], view: int, n_pool: int) -> int:
    """Pool rows that ``studies`` (of one dataset) read from a cache key of ``view``: subsets
    of one seed are nested, so their union is the largest; view 0 holds its training and
    validation rows, an augmented view its training rows only (one fold of k leaves out its
    validation share; two or more folds together cover the subset)."""
    by_seed: dict = defaultdict(dict)  # seed -> n_train -> (n_folds, folds)
    for s in studies:
        n = n_pool if s.n_train is None else s.n_train
        folds = by_seed[s.seed].setdefault(n, (s.n_folds, set()))[1]
        folds.add(s.fold)
    total = 0
    for sizes in by_seed.values():
        n = max(sizes)
        n_folds, folds = sizes[n]
        total += n - n // n_folds if view > 0 and len(folds) == 1 else n
    return min(n_pool, total)


def save_costs(costs: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(costs, f, indent=1)


def load_costs(path: str) -> dict:
    try:
        with open(path) as f:
            costs = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"--costs {path}: not a readable costs file ({exc})") from exc
    missing = {"forward_s", "train_s", "head_s"} - set(costs)
    if missing:
        raise SpecError(f"--costs {path}: missing {sorted(missing)}; expected a file written by --save-costs")
    return costs
