"""``python -m oneshot.identify``: the command's old name, kept working. The command is
:mod:`oneshot.cli.identify` (``oneshot identify``)."""

import sys

from oneshot.cli.identify import main

if __name__ == "__main__":
    sys.exit(main())
