import csv
import os

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import ttest_rel

from sweep.cli import main
from sweep.report.paper_numbers import paper_method
from sweep.report.report import compare, write_report
from sweep.report.statistics import holm, paired_comparisons
from sweep.store.store import ResultsStore


def _study_row(backbone, fold, score, n=5216, mode="linear", dataset="pneumonia", **kw):
    backbones = kw.pop("backbones", [backbone])
    return {"dataset": dataset, "mode": mode, "backbone": backbone, "backbones": backbones, "n_train": n,
            "subset": {5216: "F", 50: "S"}.get(n, str(n)), "fold": fold, "test_score": score, "metric": "auc",
            "attention": True, "views": 1, **kw}


def test_holm_adjusts_in_the_given_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, float("nan")])[0] == pytest.approx(0.2)


def test_paired_comparison_of_two_backbones_over_the_same_folds():
    a = [0.90, 0.92, 0.91, 0.93, 0.94]
    b = [0.85, 0.88, 0.86, 0.90, 0.89]
    rows = [_study_row("dino", f, s) for f, s in enumerate(a)] + [_study_row("swav", f, s) for f, s in enumerate(b)]
    rows.append(_study_row("random", 0, 0.5))  # one fold only: nothing to pair with
    (result,) = [r for r in paired_comparisons(rows) if {r["a"], r["b"]} == {"linear dino", "linear swav"}]
    assert result["folds"] == 5 and result["difference"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert result["p_ttest"] == pytest.approx(ttest_rel(a, b).pvalue)
    assert result["p_wilcoxon"] == pytest.approx(0.0625)  # all 5 differences positive: the smallest possible
    assert all("random" not in r["a"] + r["b"] for r in paired_comparisons(rows))
    # The corrected resampled t-test (Nadeau & Bengio), written out: variance x (1/k + 1/(k-1)).
    from scipy.stats import t as student

    d = np.subtract(a, b)
    t = d.mean() / np.sqrt(d.var(ddof=1) * (1 / 5 + 1 / 4))
    assert result["p_corrected"] == pytest.approx(2 * student.sf(abs(t), 4))
    assert result["p_corrected"] > result["p_ttest"]  # the correction is the conservative one
    assert result["significant"] == (result["p_corrected_holm"] < 0.05)


def test_every_setting_that_makes_two_methods_differ_is_in_their_label():
    from sweep.report.statistics import method_label

    dvme = {"mode": "dvme", "backbone": "simclr+swav+dino", "backbones": ["simclr", "swav", "dino"], "attention": True}
    labels = [method_label({**dvme, "attention_form": "listing", "views": 4}),
              method_label({**dvme, "attention_form": "token", "views": 4}),
              method_label({**dvme, "attention_form": "listing", "views": 1}),
              method_label({**dvme, "attention": False, "views": 4}),
              method_label({**dvme, "attention_form": "listing", "views": 4, "embedding_dtype": "float16"}),
              method_label({"mode": "linear", "backbone": "dino", "views": 1}),
              method_label({"mode": "linear", "backbone": "dino", "views": 4})]
    assert len(set(labels)) == len(labels)
    assert labels[0] == "dvme simclr+swav+dino (listing attention, 4 views)"
    assert labels[1] == "dvme simclr+swav+dino (3-token attention, 4 views)"
    # Two studies the labels would merge are an error, never a silent mix.
    rows = [_study_row("dino", 0, 0.9), _study_row("dino", 0, 0.8)]
    with pytest.raises(ValueError, match="does not tell them apart"):
        paired_comparisons(rows)


def _paper_fields(dataset, mode, backbones, subset, attention=True, pool=None):
    """Every setting of the paper grid's study (fold 0, the fold left out), as a cell holds
    them; an F of a counted pool with its count."""
    import dataclasses

    from sweep.grids import load_grid

    (study,) = [s for s in load_grid("paper") if s.fold == 0 and (s.dataset, s.mode, s.backbones, s.subset, s.attention)
                == (dataset, mode, tuple(backbones), subset, attention)]
    fields = dataclasses.asdict(study)
    fields.pop("fold")
    return {**fields, "backbones": list(study.backbones), "backbone": study.backbone,
            "n_train": fields["n_train"] if fields["n_train"] is not None else pool}


def test_cells_meet_the_papers_numbers_and_large_gaps_are_flagged():
    paper_dino = _paper_fields("pneumonia", "linear", ["dino"], "F", pool=5216)
    ours = compare({**paper_dino, "mean": 0.98, "std": 0.001})
    assert ours["paper_mean"] == 0.9868 and ours["paper_table"] == "2"
    assert ours["difference"] == pytest.approx(-0.0068) and ours["flagged"]
    close = compare({**ours, "mean": 0.9866, "std": 0.001})
    assert not close["flagged"]
    # Any setting of the paper's study changed, it is not the paper's: no figure beside it.
    for change in ({"views": 1}, {"lr_max": 1e-2}, {"n_trials": 4}, {"embedding_dtype": "float16"}, {"seed": 1},
                   {"max_epochs": 30}):
        assert compare({**paper_dino, **change, "mean": 0.98, "std": 0.001})["paper_mean"] is None, change
    assert compare({**paper_dino, "grid": "mine", "gpus": 1.0, "mean": 0.98, "std": 0.001})["paper_mean"] == 0.9868
    dvme = _paper_fields("pneumonia", "dvme", ["simclr", "swav", "dino"], "F", attention=False, pool=5216)
    assert paper_method(dvme) == ("linear", "dvme_no_attention")
    assert paper_method({**dvme, "backbones": ["dino", "random"]}) is None
    listing = _paper_fields("pneumonia", "dvme", ["simclr", "swav", "dino"], "F", pool=5216)
    assert paper_method(listing) == ("linear", "dvme")
    # The paper's DVME is its listing form: the 3-token variant never takes the paper's figure.
    assert paper_method({**listing, "attention_form": "token"}) is None
    # F is the whole pool of the user's data: NIH's published files give 2,412 rows, the paper 2,414.
    nih = compare({**_paper_fields("nih", "linear", ["dino"], "F", pool=2412), "mean": 0.75, "std": 0.02})
    assert nih["paper_mean"] == 0.7438 and nih["paper_table"] == "2"


@pytest.fixture
def store(tmp_path):
    from tests.sweep.store.test_store import _row

    store = ResultsStore(str(tmp_path / "results"))
    store.open_for("g")
    scores = {"dino": [0.985, 0.987, 0.986, 0.988, 0.984], "supervised": [0.93, 0.94, 0.935, 0.945, 0.94]}
    for backbone, folds in scores.items():
        for fold, score in enumerate(folds):
            for n in (50, 5216):
                study = f"{backbone}-{n}-{fold}"
                # The paper grid's own studies, setting for setting, so that the paper's figures stand beside them.
                settings = _paper_fields("pneumonia", "linear", [backbone], "F" if n == 5216 else "S", pool=5216)
                for t, lr in enumerate((1e-4, 5e-4)):
                    store.write_trial(_row(**{**settings, "study": study, "trial": f"{study}-{t}", "val": score - t * 0.01,
                                              "test": score - (n == 50) * 0.1, "fold": fold, "cell_id": f"{backbone}-{n}",
                                              "lr": lr, "epochs": 10, "stopped_early": False, "metric": "auc"}))
    return store


def test_report_writes_tables_beside_the_paper_statistics_plots_and_exports(store, tmp_path):
    out = str(tmp_path / "report")
    path = write_report(store, out, "md")
    text = open(path).read()
    assert "## Table 2: linear evaluation" in text
    # Table 2 row: ours, the paper's figure and the difference.
    assert "| pneumonia | linear dino (4 views) | 0.8860 ± 0.0016 · paper 0.9492 ± 0.0170 (Δ -0.0632) ⚠ | 0.9860 ± 0.0016 · paper 0.9868 ± 0.0008 (Δ -0.0008) |" in text
    with open(os.path.join(out, "cells.csv")) as f:
        cells = {(r["backbone"], r["n_train"]): r for r in csv.DictReader(f)}
    assert float(cells[("supervised", "5216")]["paper_mean"]) == 0.9397
    with open(os.path.join(out, "statistics.csv")) as f:
        stats = list(csv.DictReader(f))
    assert len(stats) == 2 and all(r["significant"] == "True" for r in stats)  # dino vs supervised at both sizes
    for name in ("size_pneumonia_frozen.png", "lr_pneumonia_linear.png"):
        image = matplotlib.image.imread(os.path.join(out, "plots", name))
        assert image.shape[0] > 300 and image.shape[1] > 500 and image.std() > 0.05  # drawn, not blank
        assert f"(plots/{name})" in text


def test_tsne_plot_from_the_embedding_cache(tmp_path):
    from sweep.report.plots import tsne
    from trainables.cache.embeddings import ensure_embeddings, list_cache

    from trainables.cache.embeddings import extract_if_missing

    cache = str(tmp_path / "cache")
    ensure_embeddings("digits", None, "test_resnet", None, cache, progress=False)
    for rows in ([0, 1, 2], [3, 4]):  # a sweep's parts: the test set in the first one only
        extract_if_missing("digits", None, "test_vit", None, cache, rows=rows, progress=False)
    entries = list_cache(cache)
    assert len(entries) == 3
    (path,) = tsne(entries, str(tmp_path / "plots"), max_points=200)
    image = matplotlib.image.imread(path)
    assert os.path.basename(path) == "tsne_digits.png" and image.shape[1] > 2 * image.shape[0] * 0.9


def test_kaggle_scores_table_is_written_and_filled_scores_become_final_figures(store, tmp_path):
    from sweep.report.kaggle import final_score
    from trainables import storage

    storage.write_atomic(storage.join(store.root, "submissions", "aptos-linear-dino-n50-abc", "ensemble.csv"), b"id_code,diagnosis\n")
    out = str(tmp_path / "report")
    write_report(store, out, "html")
    with open(os.path.join(out, "kaggle_scores.csv")) as f:
        (row,) = list(csv.DictReader(f))
    assert row["submission"] == "aptos-linear-dino-n50-abc/ensemble.csv" and row["private"] == ""
    filled = tmp_path / "filled.csv"
    filled.write_text("submission,dataset,private,public\naptos-linear-dino-n50-abc/ensemble.csv,aptos,0.80,0.70\n")
    html = open(write_report(store, out, "html", kaggle_scores=str(filled))).read()
    assert f"{final_score('aptos', 0.80, 0.70):.4f}" in html and "<table>" in html
    assert f"<td class='num'>{final_score('aptos', 0.80, 0.70):.4f}</td>" in html  # figures right-aligned


def test_the_html_report_is_one_file_that_travels(store, tmp_path):
    """Every plot embedded (mailed alone, no image breaks), a viewport, wide tables scrolling in their box."""
    import base64
    import re
    import shutil

    out = tmp_path / "report"
    path = write_report(store, str(out), "html")
    plots = {p.name: p.read_bytes() for p in (out / "plots").iterdir()}
    alone = tmp_path / "mailed" / "report.html"
    alone.parent.mkdir()
    shutil.copy(path, alone)
    shutil.rmtree(out)
    html = alone.read_text()
    sources = re.findall(r"<img src='([^']*)'", html)
    assert len(sources) == len(plots) >= 2
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert sorted(base64.b64decode(src.split(",", 1)[1]) for src in sources) == sorted(plots.values())
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in html
    assert html.count("<div class='wide'><table>") == html.count("<table>") > 0
    assert "td.num{text-align:right;font-variant-numeric:tabular-nums" in html


def _answer_rows(dino, supervised, n=5216):
    return [{**_study_row(b, fold, score, n=n), "cell_id": f"{b}-{n}", "trials": 2, "n_folds": 5,
             "attention_form": "token", "embedding_dtype": "float32"}
            for b, scores in (("dino", dino), ("supervised", supervised)) for fold, score in enumerate(scores)]


def test_the_answer_names_the_best_method_the_runner_up_and_whether_the_gap_holds():
    from sweep.report.answer import answers

    (clear,) = answers(_answer_rows([0.985, 0.987, 0.986, 0.988, 0.984], [0.93, 0.94, 0.935, 0.945, 0.94]))
    assert clear["best"] == "linear dino" and clear["runner_up"] == "linear supervised" and clear["clear"]
    assert clear["difference"] == pytest.approx(0.048) and clear["p_corrected"] < 0.001
    assert clear["sentence"].startswith("pneumonia, 5,216 images (F): linear dino is best, 0.9860 ± 0.0016 AUC; "
                                        "runner-up linear supervised 0.9380 ± 0.0057, difference +0.0480 over 5 folds "
                                        "(corrected p = ")
    # A gap the folds do not support: the plain paired t-test would call it (p 0.024), the corrected one does not.
    (close,) = answers(_answer_rows([0.95, 0.97, 0.95, 0.975, 0.96], [0.945, 0.95, 0.945, 0.955, 0.95]))
    assert not close["clear"] and close["p_corrected"] == pytest.approx(0.0777, abs=1e-4)
    assert close["sentence"] == ("pneumonia, 5,216 images (F): no clear winner: linear dino 0.9610 ± 0.0114 and runner-up "
                                 "linear supervised 0.9490 ± 0.0042 AUC, difference +0.0120 over 5 folds (corrected p = 0.0777).")
    (alone,) = answers([r for r in _answer_rows([0.9] * 5, [0.8] * 5) if r["backbone"] == "dino"])
    assert "only linear dino was run" in alone["sentence"]


def test_the_report_opens_with_the_answer(store, tmp_path):
    text = open(write_report(store, str(tmp_path / "r"), "md")).read()
    first = text.split("\n\n")[1:3]
    assert first[0] == "## The answer: best method per dataset and training-set size"
    assert first[1].startswith("pneumonia, 50 images (S): linear dino (4 views) is best")
    result = CliRunner().invoke(main, ["report", "--results", store.root, "--out", str(tmp_path / "r2")])
    assert result.output.splitlines()[0].startswith("pneumonia, 50 images (S): linear dino (4 views) is best")


def test_report_command(store, tmp_path):
    result = CliRunner().invoke(main, ["report", "--results", store.root, "--out", str(tmp_path / "r"), "--format", "html"])
    assert result.exit_code == 0, result.output
    assert os.path.exists(tmp_path / "r" / "report.html")
    empty = CliRunner().invoke(main, ["report", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "r2")])
    assert empty.exit_code == 2 and "not a medsweep results directory" in empty.output


