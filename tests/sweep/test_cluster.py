"""A sweep on several Ray nodes: ``ray.cluster_utils.Cluster`` brings up a head (no CPUs for
trials, as cluster.yaml's) and two workers that declare 2 GPUs each on this machine, and a
small grid runs through ``sweep run --address`` in its own process, as on a real cluster.
The GPUs are declared, not real: Ray schedules and packs by them, torch finds no CUDA and
trains on the CPU. (Never AutoscalingCluster: it kills every Ray process on the host.)
"""

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict

import pytest

from sweep.store.store import ResultsStore

MiB = 2**20


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, connect=False,
                    head_node_args={"num_cpus": 0, "object_store_memory": 80 * MiB})
    for _ in range(2):
        nodes.add_node(num_cpus=2, num_gpus=2, object_store_memory=80 * MiB)
    nodes.wait_for_nodes()
    yield nodes
    nodes.shutdown()


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.mark.slow
def test_a_grid_runs_on_several_nodes_packed_onto_fractional_gpus(cluster, tmp_path):
    results = f"file://{tmp_path}/results"  # a URI, as s3:// would be on a real cluster
    command = [
        sys.executable, "-m", "sweep.cli", "run", "--grid", "demo", "--where", "mode=linear", "--where", "subset=S",
        "--gpus-per-trial", "linear=0.25", "--cpus-per-trial", "linear=0.5",
        "--address", cluster.address, "--results", results, "--quiet",
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    rows = ResultsStore(results).read_trials().to_pylist()
    # Every result landed once, in one store: 10 studies (2 backbones x 5 folds) x 4 trials.
    assert len(rows) == 40 == len({r["trial_id"] for r in rows})
    assert all(r["status"] == "ok" for r in rows)
    # Trials ran on both workers (the head offers no CPUs).
    assert len({r["node_id"] for r in rows}) == 2
    # Each trial held a quarter of one GPU; packed: several trials on one GPU at once, never
    # more than the fraction allows.
    by_gpu = defaultdict(list)
    for r in rows:
        (gpu,) = json.loads(r["gpu_ids"])
        assert r["gpus"] == 0.25
        by_gpu[(r["node_id"], gpu)].append((r["started_at"], r["started_at"] + r["wall_s"]))
    most = max(_most_at_once(v) for v in by_gpu.values())
    assert 2 <= most <= 4, by_gpu


@pytest.mark.slow
def test_a_lost_node_costs_only_the_work_in_flight(cluster, tmp_path):
    """A worker node dies mid-sweep (a reclaimed spot instance): its trials run again on the
    other node from their checkpoints in the shared store; every trial lands once."""
    import time

    from ray._private import ray_constants

    from tests.faults import checkpoint_epochs, children_of, frozen, in_flight, parent, processes_titled, running_trial

    store = ResultsStore(str(tmp_path / "results"))
    command = [
        sys.executable, "-m", "sweep.cli", "run", "--grid", "demo", "--where", "mode=finetune", "--where", "subset=S",
        "--where", "fold=0,1,2,3", "--checkpoint-every", "0", "--max-failures", "3",
        "--address", cluster.address, "--results", store.root, "--quiet",
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    sweep = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    raylets = {n.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid: n for n in cluster.worker_nodes}
    lost, on_lost, struck, resumable = None, set(), None, {}
    try:
        deadline = time.time() + 300
        while lost is None and time.time() < deadline and sweep.poll() is None:
            # The state to strike in: a running trial has a checkpoint of epoch 1, before
            # ASHA's first rung (grace 2), so it can be neither stopped nor finished before its
            # node goes. The driver and every worker process of the cluster are frozen while
            # the state is read, and the lost node's processes die frozen, all at once, as
            # they do when a machine is reclaimed.
            if processes_titled() and 1 in in_flight(store).values():
                with frozen([sweep.pid] + children_of(raylets)) as stopped:
                    saved = in_flight(store)
                    for pid in stopped:
                        if pid != sweep.pid and saved.get(running_trial(pid, saved)) == 1:
                            struck = running_trial(pid, saved)
                            raylet = parent(pid)
                            lost = raylets[raylet]
                            doomed = [p for p in stopped if p != sweep.pid and parent(p) == raylet]
                            on_lost = {running_trial(p, saved) for p in doomed} - {None}
                            for victim in doomed:
                                os.kill(victim, signal.SIGKILL)
                            cluster.remove_node(lost, allow_graceful=False)
                            # What they go on from: each one's .pt, read with its process dead.
                            resumable = checkpoint_epochs(store, on_lost)
                            break
            time.sleep(0.02)
        out, err = sweep.communicate(timeout=600)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert lost is not None, "no node was removed mid-sweep"
    assert sweep.returncode == 0, out[-2000:] + err[-4000:]
    rows = store.read_trials().to_pylist()
    assert len(rows) == 12 == len({r["trial_id"] for r in rows})  # 4 studies x 3 trials, each once
    assert all(r["status"] == "ok" and r["epochs"] >= 1 for r in rows)
    resumed = [r for r in rows if r["resumed_from_epoch"] is not None]
    # The lost node's trials with a checkpoint, and only those, went on from exactly that
    # checkpoint (the one struck at epoch 1 among them).
    assert {r["trial_id"] for r in resumed} == set(resumable)
    assert struck in resumable
    assert all(r["resumed_from_epoch"] == resumable[r["trial_id"]] for r in resumed)
    assert all(r["node_id"] != lost.node_id for r in resumed)  # went on elsewhere
