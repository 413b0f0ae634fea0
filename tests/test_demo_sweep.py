"""The README's first command, end to end: `sweep run --grid demo` on this machine's CPUs."""

import os
import subprocess
import sys

import pytest

from sweep.store import ResultsStore


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
    assert "8 cells, 40 studies (0 already complete), 150 trials" in out
    assert f"results: {results}" in out
    for mode in ("linear", "finetune", "dvme"):
        assert f" {mode} " in out
    rows = ResultsStore(str(results)).read_trials().to_pylist()
    assert len(rows) == 150 and all(r["status"] == "ok" for r in rows)
    assert 0 < sum(r["stopped_early"] for r in rows) < 150
    cells = subprocess.run(
        [sweep, "results", "--results", str(results), "--level", "cells", "--format", "json"],
        capture_output=True, text=True, check=True,
    )
    import json

    cells = json.loads(cells.stdout)
    assert len(cells) == 8 and all(c["folds"] == 5 for c in cells)
    assert {c["mode"] for c in cells} == {"linear", "finetune", "dvme"}
    assert {c["n_train"] for c in cells} == {50, 250}
    # Random tiny features are weak but informative: every cell beats chance (AUC 0.5).
    assert all(c["mean"] > 0.6 for c in cells)
    # The report on the demo: tables for every mode, and the size-curve and t-SNE plots.
    report = tmp_path / "report"
    subprocess.run([sweep, "report", "--results", str(results), "--out", str(report), "--tsne-points", "300"],
                   capture_output=True, text=True, check=True)
    text = (report / "report.md").read_text()
    for section in ("Table 2: linear evaluation", "Table 3: finetuning", "Table 4: DVME", "Paired comparisons"):
        assert section in text
    plots = {p.name for p in (report / "plots").iterdir()}
    assert {"size_digits_frozen.png", "size_digits_finetune.png", "tsne_digits.png", "tsne_digits_dvme.png"} <= plots
