"""``python -m pytest_ft.data``."""

import sys

from ..cli.data import main

_argv = sys.argv[1:]
sys.exit(main(_argv if _argv[:1] == ["data"] else ["data", *_argv]))
