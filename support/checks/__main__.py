"""python -m support.checks: see the package's docstring."""

import sys

from support.checks import main

sys.exit(main())
