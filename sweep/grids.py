"""Grids are Python modules defining ``STUDIES``: the packaged ones under ``search_spaces/``
(named: ``--grid paper``) or a user's file anywhere (``--grid ./my_study.py``, its grid name
the file's stem), loaded with the same checks.

Example::

    >>> len(load_grid("demo")) > 0
    True
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys

import search_spaces
from sweep.spec import SpecError, StudySpec
from trainables.errors import did_you_mean


def grid_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(search_spaces.__path__) if not m.name.startswith("_"))


def is_grid_file(grid: str) -> bool:
    """A grid given as a file (``my_study.py``, ``grids/derm.py``) rather than a packaged name."""
    return grid.endswith(".py") or os.sep in grid or "/" in grid


def grid_name_of(grid: str) -> str:
    """The name rows carry: a packaged grid's own, a grid file's stem."""
    return os.path.splitext(os.path.basename(grid))[0] if is_grid_file(grid) else grid


def _check_grid_file(path: str) -> None:
    if not os.path.isfile(path):
        raise SpecError(f"--grid {path}: no such file (a grid file is a Python module defining STUDIES; "
                        f"sweep grid new {path} writes one)")
    if not grid_name_of(path).isidentifier():
        raise SpecError(f"--grid {path}: the file's name must be a Python identifier (letters, digits, _): "
                        f"it names the grid in every row")


def _import_grid_file(path: str):
    name = grid_name_of(path)
    module_name = f"medsweep_grid_{name}"
    spec = importlib.util.spec_from_file_location(module_name, os.path.abspath(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(module_name, None)
        raise
    return module


def _study_list(value, where: str) -> list[StudySpec]:
    """STUDIES as a list, read once: a list, a tuple or any iterable of StudySpec (a generator
    or an ``itertools`` chain too, which a check that iterated it would leave empty)."""
    expected = "a non-empty list of StudySpec"
    if value is None:
        raise SpecError(f"{where} must define STUDIES, {expected}")
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise SpecError(f"{where}: STUDIES must be {expected}, got {type(value).__name__}")
    try:
        studies = list(value)
    except Exception as exc:  # a generator's own error (a StudySpec refusing its fields, say), named
        raise SpecError(f"{where}: STUDIES cannot be read: {type(exc).__name__}: {exc}") from None
    if not studies:
        raise SpecError(f"{where}: STUDIES is empty; it must be {expected}")
    for i, s in enumerate(studies):
        if not isinstance(s, StudySpec):
            raise SpecError(f"{where}: STUDIES[{i}] is a {type(s).__name__} ({s!r:.80}), not a StudySpec")
    return studies


def load_grid(grid: str) -> list[StudySpec]:
    """The studies of a packaged grid (``"paper"``) or of a grid file (``"./my_study.py"``)."""
    name = grid_name_of(grid)
    where = grid if is_grid_file(grid) else f"search_spaces/{name}.py"
    if is_grid_file(grid):
        _check_grid_file(grid)
    elif name not in grid_names():
        raise SpecError(f"unknown grid {name!r}{did_you_mean(name, grid_names())}; "
                        f"valid grids: {', '.join(grid_names())}, or a grid file PATH.py")
    try:
        module = _import_grid_file(grid) if is_grid_file(grid) else importlib.import_module(f"search_spaces.{name}")
    except Exception as exc:  # a grid is code: its own error, named, instead of a traceback
        raise SpecError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    studies = _study_list(getattr(module, "STUDIES", None), where)
    ids = [s.study_id for s in studies]
    if len(set(ids)) != len(ids):
        raise SpecError(f"grid {name!r} lists the same study more than once")
    if any(s.grid != name for s in studies):
        raise SpecError(f"grid {name!r}: every StudySpec must carry grid={name!r}")
    return list(studies)


def select_studies_where(studies: list[StudySpec], where: dict[str, list[str]]) -> list[StudySpec]:
    """Keep the studies whose fields match: ``{"dataset": ["aptos"], "mode": ["linear", "dvme"]}``.

    A value matches a field's text (``backbones`` matches any one backbone); an unknown field
    or a filter that keeps nothing is an error naming it."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(StudySpec)}
    for name in where:
        if name not in fields:
            raise SpecError(f"--where {name}=...: unknown field{did_you_mean(name, fields)}; "
                            f"valid fields: {', '.join(sorted(fields))}")

    def text(value) -> set[str]:
        return {str(v) for v in value} if isinstance(value, tuple) else {str(value)}

    kept = [s for s in studies if all(text(getattr(s, k)) & set(v) for k, v in where.items())]
    if not kept:
        shown = " ".join(f"{k}={','.join(v)}" for k, v in where.items())
        raise SpecError(f"--where {shown} keeps none of the grid's {len(studies)} studies")
    return kept


def with_embedding_options(studies: list[StudySpec], views: int | None = None, dtype: str | None = None) -> list[StudySpec]:
    """The frozen-mode studies with ``views`` / ``embedding_dtype`` replaced (``--views``,
    ``--embedding-dtype``); finetune studies unchanged, and the probes keep view 0 (they fit
    on it alone). The study ids change with them, so results with other views never mix."""
    from trainables.models.modes import get_mode

    def changes(study: StudySpec) -> dict:
        mode = get_mode(study.mode)
        if not mode.frozen:
            return {}
        wanted = {"embedding_dtype": dtype, "views": views if mode.uses_views else None}
        return {k: v for k, v in wanted.items() if v is not None}

    return [s.replace(**changes(s)) if changes(s) else s for s in studies]
