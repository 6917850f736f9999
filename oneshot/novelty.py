"""``python -m oneshot.novelty``: the command's old name, kept working. The command is
:mod:`oneshot.cli.novelty` (``oneshot novelty``)."""

import sys

from oneshot.cli.novelty import main

if __name__ == "__main__":
    sys.exit(main())
