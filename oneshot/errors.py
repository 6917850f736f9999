"""The library's error for problems a user can fix (a bad argument, missing or corrupt data, an
output folder that refuses a run).

It lives below every other module so that the library can raise it without importing a command
line; the command lines (``oneshot.cli.common``) print its message as one ``error:`` line and exit
with status 2.
"""

from __future__ import annotations


class UsageError(Exception):
    """A problem with the command, its data or its output folder that the user can fix; the
    command lines print its message without a traceback."""
