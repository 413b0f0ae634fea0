"""A real one-node SLURM on this machine for the tests: munged, slurmctld and slurmd started
from Debian's packages (slurm-wlm, munge; .ci/run installs them as root) with a slurm.conf
written into a temporary folder, and stopped by pid. Nothing outside that folder is used: its
own munge key and socket, its own ports, its own state and spool.

    with SlurmOnThisMachine(tmp_path) as slurm:
        job = slurm.submit("job.sbatch")
        slurm.wait(job, "COMPLETED")
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from typing import Optional

from sweep.launch.nodes import ended

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "sinfo", "scancel")


def missing() -> Optional[str]:
    """Why a SLURM cannot be started here (None: it can)."""
    if os.geteuid() != 0:
        return "the SLURM test starts munged, slurmctld and slurmd as root (CI runs as root)"
    absent = [name for name in DAEMONS + CLIENTS if shutil.which(name) is None]
    if absent:
        return f"{', '.join(absent)} not installed: apt-get install slurm-wlm munge (.ci/run does)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        total_kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    return total_kb // 1024 - 2048  # leave the system some


class SlurmOnThisMachine:
    def __init__(self, folder: str):
        self.folder = str(folder)
        self.conf = os.path.join(self.folder, "slurm.conf")
        self.env = {**os.environ, "SLURM_CONF": self.conf}
        self.pids: dict[str, int] = {}

    def _path(self, *parts: str) -> str:
        return os.path.join(self.folder, *parts)

    def __enter__(self) -> "SlurmOnThisMachine":
        for sub in ("munge", "state", "spool", "log"):
            os.makedirs(self._path(sub), mode=0o700, exist_ok=True)
        key = self._path("munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        socket_path = self._path("munge", "munge.socket")
        subprocess.run(["munged", "--force", f"--socket={socket_path}", f"--key-file={key}",
                        f"--pid-file={self._path('munge', 'munged.pid')}", f"--seed-file={self._path('munge', 'seed')}",
                        f"--log-file={self._path('log', 'munged.log')}"], check=True)
        self.pids["munged"] = self._pid(self._path("munge", "munged.pid"))
        host = socket.gethostname().split(".")[0]
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "ClusterName=medsweep-test",
                f"SlurmctldHost={host}(127.0.0.1)",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "AuthType=auth/munge", f"AuthInfo=socket={socket_path}", "CredType=cred/munge",
                "SlurmUser=root", "SlurmdUser=root",
                f"StateSaveLocation={self._path('state')}", f"SlurmdSpoolDir={self._path('spool')}",
                f"SlurmctldPidFile={self._path('slurmctld.pid')}", f"SlurmdPidFile={self._path('slurmd.pid')}",
                f"SlurmctldLogFile={self._path('log', 'slurmctld.log')}",
                f"SlurmdLogFile={self._path('log', 'slurmd.log')}",
                # No cgroups, no accounting: what a container without systemd can run.
                "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/none", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
                "MpiDefault=none", "ReturnToService=2", "SchedulerType=sched/builtin",
                "MinJobAge=3600",  # a finished job stays visible to scontrol show job
                f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={_memory_mb()} State=UNKNOWN",
                "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]))
        try:
            subprocess.run(["slurmctld", "-f", self.conf], check=True, env=self.env)
            self.pids["slurmctld"] = self._pid(self._path("slurmctld.pid"))
            subprocess.run(["slurmd", "-f", self.conf], check=True, env=self.env)
            self.pids["slurmd"] = self._pid(self._path("slurmd.pid"))
            self._wait_idle()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _pid(self, path: str, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                text = open(path).read().strip()
                if text:
                    return int(text)
            time.sleep(0.1)
        raise RuntimeError(f"{path} not written in {timeout:.0f} s: see {self._path('log')}")

    def _wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.run("sinfo", "--noheader", "--format=%t", check=False).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the test node is {state!r}, not idle, after {timeout:.0f} s: see {self._path('log')}")

    def __exit__(self, *exc) -> None:
        if "slurmctld" in self.pids:
            self.run("scancel", "--full", "--user=root", check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not ended(pid):
                time.sleep(0.1)
            if not ended(pid):
                os.kill(pid, signal.SIGKILL)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, check=check)

    def submit(self, script: str) -> str:
        return self.run("sbatch", "--parsable", script).stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict:
        """``scontrol show job``'s fields (JobState, Restarts, ExitCode, ...)."""
        text = self.run("scontrol", "show", "job", job_id, "--oneliner").stdout
        return dict(item.split("=", 1) for item in text.split() if "=" in item)

    def wait(self, job_id: str, state: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        fields = {}
        while time.monotonic() < deadline:
            fields = self.job(job_id)
            if fields.get("JobState") == state:
                return fields
            if fields.get("JobState") in {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}:
                break
            time.sleep(1)
        raise AssertionError(f"job {job_id} is {fields.get('JobState')}, not {state} (reason {fields.get('Reason')}, "
                             f"exit {fields.get('ExitCode')}); its log: {fields.get('StdOut')}")
