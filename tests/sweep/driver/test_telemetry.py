"""Ray Tune's callback census (sweep/driver/telemetry.py): a Tuner with callbacks started inside
``callback_census_skipped`` does not import MLflow, and one started outside does. Each in a
fresh interpreter: the suite's own process has imported MLflow long before (its MLflow test)."""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# Two one-report Tuners with one callback each, on one Ray of its own: the first inside the
# block, the second outside; after each, whether the census ran (Ray's MLflow integration
# imported) and whether Ray's own function is in place.
TUNERS = textwrap.dedent("""
    import sys, tempfile
    import ray
    from ray import tune
    from ray.air._internal import usage
    from sweep.driver.telemetry import callback_census_skipped

    original = usage.tag_callbacks
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)

    def fit():
        tuner = tune.Tuner(lambda config: {"score": 1.0},
                           run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0,
                                                     callbacks=[tune.Callback()]))
        assert tuner.fit().get_best_result("score", "max").metrics["score"] == 1.0
        print("census-ran" if "ray.air.integrations.mlflow" in sys.modules else "census-skipped",
              usage.tag_callbacks is original)

    with callback_census_skipped():
        fit()
    fit()
    ray.shutdown()
""")


def test_a_tuner_started_inside_skips_the_census_that_imports_mlflow_and_ray_gets_its_function_back():
    pytest.importorskip("mlflow", reason="the census costs nothing where MLflow is not installed")
    proc = subprocess.run([sys.executable, "-c", TUNERS], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    inside, outside = [line for line in proc.stdout.splitlines() if line.startswith("census-")]
    assert inside == "census-skipped False"  # Ray's function replaced while the block runs
    # The reference: the same Tuner outside imports MLflow, with Ray's function back. When a
    # Ray release stops importing it, this fails and sweep/driver/telemetry.py can go.
    assert outside == "census-ran True"
