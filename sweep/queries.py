"""The three query levels of the results store.

- trials: every trial row.
- studies: each study's selected trial, the one with the best validation score (the test
  score never takes part in selection), with ``trials`` = how many trials the study ran.
- cells: a study without its fold; ``mean`` and ``std`` (sample std, ddof=1, the spread of
  5 fold models) of the selected trials' test scores, ``folds`` = how many folds are in.

Example::

    >>> cells = aggregate_cells(select_studies(store.read_trials().to_pylist()))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
from typing import Iterable

CELL_COLUMNS = ("dataset", "backbone", "mode", "subset", "n_train", "metric", "attention", "attention_form")


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
        # Ties go to the earliest trial id so that selection never depends on file order.
        best = max(ok, key=lambda r: (r["val_score"], _neg(r["trial_id"])))
        selected.append({**best, "trials": len(rows), "errors": len(rows) - len(ok)})
    return selected


def _neg(text: str) -> tuple:
    return tuple(-ord(c) for c in text)


def aggregate_cells(studies: Iterable[dict]) -> list[dict]:
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
                "mean": statistics.fmean(scores) if scores else None,
                "std": statistics.stdev(scores) if len(scores) > 1 else None,
                "folds": len(rows),
                "trials": sum(r["trials"] for r in rows),
                "cell_id": cid,
            }
        )
    return sorted(cells, key=lambda c: (c["dataset"], c["mode"], c["backbone"], c["n_train"], str(c["attention"])))
