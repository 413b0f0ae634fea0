"""User errors: input that cannot be used as given. Each names the file, field or value and
what was expected; the CLI prints its message alone (exit 2). Any other exception is a bug of
medsweep or of a library, and keeps its traceback.

Example::

    >>> issubclass(DatasetError, UserError)   # doctest: +SKIP
    True
"""

from __future__ import annotations

import difflib
from typing import Iterable

ERROR_CHARS = 2000  # an error row's text: the exception's own line, not a whole traceback


class UserError(ValueError):
    """Input that cannot be used; the message says which and what was expected. (A
    ValueError too: a bad value is what it is.)"""


def error_line(exc: BaseException) -> str:
    """``Type: message`` of an exception, at most ERROR_CHARS characters: what a row records."""
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'aptos'?)"`` for a mistyped name (difflib's close matches), else ``""``:
    put right after the unknown value an error names."""
    close = difflib.get_close_matches(str(name), list(dict.fromkeys(choices)), n=3, cutoff=0.75)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
