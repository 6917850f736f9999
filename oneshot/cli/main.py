"""``oneshot <command> [arguments]``: the console script, one entry for every command line.

``oneshot train --experiment mnist-triplet`` is ``python -m oneshot.train --experiment
mnist-triplet``; ``oneshot --help`` lists the commands and ``oneshot <command> --help`` the
arguments of one.
"""

from __future__ import annotations

import importlib
import sys

from oneshot.cli import COMMANDS
from oneshot.cli.common import EXIT_USAGE

USAGE = (
    "usage: oneshot <command> [arguments]\n\ncommands:\n"
    "  train      train a named experiment or a folder of images, then evaluate\n"
    "  evaluate   evaluate a saved model (N-way K-shot, Lake's runs, ROC, CMC, retrieval)\n"
    "  compare    loss curves and metrics of run folders side by side, or over seeds\n"
    "  data       check, time and export the data\n"
    "  networks   parameter counts of every network\n"
    "  index      build and search an embedding index of a gallery of images\n"
    "  verify     same or different: calibrate a threshold, then verify pairs\n"
    "  identify   who is this: nearest enrolled class, or unknown\n"
    "  cluster    group unlabelled images\n"
    "  novelty    flag images unlike the gallery\n\n"
    "'oneshot <command> --help' shows a command's arguments."
)


def main(argv: list[str] | None = None) -> int:
    """Run ``oneshot <command> ...``: the command's own ``main`` with the remaining arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else EXIT_USAGE
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(
            f"error: oneshot: unknown command {command!r}. Expected one of: "
            f"{', '.join(COMMANDS)}. See oneshot --help.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    module = importlib.import_module(f"oneshot.cli.{command}")
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
