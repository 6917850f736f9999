"""``python -m oneshot.compare``: the command's old name, kept working. The command is
:mod:`oneshot.cli.compare` (``oneshot compare``)."""

import sys

from oneshot.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
