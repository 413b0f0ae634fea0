"""The three query levels of the results store.

- trials: every trial row.
- studies: each study's selected trial, the one with the best validation score (the test
  score never takes part in selection), with ``trials`` = how many trials the study ran.
- cells: a study without its fold; ``mean`` and ``std`` (sample std, ddof=1, the spread of
  5 fold models) of the selected trials' test scores, ``folds`` = how many folds are in;
  ``ci_low`` and ``ci_high``, the bootstrap 95% interval of the mean over test-set resamples
  (sweep/store/intervals.py), where the caller gives them; few-shot cells also
  ``episode_std``, the sample std of the test score over every episode of every fold.

Example::

    >>> cells = aggregate_cells(select_studies(store.read_trials().to_pylist()))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Iterable, Optional

from trainables.errors import UserError, did_you_mean
from sweep.spec import StudySpec

CELL_COLUMNS = ("dataset", "backbone", "backbones", "mode", "subset", "n_train", "metric", "attention", "attention_form",
                "views", "embedding_dtype")
# A cell carries every setting of its studies (all but the fold are the same in each): what
# tells the paper's own study from a variant (sweep/report/paper_numbers.py).
CELL_SETTINGS = tuple(f.name for f in dataclasses.fields(StudySpec) if f.name not in CELL_COLUMNS + ("fold",))


def select_studies(trials: Iterable[dict]) -> list[dict]:
    by_study: dict[str, list[dict]] = {}
    for row in trials:
        by_study.setdefault(row["study_id"], []).append(row)
    selected = []
    for sid in sorted(by_study):
        rows = by_study[sid]
        ok = [r for r in rows if r["status"] == "ok" and r["val_score"] is not None]
        if not ok:
            continue
        # Ties on validation are common where validation sets are small (10 of the demo's 85
        # studies, all at S): they go to the smallest value searched (learning rate,
        # logistic's C, kNN's k), then the earliest trial id, so that a rerun whose trials
        # came out the same selects the same ones. By trial id alone (Tune draws ids at random)
        # identical trials gave cells that moved in their third decimal from run to run.
        best = max(ok, key=lambda r: (r["val_score"], -r["lr"], _neg(r["trial_id"])))
        selected.append({**best, "trials": len(rows), "errors": len(rows) - len(ok)})
    return selected


def _neg(text: str) -> tuple:
    return tuple(-ord(c) for c in text)


def episode_std(rows: list[dict]) -> Optional[float]:
    """The sample std over every episode of a few-shot cell, pooled from each fold's mean, std
    and episode count (within-fold spread plus the folds' spread about the grand mean)."""
    parts = [(r["episodes"], r["test_score"], r.get("test_score_std")) for r in rows
             if r.get("episodes") and r["test_score"] is not None and not math.isnan(r["test_score"])]
    total = sum(n for n, _, _ in parts)
    if total < 2 or any(s is None or math.isnan(s) for n, _, s in parts if n > 1):
        return None
    grand = sum(n * m for n, m, _ in parts) / total
    squares = sum((n - 1) * (s if n > 1 else 0.0) ** 2 + n * (m - grand) ** 2 for n, m, s in parts)
    return math.sqrt(squares / (total - 1))


def aggregate_cells(studies: Iterable[dict], intervals: Optional[dict] = None) -> list[dict]:
    """The cells of the selected ``studies``; ``intervals`` (cell_id -> (low, high), from
    sweep/store/intervals.py) fills ``ci_low``/``ci_high``, None elsewhere."""
    intervals = intervals or {}
    by_cell: dict[str, list[dict]] = {}
    for row in studies:
        by_cell.setdefault(row["cell_id"], []).append(row)
    cells = []
    for cid, rows in by_cell.items():
        scores = [r["test_score"] for r in rows if r["test_score"] is not None and not math.isnan(r["test_score"])]
        first = rows[0]
        cells.append(
            {
                **{c: first[c] for c in CELL_COLUMNS},
                **{c: first.get(c) for c in CELL_SETTINGS},
                "mean": statistics.fmean(scores) if scores else None,
                "std": statistics.stdev(scores) if len(scores) > 1 else None,
                "ci_low": intervals.get(cid, (None, None))[0],
                "ci_high": intervals.get(cid, (None, None))[1],
                "episode_std": episode_std(rows),
                "folds": len(rows),
                "trials": sum(r["trials"] for r in rows),
                # Hidden test labels: the fold models' alpha-weighted Kaggle scores, once given.
                "scored_by": "kaggle" if any(r.get("scored_by") == "kaggle" for r in rows) else "test set",
                "cell_id": cid,
            }
        )
    return sorted(cells, key=lambda c: (c["dataset"], c["mode"], c["backbone"], c["n_train"], c.get("shots") or 0,
                                        str(c["attention"])))


def _matches(value, wanted: list[str]) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_matches(v, wanted) for v in value)
    for w in wanted:
        lo, sep, hi = w.partition("..")
        if sep:
            if value is None or isinstance(value, str):
                continue
            if (not lo or value >= float(lo)) and (not hi or value <= float(hi)):
                return True
        elif str(value) == w or (isinstance(value, bool) and w.lower() == str(value).lower()):
            return True
    return False


def filter_rows(rows: list[dict], where: dict[str, list[str]]) -> list[dict]:
    """The rows whose every FIELD matches one of its values: a value as text (a list field
    matches any element) or a numeric range ``LO..HI`` (either end may be left out), e.g.
    ``{"dataset": ["aptos"], "n_train": ["100..1000"]}``. An unknown field is an error that
    lists the valid ones."""
    if not where or not rows:
        return rows
    unknown = sorted(set(where) - set(rows[0]))
    if unknown:
        raise UserError(f"--where {unknown[0]}=...: unknown field here{did_you_mean(unknown[0], rows[0])}; "
                        f"valid fields: {', '.join(sorted(rows[0]))}")
    for values in where.values():
        for v in values:
            lo, sep, hi = v.partition("..")
            if sep:
                try:
                    lo and float(lo), hi and float(hi)
                except ValueError:
                    raise UserError(f"--where range {v!r}: expected numbers, LO..HI") from None
    return [r for r in rows if all(_matches(r.get(k), v) for k, v in where.items())]


def sort_rows(rows: list[dict], keys: list[str]) -> list[dict]:
    """Sorted by each key in turn (``-key``: descending); missing values last."""
    for key in reversed(keys):
        name, descending = key.lstrip("-"), key.startswith("-")
        if rows and name not in rows[0]:
            raise UserError(f"--sort {name}: unknown field{did_you_mean(name, rows[0])}; "
                            f"valid fields: {', '.join(sorted(rows[0]))}")
        present = [r for r in rows if r.get(name) is not None and r.get(name) == r.get(name)]
        missing = [r for r in rows if not (r.get(name) is not None and r.get(name) == r.get(name))]
        rows = sorted(present, key=lambda r: r[name], reverse=descending) + missing
    return rows


EPOCH_CONTEXT = ("dataset", "mode", "backbone", "n_train", "fold", "lr")


def epoch_rows(store, trials: list[dict]) -> list[dict]:
    """Every epoch of ``trials`` (from the store's history table), with the trial's study
    fields beside each, ordered by trial and epoch."""
    by_trial = {t["trial_id"]: t for t in trials}
    history = store.read_history({t["study_id"] for t in trials}).to_pylist()
    rows = [{**{c: by_trial[h["trial_id"]][c] for c in EPOCH_CONTEXT}, **h} for h in history if h["trial_id"] in by_trial]
    return sorted(rows, key=lambda r: (r["study_id"], r["trial_id"], r["epoch"]))
