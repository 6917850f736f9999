"""What every command line shares: user errors printed as one message, ``--debug`` for the rest.

A :class:`UsageError` (bad argument, missing or corrupt data, a run folder that refuses the
run) is something the user can fix: the command prints ``error: <message>`` on stderr and exits
with status 2, without a traceback. ``--debug`` raises it instead, with the full traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the command, its data or its output folder that the user can fix; the
    command lines print its message without a traceback."""


class CommandParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose bad arguments (an unknown choice, a missing option, a
    number that is not one) are reported like every other user error: one ``error:`` line on
    stderr that points to ``--help``, exit status 2, instead of the whole usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message}. See {self.prog} --help.\n")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error instead of a one-line message",
    )


def as_flags(message: str, flags: dict[str, str]) -> str:
    """``message`` with the library's ``argument=value`` advice (``channels=1``) written as the
    command line's flags (``--channels 1``), for the arguments ``flags`` maps to a flag."""
    for argument, flag in flags.items():
        message = re.sub(rf"\b{argument}=([\w.]+)", rf"{flag} \1", message)
    return message


def use_headless_backend() -> None:
    """Draw with matplotlib's non-interactive Agg backend (the commands only write PNG files,
    and may run on machines without a display). Call before anything imports pyplot."""
    import matplotlib

    matplotlib.use("Agg")


def run_command(body: Callable[[], int], debug: bool = False) -> int:
    """``body()``'s exit status; a user or data error becomes ``error: ...`` on stderr and
    status 2 (raised as is with ``debug``)."""
    from oneshot.data.sources import DataError

    try:
        return body()
    except (UsageError, DataError) as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
