"""cluster.yaml passes Ray's own launcher validation (offline) and says what the README says."""

import os
import re

import yaml

from tests.lock import locked_versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config():
    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        return yaml.safe_load(f)


def test_ray_launcher_validation_accepts_it():
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(_config()))  # raises on any schema error


def test_node_types_resources_and_bounds():
    config = _config()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"]["CPU"] == 0  # the head runs the driver, no trials
    gpu_types = {name: t for name, t in types.items() if t["resources"].get("GPU")}
    assert sorted(t["resources"]["GPU"] for t in gpu_types.values()) == [1, 4]  # one small, one multi-GPU
    for t in types.values():
        assert all(isinstance(v, int) for v in t["resources"].values())  # Ray wants integers
    for t in gpu_types.values():
        assert 0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"]
        assert t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"


def test_every_node_installs_this_project_with_pinned_versions_and_no_credentials_are_in_it():
    config = _config()
    setup = "\n".join(config["setup_commands"])
    assert '-c ~/medsweep/requirements.lock -e "$HOME/medsweep[cluster]"' in setup
    assert config["file_mounts"]["~/medsweep"] == "."
    from importlib.metadata import version

    # A node is Linux x86_64 like this machine: the lock's pins here are the node's.
    pins = locked_versions()
    for name in ("ray", "torch", "torchvision", "optuna", "pyarrow", "timm", "numpy"):
        assert pins[name] == version(name), name  # the cluster runs what the tests ran
    text = open(os.path.join(ROOT, "cluster.yaml")).read()
    assert not re.search(r"(?i)aws_secret|aws_access_key|AKIA[0-9A-Z]{16}|password", text)


def test_the_readme_cluster_section_uses_this_file():
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme.split("## On a cluster", 1)[1].split("\n## ", 1)[0]
    for needed in ("ray up cluster.yaml", "--address auto", "ray down cluster.yaml", "--resume", "s3://"):
        assert needed in section, needed


def test_the_dashboard_listens_only_on_the_head_itself():
    start = " ".join(_config()["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start
