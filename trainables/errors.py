"""User errors: input that cannot be used as given. Each names the file, field or value and
what was expected; the CLI prints its message alone (exit 1). Any other exception is a bug of
medsweep or of a library, and keeps its traceback.

Example::

    >>> issubclass(DatasetError, UserError)   # doctest: +SKIP
    True
"""

from __future__ import annotations

ERROR_CHARS = 2000  # an error row's text: the exception's own line, not a whole traceback


class UserError(ValueError):
    """Input that cannot be used; the message says which and what was expected. (A
    ValueError too: a bad value is what it is.)"""


def error_line(exc: BaseException) -> str:
    """``Type: message`` of an exception, at most ERROR_CHARS characters: what a row records."""
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
