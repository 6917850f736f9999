"""``python -m oneshot.networks``: the command's old name, kept working. The command is
:mod:`oneshot.cli.networks` (``oneshot networks``)."""

import sys

from oneshot.cli.networks import main

if __name__ == "__main__":
    sys.exit(main())
