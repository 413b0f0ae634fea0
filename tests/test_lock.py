"""The one lock: this venv is exactly requirements.lock, the lock serves every supported
platform and Python within pyproject's ranges, and every install goes through it."""

import importlib.metadata
import os
import re
import sysconfig

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ImportError:  # Python 3.10: pytest itself depends on tomli there, so the lock has it
    import tomli as tomllib

from tests.lock import LOCK, ROOT, environment, lock_lines, locked_versions

# The installer's own tools: a venv brings them at whatever version its Python ships.
NOT_LOCKED = {"medsweep", "pip", "setuptools"}

REFRESH = ".ci/refresh-lock"

# Where a user or a cluster node installs medsweep: Linux GPU nodes (x86_64 and Grace's aarch64),
# a Mac laptop, a Windows workstation, each Python that pyproject admits and torch has wheels for.
ENVIRONMENTS = {
    "linux-x86_64-py3.10": dict(python_full_version="3.10.14"),
    "linux-x86_64-py3.11": dict(python_full_version="3.11.9"),
    "linux-x86_64-py3.12": dict(python_full_version="3.12.7"),
    "linux-x86_64-py3.13": dict(python_full_version="3.13.1"),
    "linux-aarch64-py3.12": dict(python_full_version="3.12.7", platform_machine="aarch64"),
    "macos-arm64-py3.12": dict(python_full_version="3.12.7", sys_platform="darwin",
                               platform_system="Darwin", platform_machine="arm64"),
    "windows-amd64-py3.11": dict(python_full_version="3.11.9", sys_platform="win32",
                                 platform_system="Windows", platform_machine="AMD64", os_name="nt"),
}
LINUX = dict(sys_platform="linux", platform_system="Linux", platform_machine="x86_64", os_name="posix")


def _environment(key):
    return environment(**{**LINUX, **ENVIRONMENTS[key]})


def _pyproject_requirements():
    """pyproject's dependencies and those of every extra, as (requirement, where) pairs."""
    from packaging.requirements import Requirement

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    pairs = [(Requirement(r), "dependencies") for r in project["dependencies"]]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        pairs += [(Requirement(r), f"extra {extra}") for r in reqs]
    return pairs


def _installed():
    """{canonical name: Distribution} of what is installed into this venv's site-packages.
    Not all of sys.path: Ray puts the copies of psutil and colorama it carries on it when
    imported (ray/thirdparty_files), which are Ray's files, not installed distributions."""
    found = {}
    folders = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    for dist in importlib.metadata.distributions(path=folders):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def test_this_venv_holds_exactly_the_locked_versions():
    pins = locked_versions()
    drift = []
    for name, dist in sorted(_installed().items()):
        if name in NOT_LOCKED:
            continue
        if name not in pins:
            drift.append(f"{name} {dist.version} is installed, and the lock has no pin for it")
        elif Version(pins[name]) != Version(dist.version):
            drift.append(f"{name} is installed at {dist.version}, and the lock pins {pins[name]}")
    assert not drift, (
        "this venv has drifted from requirements.lock:\n  " + "\n  ".join(drift)
        + "\ninstall through the lock (pip install -c requirements.lock -e '.[test]') in a fresh"
        f" venv, or refresh the lock ({REFRESH}) and run the suite on the result")


@pytest.mark.parametrize("key", sorted(ENVIRONMENTS))
def test_the_lock_serves_each_platform_within_pyprojects_ranges(key):
    """Every requirement of pyproject (every extra too) has one pin in its range there, and so
    has every requirement, in that environment, of each distribution installed here at the
    version pinned there (torch's CUDA wheels on Linux, say), all the way down."""
    env = _environment(key)
    pins = locked_versions(env)  # raises on two pins of one name or a pin that is not exact
    installed = _installed()
    missing = []
    todo = [(req, where, "") for req, where in _pyproject_requirements()]
    expanded = set()
    while todo:
        req, where, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            missing.append(f"{req} ({where}) has no pin")
            continue
        if not req.specifier.contains(pins[name], prereleases=True):
            missing.append(f"{req} ({where}) is not met by the pin {name}=={pins[name]}")
        # Only the metadata of the very release pinned there says what it requires.
        if name not in installed or Version(installed[name].version) != Version(pins[name]):
            continue
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) in expanded:
                continue
            expanded.add((name, wanted))
            for dep in installed[name].requires or []:
                todo.append((type(req)(dep), f"required by {name}", wanted))
    assert not missing, f"requirements.lock on {key}:\n  " + "\n  ".join(missing)


def test_torchs_cuda_wheels_are_pinned_for_linux_only():
    def cuda(env):
        return {n for n in locked_versions(env) if n.startswith(("nvidia-", "cuda-"))}

    assert "nvidia-cublas" in cuda(_environment("linux-x86_64-py3.11"))
    assert cuda(_environment("macos-arm64-py3.12")) == set()
    assert cuda(_environment("windows-amd64-py3.11")) == set()


def test_the_lock_is_the_refresh_commands_output_and_the_only_pin_file():
    with open(LOCK) as f:
        header = f.read(300)
    assert f"#    {REFRESH}\n" in header  # written by the documented command, not by hand
    assert os.access(os.path.join(ROOT, REFRESH), os.X_OK)
    assert not os.path.exists(os.path.join(ROOT, "constraints.txt"))  # one file, not two
    assert len(lock_lines()) > 100  # transitive distributions too, not only the direct ones


def test_every_install_goes_through_the_lock():
    readme = open(os.path.join(ROOT, "README.md")).read()
    first_command = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    for text, where in ((first_command, "the README's install"), (ci, ".ci/run")):
        installs = [line for line in text.splitlines() if "pip install" in line]
        assert installs and all("-c requirements.lock" in line for line in installs), where
    assert REFRESH in readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
