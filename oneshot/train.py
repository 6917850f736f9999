"""``python -m oneshot.train``: the command's old name, kept working. The command is
:mod:`oneshot.cli.train` (``oneshot train``)."""

import sys

from oneshot.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
