"""The wheels that let ``benchmarks/device_check.py`` run on a GPU machine that has no package index.

A GPU machine lent for a check (or a user's offline GPU node) often comes with its own Python
and a CUDA build of torch, torchvision and the usual scientific stack already installed, and no
way to reach PyPI. medsweep's own dependencies that it lacks (Ray, Optuna and theirs, pydicom,
TorchCodec, ...) have to travel with the working tree. Run here, where the index is reachable:

    .venv/bin/python benchmarks/device_wheels.py [--python 3.12] [--have FILE] [--carry NAME ...]
                                                 [--out .device-wheels] [--limit-mib 64]

It walks medsweep's requirements (no extras: ``device_check`` needs none; pytest and hypothesis,
which its GPU tests need, are on the image) through the installed distributions' metadata,
with their environment markers evaluated for the target (CPython ``--python`` on x86_64
Linux), takes each missing distribution's version from ``requirements.lock``, and downloads
its wheel for the target. Ray's wheel (79 MB) alone is over what a device call carries (64 MiB
with the working tree), and a third of it is the Java workers' jar: rewritten without it (and
without the dashboard's web client, which runs only with ``ray[default]``), LZMA-compressed,
with its RECORD to match, so pip installs it as any wheel; TorchCodec's FFmpeg libraries
likewise (``UNUSED_PARTS``). It adds medsweep's own wheel, prints the total size, and the
command to run there:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \\
        .device-wheels/*.whl && PYTHONPATH=/tmp/site:$PWD python3 benchmarks/device_check.py $OUT

``/tmp/site`` comes first on the path, so a carried version is the one imported.

What the target has: ``--have FILE``, one name per line or ``pip list --format=freeze``'s
``NAME==VERSION`` lines, read there; by default the package list of the workplace image that
lent GPU machines run (``IMAGE_PACKAGES``). ``--carry NAME`` takes a distribution along even
where the target has it (default: timm, whose model names and weight loading medsweep is
tested against at the lock's version; a small pure-Python wheel). Exit 1 when a wheel is
missing for the target or the folder exceeds ``--limit-mib`` less the working tree.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The packages of the image ('cuda') that the workplace's lent GPU machines run, as its list was
# read on 2026-11-17 (Python 3.12.3; torch 2.11.0+cu130, torchvision 0.26.0, numpy 2.5.2,
# transformers 5.17.0, huggingface_hub 1.33.0 among them). --have replaces it.
IMAGE_PACKAGES = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning
pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers
toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
xxhash yarl zipp
""".split()

CARRY_ALWAYS = ("timm",)
# Parts of wheels that medsweep never loads, removed so that the folder travels (a device call
# carries 64 MiB): Ray's Java workers' jar (a third of its wheel) and its dashboard's web client
# (served only by ray[default]'s dashboard); TorchCodec's FFmpeg libraries, one pair per FFmpeg
# version, which only its video decoders load (its JPEG decoder, and nvJPEG, need none: it
# imports without them, as it does where FFmpeg is not installed).
UNUSED_PARTS = {
    "ray": (re.compile(r"^ray/jars/"), re.compile(r"^ray/dashboard/client/build/")),
    "torchcodec": (re.compile(r"^torchcodec/libtorchcodec_(core|custom_ops)\d+\.so$"),),
}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


class WheelsError(Exception):
    """What stops the folder: named, with what was expected."""


def target_environment(python: str) -> dict:
    """The marker environment of CPython ``python`` (e.g. "3.12") on x86_64 Linux."""
    if not re.fullmatch(r"3\.\d+", python):
        raise WheelsError(f"--python {python!r}: expected a CPython version as MAJOR.MINOR, e.g. 3.12")
    env = default_environment()
    env.update(python_version=python, python_full_version=f"{python}.0", sys_platform="linux",
               platform_system="Linux", platform_machine="x86_64", os_name="posix", implementation_name="cpython",
               platform_python_implementation="CPython")
    return env


