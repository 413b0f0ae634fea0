"""Extraction's progress: every running extraction task with its own bar (one segment of the
status line each, drawn by the driver from what the tasks report to a ProgressBoard actor, so
bars of several processes never interleave), and one line per finished task.

Apart from progress.py (the trials' line, a Tune callback) because ProgressBoard runs in a Ray
actor of its own: importing Ray Tune there cost that process more than 1 CPU-s, taken from the
extraction tasks beside it.
"""

from __future__ import annotations


class ProgressBoard:
    """Run as a Ray actor: extraction tasks post (done, total) under their name; the driver
    reads every task's state at once to draw the bars."""

    def __init__(self):
        self.state: dict[str, tuple[int, int, float]] = {}

    def update(self, name: str, done: int, total: int, seconds: float) -> None:
        self.state[name] = (done, total, seconds)

    def snapshot(self) -> dict[str, tuple[int, int, float]]:
        return dict(self.state)


def _bar(done: int, total: int, width: int = 12) -> str:
    filled = int(width * done / total) if total else width
    return "#" * filled + "." * (width - filled)


def extraction_status(running: dict[str, tuple[int, int, float]], finished: int, total: int) -> str:
    """``running``: task name -> (images done, images, seconds it has run): a bar each."""
    parts = [f"{name} [{_bar(done, images)}] {done * 100 // max(images, 1)}% {done / max(seconds, 1e-9):,.0f} img/s"
             for name, (done, images, seconds) in running.items()]
    return f"extracting: {finished}/{total} done" + ("; " + " | ".join(parts) if parts else "")
