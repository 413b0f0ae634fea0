"""What a sweep shows on the terminal: medsweep's own lines, a status line kept in place, and
nothing of Ray's and Tune's, whose output goes to a log file in the store.

While a sweep runs, ``sys.stdout`` and ``sys.stderr`` point at the log file (Ray prints its
workers' output, Tune its experiment box, Python its warnings through them) and the ``ray``
loggers write there too; medsweep writes to the terminal it was started on through
:func:`echo`, :func:`status` and :func:`warn` (its stderr). On a terminal the status line
(extraction bars, the sweep's progress) is redrawn in place; elsewhere (a CI log, ``ray job submit``) it is printed as a
plain line at most every ``plain_every_s`` seconds, so a log holds a record, not a flood.

Example::

    >>> with capture("/tmp/r/logs/run.log"):          # doctest: +SKIP
    ...     echo("extracting 2 embedding files")       # on the terminal
    ...     print("anything Ray prints")               # in the log file
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Optional, TextIO

RAY_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.data", "ray.serve")


class Console:
    def __init__(self, stream: TextIO, plain_every_s: float = 30.0, err: Optional[TextIO] = None):
        self.stream = stream
        self.err = err or stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.plain_every_s = plain_every_s
        self._status = ""  # the status line drawn now (terminal only)
        self._last_plain = -float("inf")

    def line(self, text: str) -> None:
        """A line of its own; the status line, if drawn, is drawn again below it."""
        if self.tty and self._status:
            self.stream.write("\r\x1b[K" + text + "\n" + self._status)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def warning(self, text: str) -> None:
        """``warning: text`` on the terminal's stderr, the status line kept below it."""
        if self.tty and self._status:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.err.write(f"warning: {text}\n")
        self.err.flush()
        if self.tty and self._status:
            self.stream.write(self._status)
            self.stream.flush()

    def status(self, text: str, force: bool = False) -> None:
        """The one line that says where the sweep stands: in place on a terminal, else a
        plain line when ``plain_every_s`` have passed (or ``force``)."""
        if self.tty:
            self._status = text
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            return
        now = time.monotonic()
        if force or now - self._last_plain >= self.plain_every_s:
            self._last_plain = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def end_status(self, keep: bool = True) -> None:
        """What follows starts below the status line, which stays as last drawn (``keep``)
        or is wiped (a passing view, such as bars of tasks that each printed their line)."""
        if self.tty and self._status:
            self.stream.write("\n" if keep else "\r\x1b[K")
            self.stream.flush()
        self._status = ""


_active: Optional[Console] = None


def echo(text: str) -> None:
    """A line on the terminal the sweep was started on (stdout when no sweep captures)."""
    if _active is not None:
        _active.line(text)
    else:
        print(text, flush=True)


def warn(text: str) -> None:
    """A warning (a damaged store file, left out) on the stderr the sweep was started with, so
    that it reaches the user while the sweep runs or when it is refused, and in the log too."""
    print(f"warning: {text}", file=sys.stderr, flush=True)  # the log while a sweep captures
    if _active is not None:
        _active.warning(text)


def status(text: str, force: bool = False) -> None:
    if _active is not None:
        _active.status(text, force)


def end_status(keep: bool = True) -> None:
    if _active is not None:
        _active.end_status(keep)


def is_terminal() -> bool:
    return _active is not None and _active.tty


@contextlib.contextmanager
def capture(log_path: str, plain_every_s: float = 30.0):
    """Ray's and Tune's output (stdout, stderr, the ray loggers) into ``log_path`` for the
    duration; medsweep's lines (echo, status) to the stdout the sweep was started with."""
    global _active
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    saved_streams = sys.stdout, sys.stderr
    previous = _active
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved_handlers = {}
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        saved_handlers[name] = (logger.handlers[:], logger.propagate)
        logger.handlers = [handler] if name == "ray" else []
        logger.propagate = name != "ray"  # the children reach the file through "ray"
    _active = Console(saved_streams[0], plain_every_s, err=saved_streams[1])
    sys.stdout = sys.stderr = log
    try:
        yield _active
    finally:
        _active.end_status()
        sys.stdout, sys.stderr = saved_streams
        for name, (handlers, propagate) in saved_handlers.items():
            logging.getLogger(name).handlers, logging.getLogger(name).propagate = handlers, propagate
        _active = previous
        log.close()
