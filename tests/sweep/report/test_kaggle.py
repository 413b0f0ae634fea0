import csv
import os

import pytest

from sweep.report.kaggle import final_score
from sweep.driver.runner import run_sweep
from tests.contexts import run_options
from sweep.spec import StudySpec
from sweep.store.store import ResultsStore
from tests import layouts
from trainables.data.datasets import DatasetError


def test_final_score_is_the_papers_alpha_weighting():
    assert final_score("aptos", private=0.80, public=0.70) == pytest.approx(0.85 * 0.80 + 0.15 * 0.70)
    assert final_score("patchcam", private=0.90, public=0.80) == pytest.approx(0.51 * 0.90 + 0.49 * 0.80)
    with pytest.raises(DatasetError, match="not scored on Kaggle"):
        final_score("pneumonia", 0.9, 0.9)


def test_hidden_label_sweep_writes_submissions_per_fold_and_ensemble(ray_local, tmp_path):
    root = str(tmp_path / "aptos")
    layouts.aptos(root, labels=tuple(range(5)) * 5, n_test=4)
    studies = [
        StudySpec(grid="kaggle", dataset="aptos", backbones=("test_resnet",), mode="linear", subset="25",
                  n_train=25, fold=f, n_trials=2, max_epochs=2, grace_period=1, cpus=0.5, batch_size=8)
        for f in range(5)
    ]
    results = str(tmp_path / "results")
    run_sweep(studies, run_options(results=results, data_roots={"aptos": root}, verbose=0))
    rows = ResultsStore(results).read_trials().to_pylist()
    assert len(rows) == 10 and all(r["status"] == "ok" and r["test_score"] is None for r in rows)
    (folder,) = os.listdir(os.path.join(results, "submissions"))
    files = sorted(os.listdir(os.path.join(results, "submissions", folder)))
    assert files == ["ensemble.csv", "fold0.csv", "fold1.csv", "fold2.csv", "fold3.csv", "fold4.csv"]
    with open(os.path.join(root, "test.csv")) as f:
        test_ids = [r["id_code"] for r in csv.DictReader(f)]
    with open(os.path.join(results, "submissions", folder, "ensemble.csv")) as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["id_code", "diagnosis"]
        sub = list(reader)
    assert [r["id_code"] for r in sub] == test_ids
    assert all(r["diagnosis"] in {"0", "1", "2", "3", "4"} for r in sub)
    _kaggle_scores_fill_the_cells(results, folder, tmp_path)