def test_paper_figures_stand_only_beside_the_papers_studies_in_a_store_of_paper_and_paper_plus(tmp_path):
    """A paper_plus variant (heads without augmentation, the 3-token DVME) in the paper grid's
    store: the paper's figures beside the paper's studies only, and Table 4's best single
    backbone from the paper's linear studies, though the variant scores higher."""
    import dataclasses

    from sweep.grids import load_grid
    from tests.sweep.store.test_store import _row

    store = ResultsStore(str(tmp_path / "results"))
    store.open_for("paper")
    store.open_for("paper_plus", allow_other_grid=True)
    wanted = {("linear", ("dino",)): {"paper": 0.985, "paper_plus": 0.995},
              ("linear", ("swav",)): {"paper": 0.95}, ("linear", ("simclr",)): {"paper": 0.94},
              ("dvme", ("simclr", "swav", "dino")): {"paper": 0.97, "paper_plus": 0.96}}
    for grid in ("paper", "paper_plus"):
        for study in load_grid(grid):
            score = wanted.get((study.mode, study.backbones), {}).get(grid)
            if (study.dataset, study.subset, study.attention) != ("pneumonia", "F", True) or score is None:
                continue
            if grid == "paper_plus" and study.mode == "dvme" and study.attention_form != "token":
                continue  # the 3-token variant only
            fields = {**dataclasses.asdict(study), "n_train": 5216, "backbones": list(study.backbones),
                      "backbone": study.backbone}
            study_id = f"{grid}-{study.mode}-{study.backbone}-{study.fold}"
            store.write_trial(_row(**{**fields, "study": study_id, "trial": f"{study_id}-t", "val": 0.9,
                                      "test": score + study.fold / 1000, "cell_id": f"{grid}-{study.mode}-{study.backbone}",
                                      "epochs": 10, "metric": "auc"}))
    text = open(write_report(store, str(tmp_path / "report"), "md")).read()
    table2 = text.split("## Table 2", 1)[1].split("\n## ", 1)[0]
    assert "| pneumonia | linear dino (4 views) | 0.9870 ± 0.0016 · paper 0.9868 ± 0.0008 (Δ +0.0002) |" in table2
    assert "| pneumonia | linear dino | 0.9970 ± 0.0016 · no paper figure |" in table2  # views 1: paper_plus
    table4 = text.split("## Table 4", 1)[1].split("\n## ", 1)[0]
    assert "(listing attention, 4 views) | 0.9720 ± 0.0016 · paper" in table4
    assert "(3-token attention, 4 views) | 0.9620 ± 0.0016 · no paper figure |" in table4
    # The paper's best single backbone of its set is its augmented DINO, not the 0.997 variant.
    assert "| pneumonia | best single backbone (linear) | 0.9870 ± 0.0016 (dino) · paper 0.9868 ± 0.0008 |" in table4
