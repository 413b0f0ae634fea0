"""``sweep plan`` with ``--data`` / ``--weights``: every study checked against what is really
there, before a GPU is rented, writing nothing.

Per dataset given: its layout read (every row, no image decoded), the whole-pool sizes (the
paper's F) resolved from it, every study's size against the real pool and every split computed
(folds the smallest class can fill). Per weight file given or found in ``$MEDSWEEP_WEIGHTS``:
converted and loaded whole into its architecture (``sweep weights check``). Every problem is
collected, not only the first.

Example::

    >>> studies, report = preflight(load_grid("paper"), {"nih": "/data/nih"}, {})   # doctest: +SKIP
    >>> report["datasets"]["nih"]["pool"], report["problems"]                      # doctest: +SKIP
    (2412, [])
"""

from __future__ import annotations

from typing import Optional

from sweep.driver.manifests import write_manifests
from sweep.spec import StudySpec, resolve_pools
from trainables.errors import UserError
from trainables.models.backbones import get_backbone_info, resolve_weights
from trainables.models.hub import cache_only
from trainables.data.datasets import get_dataset_info, load_dataset, resolve_root


def resolve_inputs(studies: list[StudySpec], data_roots: dict, weights: dict,
                   unresolved: Optional[dict] = None) -> tuple[dict, dict]:
    """(dataset -> root, backbone -> weight file) the studies will read: ``--data`` /
    ``--weights`` first, else ``$MEDSWEEP_DATA`` / ``$MEDSWEEP_WEIGHTS`` or the Hugging Face
    cache; absolute paths. With ``unresolved`` (a plan), the hub is not asked: what the local
    cache lacks goes there, backbone -> why, instead of raising."""
    roots = {d: resolve_root(d, data_roots) for d in sorted({s.dataset for s in studies})}
    found = {}
    for b in sorted({b for s in studies for b in s.backbones}):
        if unresolved is None:
            found[b] = resolve_weights(b, weights)
            continue
        try:
            with cache_only():
                found[b] = resolve_weights(b, weights)
        except UserError as exc:
            unresolved[b] = str(exc)
    return {d: r for d, r in roots.items() if r}, {b: p for b, p in found.items() if p}


def published_pools(studies: list[StudySpec]) -> dict[str, int]:
    """dataset -> its training pool as published (the registry's count), for a plan made
    without the data; datasets whose pool depends on the user's files are left out."""
    out = {}
    for name in {s.dataset for s in studies if s.n_train is None}:
        counts = get_dataset_info(name).published_counts
        if counts:
            out[name] = counts[0]
    return out


def _check_dataset(name: str, root: Optional[str], studies: list[StudySpec], holdout: Optional[float],
                   problems: list) -> Optional[dict]:
    from sweep.plan.planning import check_studies

    info = get_dataset_info(name)
    if info.needs_root and not root:
        return None  # not given: planned from the published counts only
    try:
        data = load_dataset(name, root, holdout=holdout)
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
        return {"root": root, "ok": False}
    # The pool as counted: the studies' F, whatever the checks below find wrong with the sizes.
    counted = {"root": root, "ok": False, "pool": len(data.pool)}
    try:
        mine = resolve_pools([s for s in studies if s.dataset == name], {name: len(data.pool)})
        check_studies(mine)
        write_manifests("", mine, {name: data}, write=False)
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
        return counted
    counts = {cls: int((data.pool.labels == i).sum()) for i, cls in enumerate(data.classes)}
    return {"root": root, "ok": True, "pool": len(data.pool), "pool_classes": counts, "test": len(data.test),
            "test_labels": bool(len(data.test)) and bool((data.test.labels >= 0).all()),
            "excluded": data.excluded, "not_read": data.not_read}


def _check_weight_file(name: str, path: str, problems: list) -> dict:
    from sweep.plan.weightcheck import check_weights

    report = check_weights(name, path)
    if not report["ok"]:
        problems.append(f"--weights {name}={path}: {report['error']}")
    return {"file": path, "ok": report["ok"], "sha256": report["sha256"], "dim": report["dim"],
            "format": report["format"]}


def preflight(studies: list[StudySpec], data_roots: dict, weights: dict,
              holdout: Optional[float] = None) -> tuple[list[StudySpec], dict]:
    """(the studies with whole-pool sizes resolved, the report: datasets, weights, problems,
    not_checked).

    A dataset with data resolves its F from the data; one without, from its published count.
    Once any data or weight file is given (a pre-flight), a dataset or backbone the sweep
    would lack is a problem too; a plain plan lists them as not checked."""
    unresolved: dict = {}
    roots, files = resolve_inputs(studies, data_roots, weights, unresolved)
    problems: list[str] = []
    lacking: list[str] = []
    datasets = {}
    for name in sorted({s.dataset for s in studies}):
        checked = _check_dataset(name, roots.get(name), studies, holdout, problems)
        if checked is not None:
            datasets[name] = checked
        else:
            lacking.append(f"{name}: no data given (--data {name}=ROOT or $MEDSWEEP_DATA/{name})")
    checked_weights = {}
    for name in sorted({b for s in studies for b in s.backbones}):
        if name in files:
            checked_weights[name] = _check_weight_file(name, files[name], problems)
        elif name in unresolved:
            lacking.append(f"{name}: {unresolved[name]}")
        elif get_backbone_info(name).needs_weights:
            lacking.append(f"{name}: no weight file (published: {', '.join(get_backbone_info(name).weight_files)}); "
                           f"give --weights {name}=PATH or put it in $MEDSWEEP_WEIGHTS")
    if data_roots or weights:
        problems += lacking
    pools = {**published_pools(studies), **{d: r["pool"] for d, r in datasets.items() if "pool" in r}}
    resolved = resolve_pools(studies, pools)
    return resolved, {"datasets": datasets, "weights": checked_weights, "problems": problems,
                      "not_checked": [] if data_roots or weights else lacking}
