import json
import statistics

import pyarrow.parquet as pq
import pytest

from sweep.store.formatting import render
from sweep.store.queries import aggregate_cells, select_studies


def _trial(study, fold, trial, val, test, cell="c1", status="ok", backbone="b"):
    return {"study_id": study, "cell_id": cell, "trial_id": trial, "val_score": val, "test_score": test,
            "status": status, "fold": fold, "dataset": "digits", "backbone": backbone, "mode": "linear",
            "subset": "S", "n_train": 50, "metric": "auc", "attention": True, "attention_form": "token",
            "backbones": [backbone], "views": 1, "embedding_dtype": "float32"}


TRIALS = [
    # fold 0: the best validation score wins even though another trial has a better test score
    _trial("s0", 0, "a", 0.70, 0.95),
    _trial("s0", 0, "b", 0.90, 0.80),
    _trial("s0", 0, "c", None, None, status="error"),
    _trial("s1", 1, "d", 0.85, 0.60),
    _trial("s1", 1, "e", 0.85, 0.99),  # tie on validation: the earlier trial id is selected
    _trial("s2", 2, "f", 0.60, 0.70),
    _trial("x0", 0, "g", 0.50, 0.55, cell="c2", backbone="other"),
]


def test_studies_select_the_best_validation_score_never_the_test_score():
    studies = {s["study_id"]: s for s in select_studies(TRIALS)}
    assert studies["s0"]["trial_id"] == "b" and studies["s0"]["test_score"] == 0.80
    assert studies["s0"]["trials"] == 3 and studies["s0"]["errors"] == 1
    assert studies["s1"]["trial_id"] == "d"
    assert {s["trial_id"] for s in select_studies(list(reversed(TRIALS)))} == {"b", "d", "f", "g"}


def test_cells_are_mean_and_sample_std_over_folds_of_the_selected_trials():
    cells = {c["cell_id"]: c for c in aggregate_cells(select_studies(TRIALS))}
    c1 = cells["c1"]
    assert c1["folds"] == 3 and c1["trials"] == 6
    assert c1["mean"] == pytest.approx(statistics.fmean([0.80, 0.60, 0.70]))
    assert c1["std"] == pytest.approx(statistics.stdev([0.80, 0.60, 0.70]))
    assert cells["c2"]["folds"] == 1 and cells["c2"]["std"] is None
    assert {"dataset", "backbone", "mode", "n_train", "metric", "mean", "std", "folds"} <= set(c1)


def test_exports(tmp_path):
    cells = aggregate_cells(select_studies(TRIALS))
    as_json = json.loads(render(cells, "json", "cells"))
    assert isinstance(as_json, list) and as_json[0]["mean"] == pytest.approx(cells[0]["mean"])
    csv_text = render(cells, "csv", "cells")
    assert csv_text.splitlines()[0].startswith("dataset,backbone,backbones,mode")
    assert len(csv_text.strip().splitlines()) == 1 + len(cells)
    out = tmp_path / "cells.parquet"
    assert render(cells, "parquet", "cells", str(out)) is None
    assert pq.read_table(out).num_rows == len(cells)
    table = render(cells, "table", "cells")
    assert "0.7000 ± 0.1000" in table


def test_json_has_no_nan():
    rows = [dict(_trial("s", 0, "t", 0.5, float("nan")))]
    assert json.loads(render(rows, "json", "trials"))[0]["test_score"] is None


def test_parquet_needs_an_output_file():
    with pytest.raises(ValueError, match="--out FILE"):
        render([], "parquet", "cells")


def test_where_matches_values_lists_and_numeric_ranges():
    from sweep.store.queries import filter_rows

    rows = [{"dataset": "aptos", "n_train": n, "backbones": ["swav", "dino"], "attention": True} for n in (50, 500, 3662)]
    assert [r["n_train"] for r in filter_rows(rows, {"n_train": ["100..1000"]})] == [500]
    assert [r["n_train"] for r in filter_rows(rows, {"n_train": ["..100", "3000.."]})] == [50, 3662]
    assert len(filter_rows(rows, {"backbones": ["dino"], "attention": ["true"]})) == 3
    assert filter_rows(rows, {"dataset": ["nih"]}) == []
    with pytest.raises(ValueError, match=r"--where datset=...: unknown field here \(did you mean 'dataset'\?\); valid fields: attention, backbones"):
        filter_rows(rows, {"datset": ["aptos"]})
    with pytest.raises(ValueError, match="expected numbers"):
        filter_rows(rows, {"n_train": ["a..b"]})


def test_sort_by_several_keys_with_missing_values_last():
    from sweep.store.queries import sort_rows

    rows = [{"d": "b", "s": 0.5}, {"d": "a", "s": None}, {"d": "a", "s": 0.9}, {"d": "a", "s": 0.1}]
    assert [(r["d"], r["s"]) for r in sort_rows(rows, ["d", "-s"])] == [("a", 0.9), ("a", 0.1), ("a", None), ("b", 0.5)]
    with pytest.raises(ValueError, match="--sort x: unknown field"):
        sort_rows(rows, ["x"])
