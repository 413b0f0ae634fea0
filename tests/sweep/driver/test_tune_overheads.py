"""Ray Tune's driver costs that sweep/driver/tune_overheads.py avoids, each checked on real
Tuners in a fresh interpreter (the suite's own process imported MLflow long before, in its
MLflow test): the same Tuner inside ``tune_overheads_avoided`` and outside it. Outside is the
reference: when a Ray release no longer has a cost, its assertion fails and the work-around
can go."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# Two Tuners of 4 trials (one CPU, so the trials reuse one actor), with one callback each, on
# one Ray of its own: the first inside the block, the second outside. After each: whether
# the census ran (Ray's MLflow integration imported), how many times the registry went to
# Ray's store for a trainable, and whether Ray's own functions are in place again.
TUNERS = textwrap.dedent('''
    import sys, tempfile
    import ray
    from ray import tune
    from ray.air._internal import usage
    from ray.tune import registry
    from sweep.driver.tune_overheads import tune_overheads_avoided

    census = usage.tag_callbacks
    lookups = []
    kv_get = registry._internal_kv_get

    def counted(key, *args, **kwargs):
        if registry.TRAINABLE_CLASS.encode() in (key if isinstance(key, bytes) else key.encode()):
            lookups.append(key)
        return kv_get(key, *args, **kwargs)

    registry._internal_kv_get = counted
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)

    def fit():
        lookups.clear()
        tuner = tune.Tuner(lambda config: {"score": config["x"]},
                           param_space={"x": tune.grid_search([1.0, 2.0, 3.0, 4.0])},
                           tune_config=tune.TuneConfig(reuse_actors=True),
                           run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0,
                                                     callbacks=[tune.Callback()]))
        results = tuner.fit()
        assert sorted(r.metrics["score"] for r in results) == [1.0, 2.0, 3.0, 4.0]
        print("census-ran" if "ray.air.integrations.mlflow" in sys.modules else "census-skipped",
              len(lookups), usage.tag_callbacks is census and "get" not in vars(registry._global_registry))

    with tune_overheads_avoided():
        fit()
    fit()
    ray.shutdown()
''')


@pytest.fixture(scope="module")
def inside_and_outside() -> tuple[list[str], list[str]]:
    proc = subprocess.run([sys.executable, "-c", TUNERS], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    inside, outside = [line.split() for line in proc.stdout.splitlines() if line.startswith("census-")]
    return inside, outside


def test_the_callback_census_that_imports_mlflow_is_skipped_inside_and_ray_gets_its_function_back(inside_and_outside):
    pytest.importorskip("mlflow", reason="the census costs nothing where MLflow is not installed")
    inside, outside = inside_and_outside
    assert inside[0] == "census-skipped" and inside[2] == "False"  # Ray's function replaced meanwhile
    assert outside[0] == "census-ran" and outside[2] == "True"


def test_the_trainable_is_read_from_rays_store_once_per_tuner_inside_instead_of_for_every_trial(inside_and_outside):
    inside, outside = inside_and_outside
    assert int(inside[1]) <= 2  # found, then fetched: once each for the Tuner's 4 trials
    assert int(outside[1]) >= 2 * 4  # Tune's own: at least twice a trial
