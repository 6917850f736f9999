"""``python -m oneshot.verify``: the command's old name, kept working. The command is
:mod:`oneshot.cli.verify` (``oneshot verify``)."""

import sys

from oneshot.cli.verify import main

if __name__ == "__main__":
    sys.exit(main())
