"""``pytest-ft freeze``: keep a model's answers to a list of prompts before it is shut down.

The work is :mod:`pytest_ft.run.freeze`; this module parses arguments and prints progress and
the summary. Exit 0 when every prompt has an answer in the file, 1 when some calls failed (run
the same command again: it sends only those), 2 on a usage or input error (the other inputs
are still frozen), 130 when interrupted (every answer received is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..data.errors import DataError
from ..data.frozen import FrozenFileError
from ..run.freeze import FreezeSummary, freeze, load_prompts
from ..run import DEFAULT_CONCURRENCY, DEFAULT_RETRIES, DEFAULT_TIMEOUT
from ..run.runner import Endpoint, ModelRef, Runner
from ..suite import RESERVED_PARAMS
from .arguments import add_endpoint
from .errors import guarded

RECORD_MODES = ("once", "none", "all")


def _params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` request parameters; a value that is not JSON is a string (``reasoning_effort=low``)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError(f"--param {pair!r}: expected key=value, e.g. temperature=0")
        key = key.strip()
        if key in RESERVED_PARAMS:
            raise DataError(f"--param {key}: reserved: {RESERVED_PARAMS[key]}")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def _is_input(out: Path, inputs: list[Path]) -> Path | None:
    for path in inputs:
        try:
            if out.exists() and path.exists() and os.path.samefile(out, path):
                return path
        except OSError:
            continue
    return None


def _cmd_freeze(args: argparse.Namespace) -> int:
    params = _params(args.param)
    out, inputs = Path(args.out), [Path(p) for p in args.inputs]
    if args.record_mode and not args.cassette_dir:
        raise DataError("--record-mode applies to recordings: give --cassette-dir too")
    same = _is_input(out, inputs)
    if same is not None:
        raise DataError(f"--out {out} is the input {same}: answers are appended to --out, never to an input")
    prompts, errors = load_prompts(inputs)
    for error in errors:
        print(f"pytest-ft freeze: error: {error}", file=sys.stderr)
    if not prompts:
        return 2
    ref = ModelRef("frozen", args.model, Endpoint(args.base_url, args.api_key_env))
    runner = Runner(concurrency=args.concurrency, timeout=args.timeout, max_retries=args.retries,
                    record_mode=args.record_mode or "once")
    try:
        summary = freeze(prompts, ref, out, runner=runner, params=params,
                         cassette_dir=Path(args.cassette_dir) if args.cassette_dir else None, say=print)
    finally:
        runner.close()
    _print_summary(summary)
    for error in summary.errors:
        print(f"pytest-ft freeze: error: {error}", file=sys.stderr)
    if errors or summary.errors:
        return 2
    return 1 if summary.failed else 0


def _print_summary(summary: FreezeSummary) -> None:
    plural = "" if summary.frozen == 1 else "s"
    line = f"frozen {summary.frozen:,} new answer{plural} ({summary.already:,} already in {summary.out})"
    if summary.failed:
        line += f", {len(summary.failed):,} failed: {', '.join(id for id, _ in summary.failed[:10])}"
        line += " ..." if len(summary.failed) > 10 else ""
    print(line)
    notes = []
    if summary.replayed:
        notes.append(f"{summary.replayed:,} replayed from recordings")
    if summary.duplicates:
        notes.append(f"{summary.duplicates:,} duplicate prompt{'s' if summary.duplicates != 1 else ''} frozen once")
    if summary.frozen:
        notes.append(f"{summary.usage.prompt_tokens:,} prompt and {summary.usage.completion_tokens:,} completion tokens")
    if notes:
        print("  " + "; ".join(notes))
    for case_id, error in summary.failed:
        print(f"  {case_id}: {error}")
    if summary.failed:
        print("run the same command again to retry the failed prompts only")


_run = guarded("freeze", _cmd_freeze, {DataError: 2, FrozenFileError: 2},
               lambda args: f"interrupted; every answer received is kept in {args.out}: run the same command "
                            f"again to freeze the rest")


def _number(kind: type, low: float, *, inclusive: bool = True):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {'at least' if inclusive else 'more than'} {low:g}")
        return value
    return convert


def register_cli(subparsers: Any) -> None:
    """Add ``freeze`` to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "freeze", help="keep a model's answers to a list of prompts (before it is shut down)",
        description="Ask MODEL every prompt of the inputs (chat JSONL files, *.ft.yaml suites) and append each "
                    "answer to --out as it arrives, as chat JSONL: a suite's cases_file, and training data. "
                    "Resumable: prompts --out already answers are not sent again. Exit 0 when every prompt has "
                    "an answer, 1 when some calls failed (run again to retry them), 2 on usage or input errors.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="chat JSONL ({\"messages\": [...]} a line; a final assistant message is left out of the "
                        "prompt; metadata.id names it) or a *.ft.yaml suite")
    p.add_argument("--model", required=True, help="the model whose answers to keep")
    p.add_argument("--out", required=True, metavar="FILE", help="the frozen answers (JSONL), created or resumed")
    add_endpoint(p)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a request parameter, the value as JSON, else as text (temperature=0, "
                        "reasoning_effort=low); repeatable")
    p.add_argument("--concurrency", type=_number(int, 1), default=DEFAULT_CONCURRENCY, metavar="N",
                   help=f"requests in flight at once (default {DEFAULT_CONCURRENCY})")
    p.add_argument("--timeout", type=_number(float, 0, inclusive=False), default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds a request may take before it is retried (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--retries", type=_number(int, 0), default=DEFAULT_RETRIES, metavar="N",
                   help=f"retries after 429, 5xx, timeouts or dropped connections (default {DEFAULT_RETRIES})")
    p.add_argument("--cassette-dir", metavar="DIR",
                   help="record each prompt's call under DIR/freeze-MODEL/, so the freezing replays without "
                        "the model")
    p.add_argument("--record-mode", choices=RECORD_MODES,
                   help="with --cassette-dir: once (default: replay what is recorded, record the rest), "
                        "none (replay only, no network), all (record again)")
    p.set_defaults(func=_run)
