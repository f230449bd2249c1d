"""The ``pytest-ft`` command: the steps around an evaluation (data, cassettes, …).

The evaluation itself is ``pytest``; this command covers what comes before it and what
maintains it. Each module contributes its subcommands through ``register_cli(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES = ("pytest_ft.cli.data", "pytest_ft.cli.jobs", "pytest_ft.cli.serve", "pytest_ft.cli.cassettes",
                   "pytest_ft.cli.schema", "pytest_ft.cli.models", "pytest_ft.cli.freeze")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-ft",
        description="Tools around evaluating fine-tuned models with pytest. "
                    "Run the evaluation itself with: pytest SUITES --ft-model=ft:...",
    )
    parser.add_argument("--version", action="version", version=f"pytest-ft {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (exc.name and name.startswith(exc.name)):
                raise  # a dependency missing inside a command's module is a real error
            continue
        module.register_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
