"""``pytest-ft cassettes``: which recordings no case uses any more, and which cases have none.

Recordings live at ``<cassette dir>/<suite>/<case id>.yaml``. When a case is renamed or
removed its cassette stays behind; when a case is added it has none until it is recorded.
This command compares the suites with the files, and ``--prune`` removes the stale ones.
A suite that does not load is reported and its recordings are left alone: without its
cases nothing can be said about them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .recording import cassette_path
from .suite import SUITE_PATTERNS, SuiteError, load_suite

SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox"}


@dataclass
class Audit:
    recorded: list[Path] = field(default_factory=list)
    missing: list[tuple[str, str, Path]] = field(default_factory=list)  # (suite file, case id, cassette)
    stale: list[Path] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"recorded": len(self.recorded),
                "missing": [{"suite": s, "case": c, "cassette": str(p)} for s, c, p in self.missing],
                "stale": [str(p) for p in self.stale], "invalid_suites": self.invalid}


def find_suites(paths: list[Path]) -> list[Path]:
    found: set[Path] = set()
    for path in paths:
        if path.is_file():
            found.add(path)
            continue
        for pattern in SUITE_PATTERNS:
            for candidate in path.rglob(pattern):
                if not SKIPPED_DIRS.intersection(candidate.relative_to(path).parts):
                    found.add(candidate)
    return sorted(found)


def audit(paths: list[Path], cassette_dir: Path | None = None) -> Audit:
    result = Audit()
    expected: set[Path] = set()
    roots: dict[Path, set[str]] = {}  # cassette root -> suite names recorded there
    blocked: set[Path] = set()  # roots holding the cassettes of a suite that does not load
    for suite_file in find_suites(paths):
        root = (cassette_dir or suite_file.parent / "cassettes").resolve()
        try:
            suite = load_suite(suite_file)
        except SuiteError as exc:
            result.invalid.append(str(exc))
            blocked.add(root)
            continue
        roots.setdefault(root, set()).add(suite.name)
        for case in suite.cases:
            path = cassette_path(root, suite.name, case.id)
            expected.add(path)
            if path.exists():
                result.recorded.append(path)
            else:
                result.missing.append((str(suite_file), case.id, path))
    for root in roots:
        if root in blocked or not root.is_dir():
            continue
        for path in sorted(root.glob("*/*.yaml")):
            module = path.parent.name
            if path not in expected and not (root.parent / f"{module}.py").exists():
                result.stale.append(path)
    return result


def prune(stale: list[Path]) -> int:
    removed = 0
    for path in stale:
        path.unlink(missing_ok=True)
        removed += 1
        if path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
    return removed


def run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [Path(".")]
    result = audit(paths, Path(args.cassette_dir).resolve() if args.cassette_dir else None)
    removed = prune(result.stale) if args.prune else 0
    if args.json:
        print(json.dumps({**result.to_dict(), "removed": removed}, indent=2))
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
        for path in result.stale:
            print(f"  {'removed' if args.prune else 'stale  '}  {show(path)}")
        for message in result.invalid:
            print(f"  invalid  {message} (its recordings were not checked)", file=sys.stderr)
        if result.stale and not args.prune:
            print("remove the stale recordings with: pytest-ft cassettes --prune")
    return 1 if result.invalid else 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser("cassettes", help="list stale recordings and cases without one",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="suite files or folders to search (default: .)")
    parser.add_argument("--cassette-dir", help="where the recordings live, if not cassettes/ beside each suite")
    parser.add_argument("--prune", action="store_true", help="remove the recordings no case uses")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)
