"""A sweep writes only into its results and cache directories: nothing into the working
directory, the home directory, the temporary directory or its inputs (weights, the project);
and the Ray it starts serves no dashboard."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import timm
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tree(folder):
    """Every file under ``folder`` with its content digest."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(d, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _project_files():
    listed = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                            capture_output=True, text=True)
    return None if listed.returncode else set(listed.stdout.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("store", ["path", "uri"])
def test_a_sweep_writes_only_into_its_results_and_cache(tmp_path, store):
    """``uri``: the store and the cache at ``local://`` URIs, which reach the disk through fsspec
    as an object store's (no rename, no memory map): the sweep's run log, which went to the
    temporary directory for such a store, lands in RESULTS/logs/ too."""
    home, cwd, tmp, results, cache, inputs = (tmp_path / n for n in ("home", "cwd", "tmp", "results", "cache", "inputs"))
    for folder in (home, cwd, tmp, inputs):
        folder.mkdir()
    # Ray's own session files (sockets, logs) go to its temp dir: a short path of its own, as
    # a Unix socket path must stay under 108 bytes; it is Ray's runtime, not the sweep's output.
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    weights = inputs / "resnet.pth"
    torch.save(timm.create_model("test_resnet", pretrained=False, num_classes=0).state_dict(), weights)
    before_inputs, before_project = _tree(inputs), _project_files()
    # A new user's shell: no Ray settings (the tests' own Ray sets RAY_AUTH_MODE in this process).
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k != "MEDSWEEP_LOCAL_CACHE"}
    env.update(HOME=str(home), TMPDIR=str(tmp), RAY_TMPDIR=ray_tmp, RAY_ADDRESS="local",
               PYTHONPATH=ROOT, XDG_CACHE_HOME=str(home / ".cache"), MPLCONFIGDIR=str(home / ".mpl"))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sweep.cli", "run", "--grid", "demo", "--where", "subset=S", "--where", "fold=0",
             "--where", "backbones=test_resnet", "--where", "mode=linear,finetune", "--weights", f"test_resnet={weights}",
             "--results", f"local://{results}" if store == "uri" else str(results),
             "--cache", f"local://{cache}" if store == "uri" else str(cache), "--checkpoint-every", "0", "--quiet"],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
        )
        ray_logs = {f: open(os.path.join(d, f), errors="replace").read()
                    for d, _, files in os.walk(ray_tmp) for f in files if f.endswith((".log", ".out", ".err"))}
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    # The sweep's own Ray serves no dashboard: its API process runs minimal, without the web
    # server (which would log "Dashboard head http address: HOST:8265").
    assert "dashboard.log" in ray_logs and "http address" not in "".join(ray_logs.values())
    assert any(f.startswith("trials/") for f in _tree(results)) and _tree(cache)
    assert len([f for f in _tree(results) if f.startswith("logs/run-")]) == 1
    # A remote cache's files are memory-mapped from node-local copies: the one place outside.
    node_local = {f for f in _tree(home) if f.startswith(".cache/medsweep/") and f.endswith(".arrow")}
    assert bool(node_local) == (store == "uri")
    assert _tree(cwd) == {} and set(_tree(home)) == node_local and _tree(tmp) == {}
    assert _tree(inputs) == before_inputs
    if before_project is not None:
        assert _project_files() == before_project
