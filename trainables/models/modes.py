"""Mode registry: how a backbone is used, as timm registers models. Adding a mode is one
entry here: whether its backbones are frozen (it then trains a head on the embedding cache),
how many backbones it takes, the head it builds, its place in the run order, and how its
results are grouped (frozen heads compete with each other, finetuning with itself).

Example::

    >>> get_mode("dvme").frozen, get_mode("finetune").frozen
    (True, False)
    >>> get_mode("linear").head([96], n_classes=10, study=None).linear.out_features
    10
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from trainables.errors import UserError
from trainables.registry import Registry

if TYPE_CHECKING:
    from torch import nn


class ModeError(UserError):
    """An unknown mode, or a study its mode cannot run; the message lists the valid ones."""


@dataclass(frozen=True)
class Search:
    """The one value a mode's Optuna study searches per trial: the learning rate of a gradient
    mode (the study's lr_min..lr_max), a probe's own hyper-parameter over the range it fixes.
    A trial's config and row carry it in ``lr``; ``name`` says what it is."""

    name: str = "lr"
    low: Optional[float] = None  # None: the study's lr_min / lr_max
    high: Optional[float] = None
    log: bool = True
    integer: bool = False
    label: str = "learning rate"  # how plots name it

    @property
    def fixed(self) -> bool:
        """Nothing to search (few-shot centroids): one value, one trial per study."""
        return self.low is not None and self.low == self.high

    def distribution(self, study):
        import optuna

        low = study.lr_min if self.low is None else self.low
        high = study.lr_max if self.high is None else self.high
        if self.integer:
            return optuna.distributions.IntDistribution(int(low), int(high), log=self.log)
        return optuna.distributions.FloatDistribution(low, high, log=self.log)


@dataclass(frozen=True)
class ModeInfo:
    name: str
    # Backbones frozen: the trial trains a head on cached embeddings, never runs a backbone,
    # and may train on cached augmented views (--views).
    frozen: bool
    min_backbones: int
    max_backbones: Optional[int]
    # Run order: costliest first (a long trial started last leaves the machine idle while it
    # ends). Lower runs first.
    run_order: int
    # Frozen modes: the head on the backbones' embeddings (dims, n_classes, the study's fields),
    # trained by the one engine epoch by epoch; or a probe's fitter (run -> its one record),
    # fitted once without epochs (trainables/training/probes.py).
    head: Optional[Callable[..., nn.Module]] = None
    fitter: Optional[Callable] = None
    search: Search = Search()
    # Whether training may read cached augmented views (study.views > 1).
    uses_views: bool = True
    # Episodic (few-shot): the trial fits study.episodes support sets of study.shots images per
    # class, drawn from the fold's training rows, instead of training on all of them.
    episodic: bool = False
    # A probe's cost for `sweep plan --estimate`: (study, input widths, device) -> seconds per
    # training row.
    row_seconds: Optional[Callable] = None
    description: str = ""

    @property
    def family(self) -> str:
        """Methods compared with each other (statistics, size curves): frozen or finetune."""
        return "frozen" if self.frozen else "finetune"


_REGISTRY: Registry[ModeInfo] = Registry("mode", ModeError)


def register_mode(info: ModeInfo) -> ModeInfo:
    if info.frozen != (info.head is not None or info.fitter is not None) or (info.head and info.fitter):
        raise ModeError(f"mode {info.name!r}: a frozen mode builds a head or has a fitter, a trained one neither")
    if (info.fitter is None) != (info.row_seconds is None):
        raise ModeError(f"mode {info.name!r}: a probe's fitter comes with its cost (row_seconds)")
    return _REGISTRY.add(info.name, info)


def get_mode(name: str) -> ModeInfo:
    return _REGISTRY.get(name)


def mode_names() -> list[str]:
    return _REGISTRY.names()


# The heads import torch and timm when a head is built, not with this registry: every trial's
# config holds a study, and unpickling it should not import them before the trial runs (an
# actor Tune starts and then swaps for a reused one would import them for nothing).
def _linear_head(dims, n_classes, study) -> "nn.Module":
    from trainables.models.heads import LinearProbe

    return LinearProbe(dims[0], n_classes)


def _dvme_head(dims, n_classes, study) -> "nn.Module":
    from trainables.models.heads import DVME

    return DVME(dims, n_classes, proj_dim=study.proj_dim, attention=study.attention,
                attention_form=study.attention_form, qkv_bias=study.qkv_bias,
                no_attention_head=study.no_attention_head)


register_mode(ModeInfo(
    name="linear", frozen=True, min_backbones=1, max_backbones=1, run_order=2,
    head=_linear_head,
    description="a linear layer on one frozen backbone's embedding (Table 2)",
))
register_mode(ModeInfo(
    name="dvme", frozen=True, min_backbones=2, max_backbones=None, run_order=1,
    head=_dvme_head,
    description="the paper's Dynamic Visual Meta-Embedding over 2 or more frozen backbones (Table 4)",
))
register_mode(ModeInfo(
    name="finetune", frozen=False, min_backbones=1, max_backbones=1, run_order=0,
    description="every layer of one backbone trained on images (Table 3)",
))


# Probes: fitted once on view 0, no epochs (trainables/training/probes.py imports torch and
# scikit-learn when a trial runs, not with this registry).
def _fit_logistic(run):
    from trainables.training.probes import fit_logistic

    return fit_logistic(run)


def _fit_knn(run):
    from trainables.training.probes import fit_knn

    return fit_knn(run)


def _fit_fewshot(run):
    from trainables.training.probes import fit_fewshot

    return fit_fewshot(run)


def _logistic_seconds(study, widths, device) -> float:
    from trainables.training.probes import logistic_seconds_per_row

    return logistic_seconds_per_row(widths, device)


def _knn_seconds(study, widths, device) -> float:
    from trainables.training.probes import knn_seconds_per_row

    return knn_seconds_per_row(widths, device)


def _fewshot_seconds(study, widths, device) -> float:
    from trainables.training.probes import fewshot_seconds_per_row

    return fewshot_seconds_per_row(study, widths, device)


register_mode(ModeInfo(
    name="logistic", frozen=True, min_backbones=1, max_backbones=None, run_order=3, fitter=_fit_logistic, row_seconds=_logistic_seconds,
    # Patho-Bench's and DINOv2's C grids span about 1e-6..1e5: searched log-uniformly instead.
    search=Search("C", 1e-6, 1e5, label="C (inverse regularisation)"), uses_views=False,
    description="multinomial logistic regression by L-BFGS on standardised frozen embeddings (DINOv2, Patho-Bench)",
))
register_mode(ModeInfo(
    name="knn", frozen=True, min_backbones=1, max_backbones=None, run_order=3, fitter=_fit_knn, row_seconds=_knn_seconds,
    search=Search("k", 1, 200, log=False, integer=True, label="k (neighbours)"), uses_views=False,
    description="DINO's weighted cosine kNN on L2-normalised frozen embeddings (DINO, THUNDER, MedMNIST+)",
))
register_mode(ModeInfo(
    name="fewshot", frozen=True, min_backbones=1, max_backbones=None, run_order=3, fitter=_fit_fewshot,
    row_seconds=_fewshot_seconds, episodic=True,
    # SimpleShot has no hyper-parameter: one trial per study, its "searched" value 0.
    search=Search("none", 0.0, 0.0, log=False, label="nothing (SimpleShot searches nothing)"), uses_views=False,
    description="SimpleShot few-shot: class centroids of `shots` images per class, centred and L2-normalised "
                "(UNI, THUNDER), over seeded episodes",
))
