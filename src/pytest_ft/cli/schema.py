"""``pytest-ft schema``: the JSON Schema of ``*.ft.yaml`` suites, for editors."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from ..files import write_atomic
    from ..suite.schema import print_schema

    text = print_schema() + "\n"
    if args.output:
        write_atomic(Path(args.output), text)
    else:
        print(text, end="")
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "schema", help="print the JSON Schema of *.ft.yaml suites (for editor completion and checks)",
        description="Print the JSON Schema of *.ft.yaml suites. With VS Code's YAML extension (or any editor "
                    "using yaml-language-server), map it to your suites to get completion and checks as you type.")
    parser.add_argument("-o", "--output", help="write it to this file instead of printing it")
    parser.set_defaults(func=run)
