"""Wait until a Ray cluster has N nodes alive (the SLURM script, before the workers join and
before the driver starts): ``python -m sweep.launch.nodes HOST:PORT N TIMEOUT_S [PID ...]``.

Exit 0 once N nodes are alive; exit 1, naming what it saw, after TIMEOUT_S seconds or as soon
as one of the PIDs (the srun steps starting Ray) has ended. Workers
that try to join a head not yet up time out (a pitfall of Ray on SLURM), and a driver started
before every node joined would size its concurrency to part of the cluster.
"""

from __future__ import annotations

import logging
import os
import sys
import time


def alive_nodes(address: str) -> int:
    import ray

    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        return sum(1 for node in ray.nodes() if node["Alive"])
    finally:
        ray.shutdown()


def ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A child that exited but was not reaped yet (the shell reaps it): a zombie has ended.
    return process_state(pid) == "Z"


def process_state(pid: int) -> str | None:
    """The state letter /proc gives process ``pid`` (R, S, D, T, Z, ...); None when it cannot be
    read (gone, or not Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def main(argv: list[str]) -> int:
    address, wanted, timeout = argv[0], int(argv[1]), float(argv[2])
    steps = [int(p) for p in argv[3:]]
    deadline = time.monotonic() + timeout
    seen, why = 0, "no answer yet"
    while time.monotonic() < deadline:
        gone = [p for p in steps if ended(p)]
        if gone:
            print(f"medsweep: the step starting Ray (pid {gone[0]}) ended before the cluster at {address} had "
                  f"{wanted} node(s): its error is above", file=sys.stderr, flush=True)
            return 1
        try:
            seen = alive_nodes(address)
            if seen >= wanted:
                print(f"medsweep: {seen} Ray node(s) alive at {address}", flush=True)
                return 0
            why = f"{seen} of {wanted} node(s) alive"
        except (ConnectionError, RuntimeError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        time.sleep(2)
    print(f"medsweep: the Ray cluster at {address} did not reach {wanted} node(s) in {timeout:.0f} s ({why})",
          file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
