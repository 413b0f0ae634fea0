"""The paper's own numbers (Tables 2-4, B1-B8, C1-C4), shipped as data
(``sweep/data/paper_results.csv``, every number the paper's tables report), and how a cell of a
medsweep store maps onto them.

Columns: table, dataset, mode, method, subset, n_train, metric, mean, std (std empty in the
per-size detail tables). The paper's "mode" of DVME rows is "linear" (frozen backbones) and
its methods are backbone names, ``dvme``, ``dvme_no_attention`` and ``best_single``.

Example::

    >>> numbers = paper_numbers()
    >>> numbers[("pneumonia", "linear", "dino", 5216)]["mean"]
    0.9868
"""

from __future__ import annotations

import csv
import dataclasses
import io
from functools import lru_cache
from importlib.resources import files
from typing import Optional

PAPER_DVME_BACKBONES = ("simclr", "swav", "dino")


@lru_cache(maxsize=1)
def paper_numbers() -> dict:
    """(dataset, mode, method, n_train) -> {table, subset, metric, mean, std}; the main tables
    (2-4) win over the detail tables where both give a cell."""
    text = files("sweep").joinpath("data/paper_results.csv").read_text()
    out: dict = {}
    for row in csv.DictReader(io.StringIO(text)):
        key = (row["dataset"], row["mode"], row["method"], int(row["n_train"]))
        entry = {
            "table": row["table"],
            "subset": row["subset"],
            "metric": row["metric"],
            "mean": float(row["mean"]),
            "std": float(row["std"]) if row["std"] else None,
        }
        if key not in out or not row["table"][0].isalpha():  # "2", "3", "4" before "B1".."C4"
            out[key] = entry
    return out


# What a study's fields hold that does not change what it computes: the grid's name, the
# resources a trial is given; and the fold, which a cell is without.
NOT_SETTINGS = ("grid", "fold", "cpus", "gpus")
_MISSING = object()


def _paper_key(dataset, mode, backbones, subset, attention) -> tuple:
    return dataset, mode, tuple(backbones), str(subset), bool(attention)


@lru_cache(maxsize=1)
def _paper_studies() -> dict:
    """(dataset, mode, backbones, subset, attention) -> every setting of the paper grid's study."""
    from sweep.grids import load_grid

    out = {}
    for study in load_grid("paper"):
        fields = {k: v for k, v in dataclasses.asdict(study).items() if k not in NOT_SETTINGS}
        out[_paper_key(study.dataset, study.mode, study.backbones, study.subset, study.attention)] = fields
    return out


def is_paper_study(cell: dict) -> bool:
    """Whether a cell is the paper's study: the paper grid's study of its dataset, mode,
    backbones, size and attention, setting for setting (every field, so that no variant, today's
    or a future one, takes a paper figure). F is the whole pool, counted in the user's data."""
    try:
        paper = _paper_studies().get(_paper_key(cell["dataset"], cell["mode"], cell["backbones"], cell["subset"],
                                                cell["attention"]))
    except KeyError:  # a cell without its study's fields cannot be told to be the paper's
        return False
    if paper is None:
        return False
    for name, value in paper.items():
        if name == "n_train" and value is None:
            continue  # the paper's F: the pool as the data counts it
        mine = cell.get(name, _MISSING)
        if (tuple(mine) if isinstance(mine, list) else mine) != value:
            return False
    return True


def paper_method(cell: dict) -> Optional[tuple[str, str]]:
    """(paper mode, paper method) of one of our cells, or None where it is not the paper's study
    (a backbone or size it did not use, a variant of any of its settings: unaugmented heads, the
    3-token DVME, another search)."""
    if not is_paper_study(cell):
        return None
    if cell["mode"] == "dvme":
        return "linear", "dvme" if cell["attention"] else "dvme_no_attention"
    return cell["mode"], cell["backbone"]


@lru_cache(maxsize=1)
def paper_full_sizes() -> dict[str, int]:
    """dataset -> the size the paper gives its F (the whole pool; PatchCam's 50,000)."""
    return {key[0]: key[3] for key, entry in paper_numbers().items() if entry["subset"] == "F"}


def paper_size(cell: dict) -> Optional[int]:
    """The paper's n_train of the cell's size: an F cell (the whole pool, counted in the
    user's data: the usable rows of the published NIH file, where the paper says 2,414) is the paper's F."""
    return paper_full_sizes().get(cell["dataset"]) if cell.get("subset") == "F" else int(cell["n_train"])


def paper_figure(cell: dict) -> Optional[dict]:
    """The paper's figure for the cell, or None where the paper has no such method or size."""
    method = paper_method(cell)
    if method is None:
        return None
    return paper_numbers().get((cell["dataset"], method[0], method[1], paper_size(cell)))
