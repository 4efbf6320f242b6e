"""``python -m node.codegen``: see :mod:`node.codegen.generate`."""

import sys

from node.codegen.generate import main

sys.exit(main())
