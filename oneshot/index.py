"""``python -m oneshot.index``: the command's old name, kept working. The command is
:mod:`oneshot.cli.index` (``oneshot index``)."""

import sys

from oneshot.cli.index import main

if __name__ == "__main__":
    sys.exit(main())
