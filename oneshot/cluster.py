"""``python -m oneshot.cluster``: the command's old name, kept working. The command is
:mod:`oneshot.cli.cluster` (``oneshot cluster``)."""

import sys

from oneshot.cli.cluster import main

if __name__ == "__main__":
    sys.exit(main())