def _kaggle_scores_fill_the_cells(results, folder, tmp_path):
    """The report writes kaggle_scores.csv to fill; once filled, the cell is mean ± std over
    the fold models' alpha-weighted scores, in the report's tables and in sweep results."""
    import json
    import statistics

    from click.testing import CliRunner

    from sweep.cli import main

    report = tmp_path / "report"
    first = CliRunner().invoke(main, ["report", "--results", results, "--out", str(report)])
    assert first.exit_code == 0, first.output
    assert "| aptos | linear test_resnet | - |" in (report / "report.md").read_text()  # no test score yet
    with open(report / "kaggle_scores.csv") as f:
        template = list(csv.DictReader(f))
    assert {r["submission"] for r in template} == {f"{folder}/fold{k}.csv" for k in range(5)} | {f"{folder}/ensemble.csv"}
    private = {f"{folder}/fold{k}.csv": 0.50 + 0.05 * k for k in range(5)}
    filled = tmp_path / "filled.csv"
    with open(filled, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "dataset", "private", "public", "final"])
        for name, p in private.items():
            writer.writerow([name, "aptos", p, p - 0.1, ""])
        writer.writerow([f"{folder}/ensemble.csv", "aptos", "", "", ""])  # not submitted yet
    finals = [0.85 * p + 0.15 * (p - 0.1) for p in private.values()]
    cells = CliRunner().invoke(main, ["results", "--results", results, "--level", "cells", "--format", "json",
                                      "--kaggle-scores", str(filled)])
    (cell,) = json.loads(cells.stdout)
    assert cell["scored_by"] == "kaggle" and cell["folds"] == 5
    assert cell["mean"] == pytest.approx(statistics.fmean(finals)) and cell["std"] == pytest.approx(statistics.stdev(finals))
    again = CliRunner().invoke(main, ["report", "--results", results, "--out", str(report), "--kaggle-scores", str(filled)])
    assert again.exit_code == 0, again.output
    text = (report / "report.md").read_text()
    assert f"| aptos | linear test_resnet | {statistics.fmean(finals):.4f} ± {statistics.stdev(finals):.4f} (Kaggle) · no paper figure |" in text
    assert f"| linear test_resnet | {statistics.fmean(finals):.4f} K |" in text  # the per-size table
    # A score file of another store, or a score that is not a number, is a named error.
    with open(filled, "a", newline="") as f:
        csv.writer(f).writerow(["aptos-linear-x-n25-0123456789/fold0.csv", "aptos", "0.5", "0.5", ""])
    wrong = CliRunner().invoke(main, ["results", "--results", results, "--level", "cells", "--kaggle-scores", str(filled)])
    assert wrong.exit_code == 2 and "is not one of this store's fold models" in wrong.output
    bad = tmp_path / "bad.csv"
    bad.write_text(f"submission,private,public\n{folder}/fold0.csv,0.8,n/a\n")
    wrong = CliRunner().invoke(main, ["results", "--results", results, "--level", "cells", "--kaggle-scores", str(bad)])
    assert wrong.exit_code == 2 and f"{bad} line 2" in wrong.output and "'n/a'" in wrong.output
    # NaN, an infinity, a kappa above 1 were taken as scores; a submission twice, its last line.
    for rows, message in (
        ([f"{folder}/fold0.csv,nan,0.5"], "line 2: private nan is not a score of kappa_quadratic"),
        ([f"{folder}/fold0.csv,0.5,inf"], "line 2: public inf is not a score of kappa_quadratic"),
        ([f"{folder}/fold1.csv,0.5,0.5", f"{folder}/fold0.csv,1.5,0.5"], "line 3: private 1.5 is not a score"),
        ([f"{folder}/fold0.csv,0.5,0.5", f"{folder}/fold0.csv,0.6,0.5"], f"submission '{folder}/fold0.csv' on line 3 repeats line 2"),
    ):
        bad.write_text("submission,private,public\n" + "\n".join(rows) + "\n")
        for command in (["results", "--level", "cells"], ["report", "--out", str(tmp_path / "r2")]):
            wrong = CliRunner().invoke(main, [*command, "--results", results, "--kaggle-scores", str(bad)])
            assert wrong.exit_code == 2 and str(bad) in wrong.output and message in wrong.output, wrong.output


def test_the_original_pcam_release_is_scored_on_its_own_labelled_test_set(ray_local, tmp_path):
    root = str(tmp_path / "pcam")
    layouts.pcam_h5(root, counts=(("train", 16), ("valid", 4), ("test", 6)))
    studies = [StudySpec(grid="pcam", dataset="patchcam", backbones=("test_resnet",), mode="linear", subset="10",
                         n_train=10, fold=f, n_folds=2, n_trials=1, max_epochs=2, grace_period=1, cpus=0.5,
                         batch_size=4) for f in range(2)]
    results = str(tmp_path / "results")
    summary = run_sweep(studies, run_options(results=results, data_roots={"patchcam": root}, verbose=0))
    rows = ResultsStore(results).read_trials().to_pylist()
    assert len(rows) == 2 and all(r["test_score"] is not None and 0 <= r["test_score"] <= 1 for r in rows)
    assert summary.submissions == 0 and not os.path.exists(os.path.join(results, "submissions"))


def test_kaggle_score_command():
    from click.testing import CliRunner

    from sweep.cli import main

    result = CliRunner().invoke(main, ["kaggle-score", "--dataset", "patchcam", "--private", "0.9", "--public", "0.8"])
    assert result.exit_code == 0 and result.output.strip() == "0.8510"
    kappa = CliRunner().invoke(main, ["kaggle-score", "--dataset", "aptos", "--private", "-0.2", "--public", "0.5"])
    assert kappa.exit_code == 0 and kappa.output.strip() == "-0.0950"  # kappa may be negative


