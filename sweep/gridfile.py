"""``sweep grid new``: a commented starting grid file for a dataset and a list of backbones.

The file is a grid like the packaged ones (``search_spaces/paper.py``): literal settings, one
``itertools.product``, a docstring with the command and the study arithmetic. The user edits it
and runs it with ``sweep run --grid PATH.py``.

Example::

    >>> text = grid_source("derm", "folder", ["supervised", "dino"])
    >>> "GRID = 'derm'" in text
    True
"""

from __future__ import annotations

import os

from sweep.spec import SpecError

_TEMPLATE = '''"""{grid}: which backbone, used how, is best on {dataset}? (written by `sweep grid new`)

Check it against the data and weights, then run it::

    sweep plan --grid {path}{data_arg} --studies
    sweep run  --grid {path}{data_arg}

Studies: {n_sizes} training-set sizes ({size_list}) x {folds} folds x
  linear   {n_backbones} backbone(s) x {linear_trials} trials
  finetune {n_backbones} backbone(s) x {finetune_trials} trials
  dvme     {n_dvme} fusion(s) of every backbone x {dvme_trials} trials
  = {studies} studies, {trials} trials.

Every field of a study is explained in trainables/study.py (StudySpec); `sweep plan --grid
{path} --studies` lists every study with all its fields. Edit the settings below freely: the
study ids (and the cache keys) follow them, so results of other settings never mix.
"""

from itertools import product

from sweep.spec import StudySpec

GRID = {grid!r}          # every row carries it; must be this file's name
DATASET = {dataset!r}    # `sweep grids` lists the datasets; `folder` is an ImageFolder tree of your own
# Registered names (`sweep grids`), any timm architecture (random init or --weights NAME=FILE),
# hf-hub:ORG/REPO (a timm model on the Hugging Face Hub) or a timm pretrained tag ARCH.TAG.
BACKBONES = {backbones!r}

# Training-set sizes: label -> images drawn (class-balanced) from the pool; None = the whole
# pool, counted in the data when the sweep starts (the paper's F).
SIZES = {sizes!r}
FOLDS = {folds}          # each study trains on one fold's split and is repeated per fold

# The paper's settings (medsweep's docs/protocol.md): Adam, learning rate searched log-uniform in
# lr_min..lr_max by Optuna over n_trials trials, ReduceLROnPlateau (patience 5); ASHA stops a
# trial at grace_period * reduction_factor**k epochs when it trails its study's others.
LINEAR = dict(lr_min=1e-4, lr_max=1e-3, n_trials={linear_trials}, max_epochs=100, batch_size=256,
              grace_period=5, reduction_factor=3,
              cpus=1.0, gpus=0.1,   # a head on cached embeddings: ten trials share one GPU
              views={views})              # augmented views of each image cached ({views_why})
FINETUNE = dict(lr_min=1e-4, lr_max=1e-3, n_trials={finetune_trials}, max_epochs=30, batch_size=64,
                grace_period=5, reduction_factor=3, cpus=4.0, gpus=0.5)
# DVME: frozen backbones fused by attention (the paper's Listing 1 form); needs 2+ backbones.
DVME = dict(LINEAR, n_trials={dvme_trials}, gpus=0.2, proj_dim=512, attention=True, attention_form="listing")

MODES = {{
    # mode: (backbone sets, settings)
    "linear": ([(b,) for b in BACKBONES], LINEAR),
    "finetune": ([(b,) for b in BACKBONES], FINETUNE),
    "dvme": ([tuple(BACKBONES)] if len(BACKBONES) > 1 else [], DVME),
}}

STUDIES = [
    StudySpec(grid=GRID, dataset=DATASET, backbones=backbones, mode=mode, subset=label,
              n_train=SIZES[label], fold=fold, n_folds=FOLDS, **settings)
    for mode, (backbone_sets, settings) in MODES.items()
    for backbones, label, fold in product(backbone_sets, SIZES, range(FOLDS))
]
'''


def default_sizes(dataset: str) -> dict:
    """S and M as the paper draws them for a small data set, and the whole pool (F)."""
    from trainables.data.datasets import get_dataset_info

    get_dataset_info(dataset)  # unknown: an error naming the valid ones
    return {"S": 50, "M": 500, "F": None}


def grid_source(grid: str, dataset: str, backbones: list[str], folds: int = 5,
                sizes: dict | None = None, path: str | None = None) -> str:
    """The text of a grid file named ``grid`` for ``dataset`` and ``backbones``."""
    from trainables.models.backbones import get_backbone_info

    if not grid.isidentifier():
        raise SpecError(f"grid name {grid!r}: must be a Python identifier (letters, digits, _); it is the file's stem")
    if not backbones:
        raise SpecError("--backbones: give at least one backbone name")
    for name in backbones:
        get_backbone_info(name)  # unknown: an error listing the valid ones
    from trainables.data.datasets import get_dataset_info

    sizes = sizes if sizes is not None else default_sizes(dataset)
    info = get_dataset_info(dataset)
    augments = info.augment != "none"
    data_arg = f" --data {dataset}=DATA_ROOT" if info.needs_root else ""
    views, views_why = (4, "1 = no augmentation") if augments else (1, f"{dataset} has no training augmentation")
    trials = {"linear": 8, "finetune": 4, "dvme": 8}
    n_dvme = 1 if len(backbones) > 1 else 0
    per_size = len(backbones) * (1 + 1) + n_dvme
    studies = len(sizes) * folds * per_size
    n_trials = len(sizes) * folds * (len(backbones) * (trials["linear"] + trials["finetune"]) + n_dvme * trials["dvme"])
    return _TEMPLATE.format(
        grid=grid, dataset=dataset, path=path or f"{grid}.py", backbones=tuple(backbones), sizes=sizes, folds=folds,
        n_sizes=len(sizes), size_list=", ".join(f"{k} = {'the whole pool' if v is None else v}" for k, v in sizes.items()),
        n_backbones=len(backbones), n_dvme=n_dvme, linear_trials=trials["linear"], finetune_trials=trials["finetune"],
        dvme_trials=trials["dvme"], data_arg=data_arg, views=views, views_why=views_why, studies=f"{studies:,}", trials=f"{n_trials:,}",
    )


def write_grid_file(path: str, dataset: str, backbones: list[str], folds: int = 5, force: bool = False) -> str:
    """Write the starting grid to ``path`` (never over an existing file unless ``force``)."""
    if not path.endswith(".py"):
        raise SpecError(f"{path}: a grid file is a Python module; give a name ending in .py")
    if os.path.exists(path) and not force:
        raise SpecError(f"{path}: exists; give another name or --force to replace it")
    grid = os.path.splitext(os.path.basename(path))[0]
    text = grid_source(grid, dataset, backbones, folds, path=path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return text
