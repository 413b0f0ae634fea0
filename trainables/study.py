"""The study: one (dataset, backbone(s), mode, subset size, fold) with its search settings.

A grid (``search_spaces/<name>.py``) is a list of ``StudySpec`` (grids import it as
``sweep.spec.StudySpec``). Every field is a plain value: the study travels inside each
trial's ``TrialContext`` (trainables/context.py) and lands, field by field, in every results
row. It lives here, beside what runs a trial, so that the trial reads it typed.

Example::

    >>> s = StudySpec(grid="demo", dataset="digits", backbones=("test_resnet",),
    ...               mode="linear", subset="S", n_train=50, fold=0)
    >>> s.backbone, s.cell_id == s.replace(fold=1).cell_id
    ('test_resnet', True)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Optional

from trainables.errors import UserError
from trainables.models.modes import ModeError, get_mode, mode_names

MODES = tuple(mode_names())
FROZEN_MODES = tuple(m for m in MODES if get_mode(m).frozen)
ATTENTION_FORMS = ("token", "listing")
# DVME without attention (the paper's ablation): "linear", the text's model (section 6.2: "the
# meta-embedding is directly connected to the linear classifier"), or "mlp", the head of the
# attention model kept (layer norm, projection to proj_dim, ReLU, dropout) without the attention.
NO_ATTENTION_HEADS = ("linear", "mlp")
EMBEDDING_DTYPES = ("float32", "float16")


class SpecError(UserError):
    """A study or grid that cannot run; the message names the field and what was expected."""


def cpus_problem(cpus: float) -> Optional[str]:
    """Why ``cpus`` cannot be a trial's CPUs (None: it can): the one rule of grids and options."""
    if not (math.isfinite(cpus) and cpus > 0):
        return "CPUs of a trial must be a number above 0 (0.5: two trials per CPU)"
    return None


def gpus_problem(gpus: float) -> Optional[str]:
    """Why ``gpus`` cannot be a trial's GPUs: Ray takes a share of one GPU (0 to 1) or whole GPUs."""
    if not (math.isfinite(gpus) and gpus >= 0 and (gpus <= 1 or float(gpus).is_integer())):
        return "a trial's GPUs must be a fraction from 0 to 1 (0: CPU only) or a whole number"
    return None


# Each field's annotation -> the Python types a grid may give it (bool is no int here, though
# Python makes it one: fold=True is a mistake, not fold 1).
_FIELD_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                "Optional[int]": (int, type(None)), "tuple[str, ...]": (tuple,)}
_TYPE_WORDS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "True or False",
               "Optional[int]": "a whole number or None (the whole pool)", "tuple[str, ...]": "a tuple of names"}


def _field_problem(name: str, annotation: str, value) -> Optional[str]:
    allowed = _FIELD_TYPES[annotation]
    if isinstance(value, bool) and bool not in allowed:
        return f"{name} must be {_TYPE_WORDS[annotation]}, got {value!r}"
    if not isinstance(value, allowed):
        return f"{name} must be {_TYPE_WORDS[annotation]}, got {value!r} ({type(value).__name__})"
    if annotation == "float" and not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
    if annotation == "tuple[str, ...]" and not all(isinstance(v, str) and v for v in value):
        return f"{name} must be a tuple of names, got {value!r}"
    if annotation == "str" and not value:
        return f"{name} must not be empty"
    return None


