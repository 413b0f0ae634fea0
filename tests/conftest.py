import os

import pytest

# Tests run on 2 cores beside Ray workers: one torch thread each keeps them from fighting.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the tests that need it (starting one costs ~3 s)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
