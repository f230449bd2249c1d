"""``python -m pytest_ft.cli``."""

import sys

from . import main

sys.exit(main())
