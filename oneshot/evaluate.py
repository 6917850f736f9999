"""``python -m oneshot.evaluate``: the command's old name, kept working. The command is
:mod:`oneshot.cli.evaluate` (``oneshot evaluate``)."""

import sys

from oneshot.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
