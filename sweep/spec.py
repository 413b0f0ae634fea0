"""The study of a grid, as grid files import it: ``from sweep.spec import StudySpec``.

The definition lives in trainables/study.py, beside what runs a trial, so that the trial reads
the study typed (trainables/context.py) without importing the driver.
"""

from trainables.study import (  # noqa: F401  (re-exported for grids and the CLI)
    ATTENTION_FORMS,
    EMBEDDING_DTYPES,
    FROZEN_MODES,
    MODES,
    SpecError,
    StudySpec,
    cpus_problem,
    gpus_problem,
    resolve_pools,
)

__all__ = ["ATTENTION_FORMS", "EMBEDDING_DTYPES", "FROZEN_MODES", "MODES", "SpecError", "StudySpec", "cpus_problem",
           "gpus_problem", "resolve_pools"]
