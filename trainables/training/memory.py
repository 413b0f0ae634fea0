"""Memory a trial holds, read from the kernel (Linux /proc; elsewhere the process's peak).

``resident_mib`` counts every page the process has in RAM, memory-mapped cache pages it has
touched included (those are shared with every other trial on the node, not copies);
``private_mib`` only its own anonymous memory: what packing more trials on a node costs.
"""

from __future__ import annotations

import os
import resource
import sys


def resident_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def private_mib() -> float:
    """Resident anonymous memory (heap, tensors), without file-backed and shared pages."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return float("nan")
