"""``oneshot networks`` (``python -m oneshot.networks``): the parameter count of every
embedding network at its default size."""

from __future__ import annotations

import sys

from oneshot.cli.common import CommandParser, add_debug_flag, run_command


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m oneshot.networks", description=__doc__)
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        from oneshot.models.networks import parameter_table  # after parsing: TensorFlow

        for net, config, count in parameter_table():
            print(f"{net:<15} {config:<24} {count:>12,}")
        return 0

    return run_command(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
