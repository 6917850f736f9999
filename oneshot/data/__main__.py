"""``python -m oneshot.data``: the command's old name, kept working. The command is
:mod:`oneshot.cli.data` (``oneshot data``)."""

import sys

from oneshot.cli.data import main

sys.exit(main())
