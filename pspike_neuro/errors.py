"""Errors the command line turns into one-line messages and exit codes.

``UserError`` (exit 2) is bad input: a wrong flag, a missing or malformed file, a model the
hardware path cannot represent. ``CheckFailed`` (exit 1) is a check that ran and did not pass.
"""


class UserError(Exception):
    """Bad input from the user. The message is one line that names the problem."""

    exit_code = 2


class CheckFailed(Exception):
    """A verification ran to completion and a tolerance was exceeded."""

    exit_code = 1
