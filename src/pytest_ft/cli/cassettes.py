"""``pytest-ft cassettes``: which recordings no case uses any more, and which cases have none.

The audit itself is :mod:`pytest_ft.recording.audit`; this module is its command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..recording.audit import audit, prune


def run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [Path(".")]
    result = audit(paths, Path(args.cassette_dir).resolve() if args.cassette_dir else None)
    removed, errors = prune(result.stale) if args.prune else ([], [])
    if args.json:
        print(json.dumps({**result.to_dict(), "removed": len(removed),
                          "errors": [{"path": str(p), "error": e} for p, e in errors]}, indent=2))
    else:
        cwd = Path.cwd()

        def show(path: Path) -> str:
            try:
                return str(path.relative_to(cwd))
            except ValueError:
                return str(path)

        print(f"{len(result.recorded)} case(s) recorded, {len(result.missing)} without a recording, "
              f"{len(result.stale)} stale recording(s)")
        for suite_file, case_id, _ in result.missing:
            print(f"  missing  {suite_file}::{case_id}")
        gone = set(removed)
        for path in result.stale:
            print(f"  {'removed' if path in gone else 'stale  '}  {show(path)}")
        for path, reason in result.left_alone:
            print(f"  other    {show(path)}: {reason}, left alone")
        for path, error in errors:
            print(f"  error    {show(path)}: {error}", file=sys.stderr)
        for message in result.invalid:
            print(f"  invalid  {message} (its recordings were not checked)", file=sys.stderr)
        if result.stale and not args.prune:
            print("remove the stale recordings with: pytest-ft cassettes --prune")
    return 1 if result.invalid or errors else 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser("cassettes", help="list stale recordings and cases without one",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="suite files or folders to search (default: .)")
    parser.add_argument("--cassette-dir", help="where the recordings live, if not cassettes/ beside each suite")
    parser.add_argument("--prune", action="store_true", help="remove the recordings no case uses")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)