def lock_pins(lock_path: str, env: dict) -> dict[str, str]:
    """{canonical name: version} of every line of the lock whose marker holds for ``env``."""
    pins = {}
    with open(lock_path) as f:
        for number, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                requirement = Requirement(text)
            except InvalidRequirement as exc:
                raise WheelsError(f"{lock_path}:{number}: {text!r}: expected NAME==VERSION ({exc})") from None
            versions = [s.version for s in requirement.specifier if s.operator == "=="]
            if len(versions) != 1:
                raise WheelsError(f"{lock_path}:{number}: {text!r}: expected NAME==VERSION")
            if requirement.marker is None or requirement.marker.evaluate(env):
                pins[canonicalize_name(requirement.name)] = versions[0]
    return pins


def requirement_closure(root: str, env: dict, have: frozenset = frozenset()) -> set[str]:
    """Canonical names of ``root``'s distribution and everything it requires for ``env``, no
    extras but those a requirement names itself (``ray[tune]``), from the installed metadata.
    What ``have`` names is in, but not what it requires: the target's own installs bring theirs."""
    needed: set[str] = set()
    pending = [(root, frozenset())]
    seen = set()
    while pending:
        name, extras = pending.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        needed.add(key[0])
        if key[0] in have:
            continue
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            raise WheelsError(f"{name}: not installed here, so its requirements are unknown; install medsweep "
                              f"through the lock first (the README's first command)") from None
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is not None and not any(
                    requirement.marker.evaluate({**env, "extra": extra}) for extra in (extras or {""})):
                continue
            pending.append((requirement.name, frozenset(requirement.extras)))
    return needed


def read_have(path: str) -> set[str]:
    """Canonical names in a file of one name, or NAME==VERSION, per line."""
    names = set()
    with open(path) as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            name = re.split(r"[=<>~!@ ;\[]", text, maxsplit=1)[0]
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
                raise WheelsError(f"{path}:{number}: {text!r}: expected a distribution name or NAME==VERSION")
            names.add(canonicalize_name(name))
    return names


def wheels_to_carry(needed: set[str], have: set[str], carry: set[str], pins: dict[str, str]) -> dict[str, str]:
    """{name: version}: what the target lacks (or must take along), at the lock's versions."""
    wanted = sorted((needed - have - {"medsweep"}) | (carry & needed))
    unpinned = [n for n in wanted if n not in pins]
    if unpinned:
        raise WheelsError(f"not in requirements.lock for this target: {', '.join(unpinned)}; expected every "
                          f"dependency pinned (.ci/refresh-lock)")
    return {n: pins[n] for n in wanted}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def slim_wheel(path: str, unused) -> int:
    """Rewrites the wheel at ``path`` without the members matching any of ``unused``, its RECORD
    listing exactly what is left (each member's hash and size as the wheel format states);
    the bytes removed."""
    before = os.path.getsize(path)
    slimmed = path + ".slim"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(slimmed, "w") as target:
        members = [m for m in source.infolist() if not any(p.search(m.filename) for p in unused)]
        record_name = next((m.filename for m in members if m.filename.endswith(".dist-info/RECORD")), None)
        if record_name is None:
            raise WheelsError(f"{path}: no .dist-info/RECORD: not a wheel")
        rows = []
        for member in members:
            if member.filename == record_name:
                continue
            data = source.read(member)
            # The ZipInfo keeps the file's mode (executables stay so). LZMA: the native binaries
            # shrink by a further third; pip reads any method Python's zipfile does.
            target.writestr(member, data, compress_type=zipfile.ZIP_LZMA)
            rows.append(f"{member.filename},{_record_hash(data)},{len(data)}")
        rows.append(f"{record_name},,")
        target.writestr(source.getinfo(record_name), "\n".join(rows) + "\n")
    os.replace(slimmed, path)
    return before - os.path.getsize(path)


