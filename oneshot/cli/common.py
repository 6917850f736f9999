"""What every command line shares: user errors printed as one message, ``--debug`` for the rest,
a quiet and late start of TensorFlow, and the arguments several commands take.

A :class:`UsageError` (bad argument, missing or corrupt data, a run folder that refuses the
run) is something the user can fix: the command prints ``error: <message>`` on stderr and exits
with status 2, without a traceback. ``--debug`` raises it instead, with the full traceback.

Every command parses its arguments before TensorFlow is imported (this module and the parsers
import nothing heavy), so ``--help`` and argument errors answer at once; then
:func:`run_command` starts TensorFlow (:func:`start_tensorflow`) without the log lines its C++
core writes to the terminal (absl's pre-init warning, oneDNN and CUDA notices), which
``--debug`` shows.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from oneshot.errors import UsageError  # noqa: F401  (the command lines' error, re-exported)
from oneshot.names import DISTANCES
from oneshot.startup import start_tensorflow_quietly

EXIT_USAGE = 2


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


def start_tensorflow(debug: bool = False) -> None:
    """Import TensorFlow (and Keras, and register oneshot's serializable classes) for a command
    line whose arguments are parsed. Without ``debug`` and unless the user set a
    ``TF_CPP_MIN_LOG_LEVEL``, it is quiet: the level is 3 (fatal only: TensorFlow's errors
    reach Python as exceptions), the start-up lines of the C++ core are dropped (including the CUDA probe of a machine without
    a GPU) and the Python loggers of TensorFlow and absl show errors only. With ``debug``
    every line shows (``oneshot.startup``; a user's ``import oneshot`` does the same unless the
    user set a level)."""
    start_tensorflow_quietly(quiet=not debug)
    import oneshot.models.registry  # noqa: F401  (registers the serializable classes)

    if not debug:
        import logging

        import absl.logging
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
        absl.logging.set_verbosity(absl.logging.ERROR)


def run_command(body: Callable[[], int], debug: bool = False) -> int:
    """``body()``'s exit status, run after :func:`start_tensorflow`; a user or data error
    becomes ``error: ...`` on stderr and status 2 (raised as is with ``debug``)."""
    from oneshot.data.sources import DataError

    start_tensorflow(debug)
    try:
        return body()
    except (UsageError, DataError) as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


def run_app(body: Callable[[], int], debug: bool) -> int:
    """:func:`run_command` for the applications: a ValueError of the library (a bad
    argument, another model's index ...) or a missing optional package (FAISS) is a user error
    too (one ``error:`` line, exit 2)."""
    use_headless_backend()

    def wrapped() -> int:
        try:
            return body()
        except UsageError:
            raise
        except (ValueError, ImportError) as error:  # DataError included; FAISS missing
            if debug:
                raise
            raise UsageError(str(error)) from None

    return run_command(wrapped, debug=debug)


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--model``, ``--distance``, ``--shifts`` and ``--convert`` (the application commands)."""
    parser.add_argument(
        "--model", type=Path, required=required, help="a trained .keras model (model.keras)"
    )
    parser.add_argument(
        "--distance",
        choices=DISTANCES,
        default=None,
        help="distance between embeddings (default: the one the model was trained with)",
    )
    parser.add_argument(
        "--shifts",
        type=int,
        default=0,
        help="test-time averaging of each embedding over shifts of this many pixels (default 0)",
    )
    add_convert_argument(parser)


def add_convert_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--convert",
        action="store_true",
        help="convert colour images to grey (or grey to colour) to fit the model, instead of "
        "refusing them",
    )


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars or notes on stderr")


def add_gallery_arguments(parser: argparse.ArgumentParser, queries_help: str) -> None:
    """The model arguments, ``--gallery`` and ``--queries`` (identify, novelty)."""
    add_model_arguments(parser)
    parser.add_argument(
        "--gallery", type=Path, required=True,
        help="the enrolled images: a folder of class folders, or an index file (index build)",
    )  # fmt: skip
    parser.add_argument("--queries", type=Path, nargs="+", required=True, help=queries_help)
