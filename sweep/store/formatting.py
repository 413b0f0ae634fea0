"""Rows (lists of dicts) out as a text table, CSV, JSON (a list of objects) or Parquet."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from trainables.errors import UserError

FORMATS = ("table", "csv", "json", "parquet")

# Columns the text table shows per level, so a terminal stays readable; other formats carry all.
TABLE_COLUMNS = {
    "trials": ("study_id", "trial_id", "lr", "epochs", "stopped_early", "val_score", "test_score", "status"),
    "studies": ("dataset", "backbone", "mode", "n_train", "fold", "lr", "epochs", "val_score", "test_score", "trials"),
    "cells": ("dataset", "backbone", "mode", "subset", "n_train", "metric", "mean ± std", "95% CI", "folds", "trials"),
    "epochs": ("trial_id", "backbone", "n_train", "fold", "lr", "epoch", "train_loss", "val_loss", "val_score", "lr_now"),
}


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def mean_std(mean: Optional[float], std: Optional[float]) -> str:
    """The paper's way to write a cell: 0.9868 ± 0.0008."""
    if mean is None:
        return "-"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def interval(low: Optional[float], high: Optional[float]) -> str:
    """A bootstrap interval as the tables write it: [0.9741, 0.9862]."""
    return "-" if low is None else f"[{low:.4f}, {high:.4f}]"


def render_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    if not rows:
        return "(no rows)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def csv_text(rows: Sequence[dict]) -> str:
    """Rows as CSV text, the first row's keys as header (empty for no rows): every CSV medsweep
    writes (query results, report exports, Kaggle submissions)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def render(rows: Sequence[dict], fmt: str, level: str, out: Optional[str] = None) -> Optional[str]:
    """Return the text for stdout, or write ``out`` (Parquet needs ``out``) and return None."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if fmt == "parquet":
        if not out:
            raise UserError("--format parquet writes a file: give --out FILE")
        pq.write_table(pa.Table.from_pylist(list(rows)), out)
        return None
    if fmt == "table":
        if level == "cells":
            rows = [{**r, "mean ± std": mean_std(r["mean"], r["std"]), "95% CI": interval(r["ci_low"], r["ci_high"])}
                    for r in rows]
        text = render_table(rows, TABLE_COLUMNS[level])
    elif fmt == "json":
        # JSON has no NaN: a missing score is null.
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
        text = json.dumps(clean, indent=1, default=str)
    else:
        text = csv_text(rows)
    if out:
        with open(out, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        return None
    return text