def download(wanted: dict[str, str], out: str, python: str) -> list[str]:
    """pip's download of each wheel, binary only, for the target; the files."""
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp", *platforms, "--dest", out,
           *(f"{n}=={v}" for n, v in wanted.items())]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise WheelsError(f"pip download failed for CPython {python} on x86_64 Linux:\n{proc.stderr[-3000:]}")
    return sorted(os.path.join(out, f) for f in os.listdir(out) if f.endswith(".whl"))


def own_wheel(out: str) -> str:
    """medsweep's own wheel, built from this tree (no index: the build uses the setuptools
    installed here): installed there beside its dependencies, so that the package's metadata
    (its version, which every row records) is there as it is in a user's install."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "--wheel-dir", out, ROOT], capture_output=True, text=True)
    built = [f for f in os.listdir(out) if f.startswith("medsweep-") and f.endswith(".whl")]
    if proc.returncode != 0 or len(built) != 1:
        raise WheelsError(f"building medsweep's wheel failed:\n{proc.stderr[-3000:]}")
    return os.path.join(out, built[0])


def tree_bytes() -> int:
    """The working tree that travels with a device call: git's tracked and untracked, not ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum(os.path.getsize(os.path.join(ROOT, p.decode())) for p in listed
               if p and os.path.isfile(os.path.join(ROOT, p.decode())))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default="3.12", help="the target's CPython as MAJOR.MINOR (default 3.12)")
    parser.add_argument("--have", help="the target's distributions, a name or NAME==VERSION a line")
    parser.add_argument("--carry", nargs="*", default=list(CARRY_ALWAYS), help="take these along even if present")
    parser.add_argument("--out", default=os.path.join(ROOT, ".device-wheels"))
    parser.add_argument("--limit-mib", type=float, default=64.0, help="what a device call carries, tree included")
    args = parser.parse_args(argv)
    try:
        env = target_environment(args.python)
        have = read_have(args.have) if args.have else {canonicalize_name(n) for n in IMAGE_PACKAGES}
        pins = lock_pins(os.path.join(ROOT, "requirements.lock"), env)
        carry = {canonicalize_name(n) for n in args.carry}
        wanted = wheels_to_carry(requirement_closure("medsweep", env, frozenset(have - carry)), have, carry, pins)
        shutil.rmtree(args.out, ignore_errors=True)
        os.makedirs(args.out)
        files = download(wanted, args.out, args.python)
        for path in files:
            unused = UNUSED_PARTS.get(parse_wheel_filename(os.path.basename(path))[0])
            if unused:
                print(f"{os.path.basename(path)}: {slim_wheel(path, unused) / 2**20:.1f} MiB smaller (unused parts removed, LZMA)")
        got = {parse_wheel_filename(os.path.basename(f))[0] for f in files}
        if got != set(wanted):
            raise WheelsError(f"wheels missing for CPython {args.python}: {', '.join(sorted(set(wanted) - got))}")
        files.append(own_wheel(args.out))
        total = sum(os.path.getsize(f) for f in files)
        tree = tree_bytes()  # the folder itself is ignored (.gitignore): counted once, in total
        for path in files:
            print(f"{os.path.getsize(path) / 2**20:7.2f} MiB  {os.path.basename(path)}")
        print(f"{len(files)} wheels, {total / 2**20:.1f} MiB; with the working tree {(total + tree) / 2**20:.1f} MiB "
              f"of the {args.limit_mib:g} MiB a call carries")
        if total + tree > args.limit_mib * 2**20:
            raise WheelsError(f"{(total + tree) / 2**20:.1f} MiB exceeds --limit-mib {args.limit_mib:g}")
    except WheelsError as exc:
        print(f"device_wheels: {exc}", file=sys.stderr)
        return 1
    folder = os.path.relpath(args.out, ROOT)
    print("\nOn the device, from the repository's root (carry the folder):\n"
          f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "
          f"{folder}/*.whl && PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 benchmarks/device_check.py $OUT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
