"""requirements.lock read as pip reads it: each line an exact pin, kept where its marker holds.

The lock is universal (one file for every platform and Python medsweep supports), so a name may
have several lines with disjoint markers; in any one environment at most one of them applies.
"""

import os

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = os.path.join(ROOT, "requirements.lock")


def lock_lines(path=LOCK):
    """Every requirement of the lock, comments dropped."""
    with open(path) as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    return [Requirement(line) for line in lines if line]


def environment(**overrides):
    """This interpreter's marker environment with some variables set otherwise (another
    platform's ``sys_platform`` and ``platform_machine``, another Python)."""
    env = default_environment()
    env.update(overrides)
    if "python_full_version" in overrides:
        env["python_version"] = ".".join(overrides["python_full_version"].split(".")[:2])
    return env


def locked_versions(env=None, path=LOCK):
    """{canonical name: version} of the lock's pins whose markers hold in ``env`` (default: here).

    Raises ValueError for a line that is not one exact ``==`` pin, or for two lines of one
    name that both apply: pip would then install whichever it met first.
    """
    env = env or default_environment()
    pins = {}
    for req in lock_lines(path):
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise ValueError(f"{path}: {req} is not one exact pin (name==version)")
        name = canonicalize_name(req.name)
        if name in pins:
            raise ValueError(f"{path}: two pins of {req.name} apply on {env['sys_platform']} "
                             f"{env['platform_machine']} Python {env['python_full_version']}")
        pins[name] = specs[0].version
    return pins
