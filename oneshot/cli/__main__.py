"""``python -m oneshot.cli <command> ...``: the same as the ``oneshot`` console script."""

import sys

from oneshot.cli.main import main

sys.exit(main())
