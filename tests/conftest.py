import os
import tempfile

import pytest

# Tests run on 2 cores beside Ray workers: one torch thread each keeps them from fighting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Where transformers copies a repo's own code when a test trusts it: read once, at its import,
# so set before any test imports it (never the user's ~/.cache).
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="medsweep-test-hf-modules-"))


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the tests that need it (starting one costs ~3 s)."""
    import ray

    # address="local": a Ray of its own, even while another test's cluster runs on the machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """A ``memory://`` folder (fsspec's in-process filesystem) standing in for S3: no rename,
    no memory map, reached only through pyarrow's filesystem interface, as s3:// is."""
    fsspec = pytest.importorskip("fsspec")
    monkeypatch.setenv("MEDSWEEP_LOCAL_CACHE", str(tmp_path / "node-local"))
    root = f"memory://bucket-{os.getpid()}-{tmp_path.name}"
    yield root
    fsspec.filesystem("memory").rm(root.split("://", 1)[1], recursive=True)
