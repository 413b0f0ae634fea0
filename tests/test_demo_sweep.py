"""The README's first command, end to end: `sweep run --grid demo` on this machine's CPUs."""

import os
import subprocess
import sys

import pytest

from sweep.store.store import ResultsStore


@pytest.mark.slow
def test_demo_sweep_end_to_end(tmp_path):
    sweep = os.path.join(os.path.dirname(sys.executable), "sweep")
    results = tmp_path / "results"
    env = {**os.environ, "RAY_ADDRESS": "local"}  # its own Ray, never a test fixture's
    proc = subprocess.run(
        [sweep, "run", "--grid", "demo", "--results", str(results)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # A clean console: Ray's and Tune's own output is in the run's log, named on the first line.
    assert proc.stderr == "" and out.startswith(f"Ray's and Tune's own output: {results}/logs/run-")
    log = (results / "logs" / out.splitlines()[0].rsplit("/", 1)[1]).read_text()
    for noise in ("Token authentication", "Number of trials", "tensorboard", "pid="):
        assert noise not in out
    assert "Number of trials" in log and "pid=" in log
    # The 250 images the largest subset draws (S is inside M) and the 540 test images, not the pool of 1,257.
    assert "extracted digits x test_resnet view 0: 790 images in " in out
    assert "trials 235/235, studies 85/85 complete" in out
    assert "17 cells, 85 studies (0 already complete), 235 trials" in out
    assert f"results: {results}" in out
    printed = _printed_cells(out)
    rows = ResultsStore(str(results)).read_trials().to_pylist()
    assert len(rows) == 235 and all(r["status"] == "ok" for r in rows)
    assert 0 < sum(r["stopped_early"] for r in rows) < 150
    # The probes report once (one "epoch" each) and ASHA never stops them.
    probes = [r for r in rows if r["mode"] in ("logistic", "knn")]
    assert len(probes) == 60 and all(r["epochs"] == 1 and not r["stopped_early"] for r in probes)
    assert all(float(r["lr"]).is_integer() and 1 <= r["lr"] <= 200 for r in probes if r["mode"] == "knn")
    assert all(1e-6 <= r["lr"] <= 1e5 for r in probes if r["mode"] == "logistic")
    # Few-shot: one trial per study, the mean and std of its 20 episodes.
    fewshot = [r for r in rows if r["mode"] == "fewshot"]
    assert len(fewshot) == 25 and {r["shots"] for r in fewshot} == {1, 2, 4, 8, 16}
    assert all(r["episodes"] == 20 and r["epochs"] == 1 and r["test_score_std"] > 0 for r in fewshot)
    assert all(r["shots"] == 0 and r["test_score_std"] is None for r in rows if r["mode"] != "fewshot")
    cells = subprocess.run(
        [sweep, "results", "--results", str(results), "--level", "cells", "--format", "json"],
        capture_output=True, text=True, check=True,
    )
    import json

    cells = json.loads(cells.stdout)
    assert len(cells) == 17 and all(c["folds"] == 5 for c in cells)
    # The table `sweep run` printed holds exactly these cells, each with its mean ± std and
    # its bootstrap 95% interval.
    from sweep.store.formatting import interval, mean_std

    assert printed == {(c["backbone"], c["mode"], c["subset"], str(c["n_train"]), c["metric"],
                        mean_std(c["mean"], c["std"]), interval(c["ci_low"], c["ci_high"]), str(c["folds"]),
                        str(c["trials"])) for c in cells}
    assert sum(int(p[-1]) for p in printed) == 235
    assert {c["mode"] for c in cells} == {"linear", "finetune", "dvme", "logistic", "knn", "fewshot"}
    assert {c["n_train"] for c in cells} == {50, 250}
    # Every cell's interval holds its mean; few-shot cells have their episodes' spread too.
    assert all(c["ci_low"] < c["mean"] < c["ci_high"] for c in cells)
    assert all((c["episode_std"] is not None) == (c["mode"] == "fewshot") for c in cells)
    shots = sorted((c["shots"], c["mean"]) for c in cells if c["mode"] == "fewshot")
    assert [m for _, m in shots] == sorted(m for _, m in shots)  # more shots, better centroids
    # Random tiny features are weak but informative: every cell beats chance (AUC 0.5).
    assert all(c["mean"] > 0.6 for c in cells)
    # The answer follows the table: per size, the best cell named first.
    for n, label in ((50, "S"), (250, "M")):
        best = max((c for c in cells if c["n_train"] == n and not c["shots"]), key=lambda c: c["mean"])
        (line,) = [line for line in out.splitlines() if line.strip().startswith(f"digits, {n} images ({label}):")]
        assert f"{best['mode']} {best['backbone']}" in line and mean_std(best["mean"], best["std"]) in line
    # The report on the demo: tables for every mode, and the size-curve and t-SNE plots.
    report = tmp_path / "report"
    subprocess.run([sweep, "report", "--results", str(results), "--out", str(report), "--tsne-points", "300"],
                   capture_output=True, text=True, check=True)
    text = (report / "report.md").read_text()
    for section in ("Table 2: linear evaluation", "Table 3: finetuning", "Table 4: DVME", "Paired comparisons",
                    "Probe: logistic", "Probe: knn", "Probe: fewshot"):
        assert section in text
    plots = {p.name for p in (report / "plots").iterdir()}
    assert {"size_digits_frozen.png", "size_digits_finetune.png", "size_digits_fewshot.png", "tsne_digits.png",
            "tsne_digits_dvme.png"} <= plots


def _printed_cells(out: str) -> set:
    """The rows of the cells table ``sweep run`` printed, as tuples of its columns after the
    dataset: backbone, mode, subset, n_train, metric, mean ± std, 95% CI, folds, trials."""
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:3] == ["dataset", "backbone", "mode"])
    rows = set()
    for line in lines[head + 2:]:
        if not line.strip():
            break
        parts = line.split()
        assert parts[0] == "digits", line
        # dataset backbone mode subset n_train metric MEAN ± STD [LOW, HIGH] folds trials
        rows.add((parts[1], parts[2], parts[3], parts[4], parts[5], " ".join(parts[6:9]), " ".join(parts[9:11]),
                  parts[11], parts[12]))
    return rows
