"""benchmarks/device_wheels.py: what a GPU machine without a package index is given to run
medsweep, and wheels slimmed so that they travel, still installable by pip."""

import base64
import hashlib
import os
import stat
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import device_wheels as dw  # noqa: E402


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel(path, files: dict, modes: dict) -> None:
    """A wheel as the format states it: the files, METADATA, WHEEL and a RECORD of them all."""
    info = "toolpkg-1.0.dist-info"
    files = {**files, f"{info}/METADATA": b"Metadata-Version: 2.1\nName: toolpkg\nVersion: 1.0\n",
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},{_hash(data)},{len(data)}\n" for name, data in files.items()) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in {**files, f"{info}/RECORD": record.encode()}.items():
            member = zipfile.ZipInfo(name)
            member.external_attr = (stat.S_IFREG | modes.get(name, 0o644)) << 16  # as wheel builders write it
            z.writestr(member, data, compress_type=zipfile.ZIP_DEFLATED)


def test_a_slimmed_wheel_loses_only_the_unused_parts_and_pip_still_installs_it(tmp_path):
    wheel = tmp_path / "toolpkg-1.0-py3-none-any.whl"
    _wheel(wheel, {"toolpkg/__init__.py": b"VALUE = 42\n", "toolpkg/jars/dist.jar": os.urandom(200_000),
                   "toolpkg/bin/server": b"#!/bin/sh\necho served\n"}, {"toolpkg/bin/server": 0o755})
    removed = dw.slim_wheel(str(wheel), (dw.re.compile(r"^toolpkg/jars/"),))
    assert removed > 190_000  # the random jar does not compress: its bytes are what goes
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "toolpkg/jars/dist.jar" not in names and "toolpkg/bin/server" in names
        rows = dict((line.split(",", 1)[0], line.split(",", 1)[1]) for line in z.read(
            "toolpkg-1.0.dist-info/RECORD").decode().splitlines())
        # RECORD names exactly what is left, each with its own hash and size.
        assert set(rows) == names
        for name in names - {"toolpkg-1.0.dist-info/RECORD"}:
            data = z.read(name)
            assert rows[name] == f"{_hash(data)},{len(data)}"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                    "--target", str(target), str(wheel)], check=True)
    assert (target / "toolpkg" / "__init__.py").read_text() == "VALUE = 42\n"
    assert not (target / "toolpkg" / "jars").exists()
    assert os.stat(target / "toolpkg" / "bin" / "server").st_mode & stat.S_IXUSR  # executables stay executable


def test_lock_pins_take_the_line_whose_marker_holds_for_the_target(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# a comment\nsqlalchemy==2.0.58 ; python_full_version < '3.11'  # via optuna\n"
                    "sqlalchemy==2.1.9 ; python_full_version >= '3.11'  # via optuna\n"
                    "pywin==1 ; sys_platform == 'win32'\nray==2.60.0   # via medsweep\n")
    assert dw.lock_pins(str(lock), dw.target_environment("3.12")) == {"sqlalchemy": "2.1.9", "ray": "2.60.0"}
    assert dw.lock_pins(str(lock), dw.target_environment("3.10"))["sqlalchemy"] == "2.0.58"
    for line, why in (("ray>=2.60", ""), ("ray==2.60 ;; linux", r" \(")):
        lock.write_text(f"numpy==2.4.6\n{line}\n")
        with pytest.raises(dw.WheelsError, match=rf"requirements.lock:2: '{line}': expected NAME==VERSION{why}"):
            dw.lock_pins(str(lock), dw.target_environment("3.12"))


def test_the_closure_follows_markers_and_extras_and_stops_at_what_the_target_has():
    env = dw.target_environment("3.12")
    everything = dw.requirement_closure("medsweep", env)
    # ray[tune]'s extra is followed; medsweep's own extras (test, cluster) are not.
    assert {"ray", "optuna", "alembic", "pydicom", "torchcodec", "tensorboardx", "torch"} <= everything
    assert not {"mlflow-skinny", "boto3", "open-clip-torch"} & everything
    # What the target has is needed, but its requirements are its own install's business.
    assert "alembic" not in dw.requirement_closure("medsweep", env, frozenset({"optuna"}))


def test_what_travels_is_what_the_target_lacks_at_the_locks_versions(tmp_path):
    env = dw.target_environment("3.12")
    pins = dw.lock_pins(os.path.join(ROOT, "requirements.lock"), env)
    have = {dw.canonicalize_name(n) for n in dw.IMAGE_PACKAGES}
    carry = {"timm"}
    wanted = dw.wheels_to_carry(dw.requirement_closure("medsweep", env, frozenset(have - carry)), have, carry, pins)
    assert {"ray", "optuna", "pydicom", "torchcodec", "timm"} <= set(wanted)
    assert not {"torch", "torchvision", "numpy", "pyarrow", "medsweep"} & set(wanted)
    assert wanted["ray"] == pins["ray"]
    with pytest.raises(dw.WheelsError, match=r"not in requirements.lock for this target: newpkg"):
        dw.wheels_to_carry({"newpkg", "ray"}, set(), set(), pins)


def test_the_targets_list_is_read_by_name_and_a_bad_line_is_named(tmp_path):
    listing = tmp_path / "have.txt"
    listing.write_text("# pip list --format=freeze\nTorch==2.11.0+cu130\nhuggingface_hub==1.33.0\n\nnumpy\n")
    assert dw.read_have(str(listing)) == {"torch", "huggingface-hub", "numpy"}
    listing.write_text("numpy\n-e git+https://example.org/x\n")
    with pytest.raises(dw.WheelsError, match=r"have.txt:2: '-e git\+https://example.org/x': expected a distribution"):
        dw.read_have(str(listing))
    with pytest.raises(dw.WheelsError, match=r"--python '3': expected a CPython version as MAJOR.MINOR"):
        dw.target_environment("3")
