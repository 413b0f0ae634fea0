"""Property-based tests of the parsers of user input (hypothesis): each draws at least
``INPUTS`` inputs, the same ones on every run (derandomized: a test that passes only sometimes is
a failing test), and every outcome must be success or a named user error, never another
exception. ``tried`` runs a property and returns how many inputs it was given, so each test can
assert the count as well."""

from __future__ import annotations

import string

import click
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainables.errors import UserError

INPUTS = 500
# What a user gets as "one line, exit 2": medsweep's own errors, and click's for a malformed
# option (click.BadParameter), which the CLI prints the same way.
USER_FACING = (UserError, click.UsageError)

# Text a user's files and options hold: the separators and quotes a parser must survive,
# blanks, non-ASCII letters, a NUL, control characters.
TRICKY = st.sampled_from([",", '"', "'", "\n", "\r\n", " ", "\t", "=", "..", ":", "-", "/", "\\", "é", "ü", "\x00",
                          "\ufeff", "nan", "inf", "-1", "0", "1", "1e309", "YES", "NO", ""])
TEXT = st.one_of(st.text(string.ascii_letters + string.digits + "_.-", max_size=12),
                 st.text(max_size=8),
                 st.lists(TRICKY, max_size=4).map("".join))


def tried(strategy, check) -> int:
    """Run ``check`` on ``INPUTS`` inputs drawn from ``strategy``; the number it was given. Any
    exception other than ``USER_FACING`` from ``check`` fails the test with the input shrunk."""
    count = [0]

    @settings(max_examples=INPUTS, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(strategy)
    def run(value):
        count[0] += 1
        try:
            check(value)
        except USER_FACING:
            pass

    run()
    return count[0]
