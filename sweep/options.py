"""What a sweep is told, in four groups (the CLI's ``sweep run`` options, parsed in
sweep/cli.py): its inputs, the resources it may use, its results store, and the policy of its
trials. Each field's meaning is the CLI option's help; the names match the options.

Example::

    >>> options = RunOptions(store=StoreOptions(results="/tmp/r"), policy=TrialPolicy(max_failures=0))
    >>> options.store.results, options.policy.checkpoint_every_s
    ('/tmp/r', 120.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Inputs:
    data_roots: dict = field(default_factory=dict)  # --data NAME=ROOT
    weights: dict = field(default_factory=dict)  # --weights NAME=PATH
    holdout: Optional[float] = None  # --holdout
    skip_unreadable: bool = False  # --skip-unreadable
    trust_remote_code: tuple = ()  # --trust-remote-code NAME: backbones whose repo's own code may run


@dataclass(frozen=True)
class Resources:
    gpus_per_trial: dict = field(default_factory=dict)  # --gpus-per-trial MODE[:BACKBONE]=F
    cpus_per_trial: dict = field(default_factory=dict)  # --cpus-per-trial MODE[:BACKBONE]=N
    max_concurrent: Optional[int] = None  # --max-concurrent
    extract_cpus: Optional[int] = None  # --extract-cpus
    decode: str = "auto"  # --decode: where JPEG files are decoded during extraction
    address: Optional[str] = None  # --address


@dataclass(frozen=True)
class StoreOptions:
    results: str = "sweep-results"  # --results
    cache: Optional[str] = None  # --cache
    resume: bool = False  # --resume
    allow_other_grid: bool = False  # --allow-other-grid
    mlflow: Optional[str] = None  # --mlflow URI: every trial also an MLflow run


@dataclass(frozen=True)
class TrialPolicy:
    max_failures: int = 2  # --max-failures
    checkpoint_every_s: Optional[float] = 120.0  # --checkpoint-every (None: off)


@dataclass(frozen=True)
class RunOptions:
    inputs: Inputs = field(default_factory=Inputs)
    resources: Resources = field(default_factory=Resources)
    store: StoreOptions = field(default_factory=StoreOptions)
    policy: TrialPolicy = field(default_factory=TrialPolicy)
    verbose: int = 1  # 0: --quiet (no bars, no progress line); 2: -v (a line per finished trial too)
