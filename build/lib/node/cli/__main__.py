"""``python -m node.cli``: the same as the ``refnode`` command."""

import sys

from node.cli.main import main

sys.exit(main())
