"""One ``ast.parse`` at a time in a process, on the Pythons whose AST constructor races.

CPython before 3.13 (up to 3.11.7 and 3.12.1 at least) keeps the AST constructor's recursion
count in one per-interpreter struct (gh-106905). A garbage collection during ``ast.parse`` can
run a finalizer that lets another thread in (a Ray object reference's, a file's). If that
thread parses too, the count is left wrong, and one of them fails with ``SystemError: AST
constructor recursion depth mismatch``.

Parsing happens behind the user's back:
- Python 3.11's traceback module parses each line it underlines;
- transformers parses a model's remote code;
- torch.jit parses the functions it scripts.

A sweep's driver runs Ray's and Tune's threads beside its own. One such error ended a finished
foundation-model sweep in the suite before its closing read. So ``ast.parse`` is wrapped in a
re-entrant lock: a finalizer that parses in the same thread still gets through.

Example::

    >>> import ast
    >>> serialize_ast_parse()
    >>> isinstance(ast.parse("x = 1"), ast.Module)
    True
"""

from __future__ import annotations

import ast
import functools
import sys
import threading

# The fix (separate recursion counts per call) is in 3.13; late 3.11 and 3.12 patch releases
# carry it too, but a lock costs nothing next to a parse, so every earlier version gets one.
AFFECTED = sys.version_info < (3, 13)
_LOCK = threading.RLock()


def serialize_ast_parse() -> None:
    """Wrap ``ast.parse`` in the process-wide lock, once, where the race exists."""
    if not AFFECTED or getattr(ast.parse, "__medsweep_serialized__", False):
        return
    parse = ast.parse

    @functools.wraps(parse)
    def serialized(*args, **kwargs):
        with _LOCK:
            return parse(*args, **kwargs)

    serialized.__medsweep_serialized__ = True
    ast.parse = serialized