@dataclass(frozen=True)
class StudySpec:
    grid: str
    dataset: str
    backbones: tuple[str, ...]
    mode: str
    subset: str  # the label the tables use: "S", "M", "F" or a detail size
    # Images drawn from the training pool (train + validation folds); None: every usable image
    # of the pool (the paper's F), resolved from the data when a sweep starts (resolve_pools).
    n_train: Optional[int]
    fold: int
    n_folds: int = 5
    seed: int = 0
    # Learning-rate search (log-uniform), the paper's 1e-4..1e-3 unless a mode says otherwise.
    lr_min: float = 1e-4
    lr_max: float = 1e-3
    n_trials: int = 4
    max_epochs: int = 30
    # ASHA: rungs at grace_period * reduction_factor**k epochs, within this study only.
    grace_period: int = 2
    reduction_factor: int = 2
    batch_size: int = 64
    # Resources of one trial; gpus is a fraction of one GPU, ignored when Ray has none.
    cpus: float = 1.0
    gpus: float = 0.0
    # Frozen modes only: augmented views of each training image in the embedding cache (1 =
    # the evaluation transform only; K > 1 = K augmented views, one per epoch in turn) and the
    # cache's stored dtype.
    views: int = 1
    embedding_dtype: str = "float32"
    # DVME only.
    proj_dim: int = 512
    attention: bool = True
    attention_form: str = "token"
    # Bias of the attention's query, key and value projection: timm's Attention and Block
    # default, False, which Listing 1's footnote points to; True is a variant (paper_plus).
    qkv_bias: bool = False
    no_attention_head: str = "linear"  # NO_ATTENTION_HEADS; attention=False only
    # Few-shot only (an episodic mode): support images per class of each episode, drawn from
    # the fold's training rows, and episodes per fold (seeded; the row holds their mean and std).
    shots: int = 0
    episodes: int = 0

    def __post_init__(self) -> None:
        # Types first: a grid is code, and a "5" or a list where a number or tuple belongs
        # would otherwise fail in a comparison below, or in a trial, as a TypeError.
        for f in dataclasses.fields(self):
            problem = _field_problem(f.name, f.type, getattr(self, f.name))
            if problem:
                raise SpecError(problem)
        try:
            mode = get_mode(self.mode)
        except ModeError as exc:
            raise SpecError(str(exc)) from None
        if len(self.backbones) < mode.min_backbones:
            raise SpecError(f"mode {self.mode!r} takes at least {mode.min_backbones} backbones, got {self.backbones!r}")
        if mode.max_backbones is not None and len(self.backbones) > mode.max_backbones:
            raise SpecError(f"mode {self.mode!r} takes exactly {mode.max_backbones} backbone, got {self.backbones!r}")
        if self.no_attention_head not in NO_ATTENTION_HEADS:
            raise SpecError(f"unknown no_attention_head {self.no_attention_head!r} (did you mean one of "
                            f"{', '.join(NO_ATTENTION_HEADS)}?)")
        if self.attention_form not in ATTENTION_FORMS:
            raise SpecError(
                f"unknown attention_form {self.attention_form!r}; valid: {', '.join(ATTENTION_FORMS)}"
            )
        if not 0 <= self.fold < self.n_folds:
            raise SpecError(f"fold {self.fold} outside 0..{self.n_folds - 1}")
        if self.n_folds < 2:
            raise SpecError(f"n_folds must be at least 2, got {self.n_folds}")
        if self.n_train is not None and self.n_train < self.n_folds:
            raise SpecError(f"n_train {self.n_train} is smaller than n_folds {self.n_folds}")
        if not 0 < self.lr_min <= self.lr_max:
            raise SpecError(f"learning-rate range {self.lr_min}..{self.lr_max} is not 0 < min <= max")
        if self.n_trials < 1 or self.max_epochs < 1 or self.batch_size < 1:
            raise SpecError("n_trials, max_epochs and batch_size must be positive")
        if not 1 <= self.grace_period <= self.max_epochs:
            raise SpecError(f"grace_period {self.grace_period} outside 1..max_epochs {self.max_epochs}")
        if self.reduction_factor < 2:
            raise SpecError(f"reduction_factor must be >= 2, got {self.reduction_factor}")
        if self.views < 1:
            raise SpecError(f"views must be at least 1, got {self.views}")
        if not mode.frozen and (self.views != 1 or self.embedding_dtype != "float32"):
            raise SpecError(
                f"views and embedding_dtype apply to the frozen modes ({', '.join(FROZEN_MODES)}); "
                f"mode {self.mode!r} augments its images on the fly"
            )
        if mode.frozen and not mode.uses_views and self.views != 1:
            raise SpecError(f"views {self.views}: mode {self.mode!r} fits on the evaluation view (view 0) only; "
                            f"views must be 1")
        if mode.episodic and (self.shots < 1 or self.episodes < 1):
            raise SpecError(f"mode {self.mode!r} needs shots >= 1 (support images per class) and episodes >= 1, "
                            f"got shots={self.shots}, episodes={self.episodes}")
        if not mode.episodic and (self.shots or self.episodes):
            raise SpecError(f"shots and episodes apply to the episodic modes "
                            f"({', '.join(m for m in MODES if get_mode(m).episodic)}); mode {self.mode!r} takes 0")
        if mode.search.fixed and self.n_trials != 1:
            raise SpecError(f"mode {self.mode!r} searches nothing: n_trials must be 1, got {self.n_trials}")
        if self.embedding_dtype not in EMBEDDING_DTYPES:
            raise SpecError(
                f"unknown embedding_dtype {self.embedding_dtype!r}; valid: {', '.join(EMBEDDING_DTYPES)}"
            )
        for field_name, problem in (("cpus", cpus_problem(self.cpus)), ("gpus", gpus_problem(self.gpus))):
            if problem:
                raise SpecError(f"{field_name}={getattr(self, field_name)}: {problem}")

    @property
    def backbone(self) -> str:
        """The backbone column of the tables: DVME's fused set reads 'a+b+c'."""
        return "+".join(self.backbones)

    def replace(self, **changes) -> "StudySpec":
        return dataclasses.replace(self, **changes)

    def _digest(self, fields: dict) -> str:
        blob = json.dumps(fields, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    # Both ids are cached on the instance (the spec is frozen, its fields never change): each
    # digests every field through dataclasses.asdict, and the driver asks for them at every
    # trial event (0.7 ms a call, 14 calls a trial in the demo's driver profile).
    @functools.cached_property
    def cell_id(self) -> str:
        """Identifies the study without its fold: the paper's numbers are cells."""
        fields = dataclasses.asdict(self)
        fields.pop("fold")
        return self._digest(fields)

    @functools.cached_property
    def study_id(self) -> str:
        """Readable and unique: dataset, mode, backbone, size, fold, then a digest of all fields."""
        # A hub backbone's name (hf-hub:ORG/REPO) holds ':' and '/': the id names files and folders.
        backbone = re.sub(r"[^A-Za-z0-9._+-]", "_", self.backbone)
        return (
            f"{self.dataset}-{self.mode}-{backbone}-n{'pool' if self.n_train is None else self.n_train}-f{self.fold}-"
            f"{self._digest(dataclasses.asdict(self))}"
        )


def resolve_pools(studies: list[StudySpec], pool_sizes: dict[str, int]) -> list[StudySpec]:
    """The studies with ``n_train=None`` (the whole pool) given the usable pool size of their
    dataset, as the data holds it (``pool_sizes``: dataset -> images); the others (and those of
    a dataset not in ``pool_sizes``) unchanged.
    The resolved size is the study's, its id's and every row's ``n_train``.

    >>> s = StudySpec(grid="g", dataset="nih", backbones=("random",), mode="linear", subset="F", n_train=None, fold=0)
    >>> resolve_pools([s], {"nih": 2412})[0].n_train
    2412
    """
    return [s.replace(n_train=pool_sizes[s.dataset]) if s.n_train is None and s.dataset in pool_sizes else s
            for s in studies]
