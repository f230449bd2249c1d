"""One error convention for every subcommand: a known error is one line on stderr,
``pytest-ft COMMAND: error: <what>``, scrubbed, and an exit code; Ctrl-C exits 130.

Each command says which errors it knows and their exit codes (an error class may carry its
own ``exit_code``); anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping

from ..redact import scrub

Handler = Callable[[argparse.Namespace], int]


class Interrupted(Exception):
    """Ctrl-C, once the command has said what was kept and how to resume."""


def guarded(command: str | Callable[[argparse.Namespace], str], handler: Handler,
            errors: Mapping[type[Exception], int | None],
            interrupted: str | Callable[[argparse.Namespace], str] = "interrupted") -> Handler:
    """``handler`` as a subcommand. ``errors`` maps each known error class to its exit code
    (None: the error's own ``exit_code``); ``command`` and ``interrupted`` may depend on the
    arguments (``pytest-ft data validate``; where the answers already received are kept)."""
    known = tuple(errors)

    def run(args: argparse.Namespace) -> int:
        name = command(args) if callable(command) else command
        try:
            return handler(args)
        except Interrupted:
            return 130
        except KeyboardInterrupt:
            said = interrupted(args) if callable(interrupted) else interrupted
            print(f"\npytest-ft {name}: {said}", file=sys.stderr)
            return 130
        except known as exc:
            print(f"pytest-ft {name}: error: {scrub(str(exc))}", file=sys.stderr)
            code = next(code for kind, code in errors.items() if isinstance(exc, kind))
            return exc.exit_code if code is None else code
    return run
