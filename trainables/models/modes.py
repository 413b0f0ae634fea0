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
    # Frozen modes: the head on the backbones' embeddings (dims, n_classes, the study's fields).
    head: Optional[Callable[..., nn.Module]] = None
    description: str = ""

    @property
    def family(self) -> str:
        """Methods compared with each other (statistics, size curves): frozen or finetune."""
        return "frozen" if self.frozen else "finetune"


_REGISTRY: Registry[ModeInfo] = Registry("mode", ModeError)


def register_mode(info: ModeInfo) -> ModeInfo:
    if info.frozen != (info.head is not None):
        raise ModeError(f"mode {info.name!r}: a frozen mode builds a head, a trained one none")
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