@pytest.mark.parametrize("dataset,private,public,message", [
    ("aptos", "nan", "0.5", "aptos private leaderboard score nan is not a score of kappa_quadratic (expected a number from -1 to 1)"),
    ("patchcam", "0.9", "inf", "patchcam public leaderboard score inf is not a score of auc (expected a number from 0 to 1)"),
    ("patchcam", "1.2", "0.5", "patchcam private leaderboard score 1.2 is not a score of auc"),
    ("aptos", "0.5", "-1.5", "aptos public leaderboard score -1.5 is not a score of kappa_quadratic"),
])
def test_kaggle_score_refuses_what_is_no_score(dataset, private, public, message):
    """`--private nan` printed nan."""
    from click.testing import CliRunner

    from sweep.cli import main

    result = CliRunner().invoke(main, ["kaggle-score", "--dataset", dataset, "--private", private, "--public", public])
    assert result.exit_code == 2 and message in result.output and "nan\n" != result.output


def test_holdout_gives_test_scores_without_kaggle(ray_local, tmp_path):
    root = str(tmp_path / "aptos")
    layouts.aptos(root, labels=tuple(range(5)) * 6, n_test=2)
    studies = [StudySpec(grid="holdout", dataset="aptos", backbones=("test_resnet",), mode="linear", subset="20",
                         n_train=20, fold=f, n_folds=2, n_trials=1, max_epochs=2, grace_period=1, cpus=0.5,
                         batch_size=8) for f in range(2)]
    results = str(tmp_path / "results")
    summary = run_sweep(studies, run_options(results=results, data_roots={"aptos": root}, holdout=0.2, verbose=0))
    rows = ResultsStore(results).read_trials().to_pylist()
    assert len(rows) == 2 and all(r["test_score"] is not None for r in rows)
    assert summary.submissions == 0 and not os.path.exists(os.path.join(results, "submissions"))
    assert all(r["data_fingerprint"].endswith("-holdout0.2") for r in rows)


def test_skip_unreadable_leaves_out_and_records_each_bad_file(ray_local, tmp_path):
    import json

    root = str(tmp_path / "aptos")
    ids = layouts.aptos(root, labels=tuple(range(5)) * 5, n_test=2)
    os.remove(os.path.join(root, "train_images", f"{ids[0]}.png"))  # missing
    broken = os.path.join(root, "train_images", f"{ids[1]}.png")
    with open(broken, "r+b") as f:
        f.truncate(60)  # truncated
    studies = [StudySpec(grid="skip", dataset="aptos", backbones=("test_resnet",), mode="finetune", subset="20",
                         n_train=20, fold=0, n_folds=2, n_trials=1, max_epochs=1, grace_period=1, batch_size=8)]
    with pytest.raises(DatasetError, match="missing"):
        run_sweep(studies, run_options(results=str(tmp_path / "strict"), data_roots={"aptos": root}, verbose=0))
    results = str(tmp_path / "results")
    run_sweep(studies, run_options(results=results, data_roots={"aptos": root}, skip_unreadable=True, verbose=0))
    (row,) = ResultsStore(results).read_trials().to_pylist()
    assert row["status"] == "ok"
    with open(os.path.join(results, "skipped", "aptos.json")) as f:
        record = json.load(f)
    assert record["skipped_ids"] == [ids[1]]
    assert any(f"{ids[0]}.png: file not found" in p for p in record["problems"])
    assert any(f"{ids[1]}.png: not a readable image" in p for p in record["problems"])
    with open(os.path.join(results, "manifests", f"{row['manifest_digest']}.json")) as f:
        manifest = json.load(f)
    assert manifest["skipped_ids"] == [ids[1]]
    assert not {ids[0], ids[1]} & set(manifest["train_ids"] + manifest["val_ids"])
