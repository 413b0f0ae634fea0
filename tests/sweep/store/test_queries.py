import json
import statistics

import pyarrow.parquet as pq
import pytest

from sweep.store.formatting import render
from sweep.store.queries import aggregate_cells, select_studies


def _trial(study, fold, trial, val, test, cell="c1", status="ok", backbone="b", lr=0.01):
    return {"study_id": study, "cell_id": cell, "trial_id": trial, "lr": lr, "val_score": val, "test_score": test,
            "status": status, "fold": fold, "dataset": "digits", "backbone": backbone, "mode": "linear",
            "subset": "S", "n_train": 50, "metric": "auc", "attention": True, "attention_form": "token",
            "backbones": [backbone], "views": 1, "embedding_dtype": "float32"}


TRIALS = [
    # fold 0: the best validation score wins even though another trial has a better test score
    _trial("s0", 0, "a", 0.70, 0.95),
    _trial("s0", 0, "b", 0.90, 0.80),
    _trial("s0", 0, "c", None, None, status="error"),
    _trial("s1", 1, "d", 0.85, 0.60),
    _trial("s1", 1, "e", 0.85, 0.99),  # tie on validation and lr: the earlier trial id is selected
    _trial("s2", 2, "f", 0.60, 0.70),
    _trial("x0", 0, "g", 0.50, 0.55, cell="c2", backbone="other"),
]


def test_studies_select_the_best_validation_score_never_the_test_score():
    studies = {s["study_id"]: s for s in select_studies(TRIALS)}
    assert studies["s0"]["trial_id"] == "b" and studies["s0"]["test_score"] == 0.80
    assert studies["s0"]["trials"] == 3 and studies["s0"]["errors"] == 1
    assert studies["s1"]["trial_id"] == "d"
    assert {s["trial_id"] for s in select_studies(list(reversed(TRIALS)))} == {"b", "d", "f", "g"}


def test_a_tie_on_validation_goes_to_the_smallest_value_searched_whatever_the_trial_ids():
    # Tune draws trial ids at random: two runs whose trials came out the same must still select
    # the same trial, so the tie is broken by what the trials are (their lr), not their ids.
    for first, second in (("a", "z"), ("z", "a")):
        rows = [_trial("s", 0, first, 0.9, 0.70, lr=0.3), _trial("s", 0, second, 0.9, 0.80, lr=0.02),
                _trial("s", 0, "m", 0.8, 0.99, lr=0.001)]
        for order in (rows, rows[::-1]):
            (selected,) = select_studies(order)
            assert selected["lr"] == 0.02 and selected["test_score"] == 0.80


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


def test_a_cells_interval_is_the_percentiles_of_its_folds_mean_resample_by_resample(tmp_path):
    """The fold models held fixed: resample b of the cell is the mean of the folds' scores on
    resample b; a cell with a fold that left no resample scores (hidden labels) has none."""
    import numpy as np

    from sweep.store.intervals import cell_intervals
    from trainables.artifacts import TrialFiles
    from trainables.training.outputs import save_bootstrap

    studies = select_studies(TRIALS)
    rng = np.random.default_rng(0)
    saved = {}
    for s in studies:
        if s["cell_id"] == "c1":
            saved[s["study_id"]] = rng.normal(s["test_score"], 0.02, 1000)
            save_bootstrap(TrialFiles(str(tmp_path), s["study_id"], s["trial_id"]).bootstrap, saved[s["study_id"]])
    intervals = cell_intervals(str(tmp_path), studies)
    means = np.mean([saved["s0"], saved["s1"], saved["s2"]], axis=0)
    assert intervals["c1"] == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert "c2" not in intervals  # its one fold left nothing
    # Averaged per resample, the folds' spread cancels: narrower than any one fold's interval.
    assert intervals["c1"][1] - intervals["c1"][0] < np.diff(np.percentile(saved["s0"], [2.5, 97.5]))[0]
    cells = {c["cell_id"]: c for c in aggregate_cells(studies, intervals)}
    assert (cells["c1"]["ci_low"], cells["c1"]["ci_high"]) == intervals["c1"]
    assert cells["c2"]["ci_low"] is None and cells["c2"]["ci_high"] is None
    # A fold whose file is gone: no interval of fewer folds than the mean.
    import os

    os.remove(TrialFiles(str(tmp_path), "s1", "d").bootstrap)
    assert "c1" not in cell_intervals(str(tmp_path), studies)


def test_a_fewshot_cells_episode_std_pools_every_episode_of_every_fold():
    import numpy as np

    rng = np.random.default_rng(1)
    episodes = [rng.normal(m, 0.05, 20) for m in (0.7, 0.72, 0.69)]
    rows = [{**_trial(f"f{i}", i, f"t{i}", 0.8, float(e.mean())), "mode": "fewshot", "episodes": 20,
             "test_score_std": float(e.std(ddof=1)), "shots": 4} for i, e in enumerate(episodes)]
    (cell,) = aggregate_cells(select_studies(rows))
    assert cell["episode_std"] == pytest.approx(np.concatenate(episodes).std(ddof=1))
    assert cell["std"] == pytest.approx(np.std([e.mean() for e in episodes], ddof=1))
    (plain,) = aggregate_cells(select_studies(TRIALS[:3]))
    assert plain["episode_std"] is None


def test_a_selected_trial_that_left_no_resample_scores_gets_them_from_its_predictions(tmp_path):
    import numpy as np

    from sweep.store.intervals import cell_intervals
    from trainables.artifacts import TrialFiles
    from trainables.training.bootstrap import BootstrapResamples
    from trainables.training.outputs import save_predictions

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 120)
    studies = [s for s in select_studies(TRIALS) if s["cell_id"] == "c1"]
    expected = []
    for s in studies:
        p = np.clip(labels + rng.normal(0, 0.6, 120), 0, 1)
        probs = np.stack([1 - p, p], 1).astype(np.float32)
        save_predictions(TrialFiles(str(tmp_path), s["study_id"], s["trial_id"]).predictions, probs, labels)
        expected.append(BootstrapResamples(labels).scores("auc", probs))
    low, high = np.percentile(np.mean(expected, axis=0), [2.5, 97.5])
    assert cell_intervals(str(tmp_path), studies)["c1"] == pytest.approx((low, high))
    # Hidden test labels (-1): no interval.
    hidden = studies[0]
    save_predictions(TrialFiles(str(tmp_path), hidden["study_id"], hidden["trial_id"]).predictions,
                     np.full((5, 2), 0.5), np.full(5, -1))
    assert "c1" not in cell_intervals(str(tmp_path), studies)
