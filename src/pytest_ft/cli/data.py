"""``pytest-ft data``: the dataset checks of :mod:`pytest_ft.data` as commands.

Argument parsing, the tables printed for people and the JSON for machines, and the exit
codes; the checks themselves are plain functions of :mod:`pytest_ft.data`, which never
imports this module.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable, Iterable, Mapping, Sequence

from tabulate import tabulate

from ..data import (
    DEFAULT_MAX_DETAILS,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MODEL,
    ERROR_KINDS,
    EXPECTED_COLUMNS,
    INPUT_COLUMNS,
    WARNING_KINDS,
    DataError,
    Problem,
    check_leak,
    convert,
    dedupe,
    split,
    stats,
    tokens,
    validate,
)
from .errors import guarded


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value.is_integer():
            return f"{int(value):,}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _problem_rows(problems: Iterable[Problem]) -> list[list[Any]]:
    return [[p.line if p.line is not None else "-", p.kind, p.message] for p in problems]


def _model_line(model: str, encoding: str, limit: int | None) -> str:
    ctx = f"{limit:,} tokens per training example" if limit else "training context unknown"
    return f"model {model} ({encoding}, {ctx})"


def _cmd_validate(args: argparse.Namespace) -> int:
    report = validate(args.file, args.model, max_line_bytes=args.max_line_bytes, max_details=args.max_details,
                      progress=_progress_flag(args))
    failed = not report.ok or (args.strict and bool(report.warnings))
    if args.json:
        _print_json(report.to_dict())
        return 1 if failed else 0
    fmt = {"chat": "chat", "dpo": "preference (DPO)"}.get(report.format or "", "unknown")
    model = _model_line(report.model, report.encoding, report.max_tokens_per_example)
    print(f"{report.file}: {report.lines:,} lines, {report.examples:,} examples ({fmt}), "
          f"{report.valid_examples:,} valid; {model}")
    if report.errors:
        print(f"\nErrors ({sum(report.errors.values()):,} on {report.lines_with_errors:,} "
              f"line{'s' if report.lines_with_errors != 1 else ''}):")
        print(tabulate([[k, _fmt(v), ERROR_KINDS.get(k, "")] for k, v in report.errors.items()],
                       headers=["kind", "count", "meaning"], colalign=("left", "right", "left")))
    if report.warnings:
        print(f"\nWarnings ({sum(report.warnings.values()):,}):")
        print(tabulate([[k, _fmt(v), WARNING_KINDS.get(k, "")] for k, v in report.warnings.items()],
                       headers=["kind", "count", "meaning"], colalign=("left", "right", "left")))
    errors = [p for p in report.problems if p.severity == "error"]
    warnings = [p for p in report.problems if p.severity == "warning"]
    if errors:
        print("\nError details:")
        print(tabulate(_problem_rows(errors), headers=["line", "kind", "problem"]))
    if warnings and (args.verbose or not errors):
        print("\nWarning details:")
        print(tabulate(_problem_rows(warnings[: args.max_details if args.max_details >= 0 else None]),
                       headers=["line", "kind", "problem"]))
    if report.problems_truncated:
        print(f"\n(details cut at {args.max_details} per severity; --max-details -1 lists all, --json for machines)")
    if not report.ok:
        print(f"\nINVALID: {sum(report.errors.values()):,} errors. Fix them before uploading.")
    elif failed:
        print(f"\nFAILED (--strict): {sum(report.warnings.values()):,} warnings.")
    else:
        extra = f" ({sum(report.warnings.values()):,} warnings)" if report.warnings else ""
        print(f"\nOK: no errors{extra}.")
    return 1 if failed else 0


def _dist_row(name: str, d: Mapping[str, Any]) -> list[str]:
    return [name] + [_fmt(d[k]) for k in ("min", "max", "mean", "median", "p10", "p90")]


def _cmd_stats(args: argparse.Namespace) -> int:
    report = stats(args.file, args.model, epochs=args.epochs, prices=args.prices, max_line_bytes=args.max_line_bytes,
                   progress=_progress_flag(args))
    code = 1 if report.invalid_examples or report.errors else 0
    if args.json:
        _print_json(report.to_dict())
        return code
    print(f"{report.file}: {report.examples:,} examples; "
          f"{_model_line(report.model, report.encoding, report.max_tokens_per_example)}")
    if report.errors:
        print(f"({report.invalid_examples:,} invalid examples left out: "
              f"{', '.join(f'{k} {v}' for k, v in report.errors.items())}; run `pytest-ft data validate`)")
    print()
    print(tabulate([_dist_row("messages per example", report.messages_per_example),
                    _dist_row("tokens per example", report.tokens_per_example),
                    _dist_row("assistant tokens per example", report.assistant_tokens_per_example)],
                   headers=["", "min", "max", "mean", "median", "p10", "p90"],
                   colalign=("left",) + ("right",) * 6))
    price = report.training_price_per_1m_tokens
    cost = "n/a" if report.estimated_cost_usd is None else f"${report.estimated_cost_usd:,.4f}"
    if report.estimated_cost_usd is None and price is None:
        cost += f" (no training price for {report.model}; pass --prices)"
    limit = report.max_tokens_per_example
    rows = [
        ["examples missing a system / user message",
         f"{report.missing_system_message:,} / {report.missing_user_message:,}"],
        ["examples over the training context (truncated)", _fmt(report.examples_over_limit)],
        ["billed tokens per epoch" + (f" (each example capped at {limit:,})" if limit else ""),
         _fmt(report.billed_tokens)],
        [f"epochs ({'OpenAI default for this size' if report.epochs_source == 'default' else 'from --epochs'})",
         _fmt(report.epochs)],
        ["tokens charged (billed x epochs)", _fmt(report.charged_tokens)],
        ["training price per 1M tokens", "n/a" if price is None else f"${price:,.2f}"],
        ["estimated training cost", cost],
    ]
    print()
    print(tabulate(rows, tablefmt="plain", colalign=("left", "right")))
    return code


def _cmd_convert(args: argparse.Namespace) -> int:
    report = convert(args.source, args.output, input_col=args.input_col, expected_col=args.expected_col,
                     system=args.system, name=args.name, force=args.force, progress=_progress_flag(args))
    if args.json:
        _print_json(report.to_dict())
        return 0
    cols = f" (input column {report.columns['input']!r}, expected column {report.columns['expected']!r})" \
        if report.columns else ""
    noun = "case" if report.direction.endswith("suite") else "example"
    print(f"{report.source} -> {report.output}: {report.written:,} {noun}{'s' if report.written != 1 else ''} "
          f"written{cols}")
    if report.skipped:
        print(f"skipped {report.skipped:,}:")
        print(tabulate([[d.get("line", d.get("case")), d["reason"]] for d in report.skipped_details],
                       headers=["line/case", "reason"]))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    report = split(args.file, args.val, args.seed, stratify=args.stratify, out_train=args.out_train,
                   out_val=args.out_val, force=args.force, max_line_bytes=args.max_line_bytes,
                   progress=_progress_flag(args))
    if args.json:
        _print_json(report.to_dict())
        return 0
    print(tabulate([["train", report.train_file, _fmt(report.train)], ["val", report.val_file, _fmt(report.val)]],
                   headers=["split", "file", "examples"], colalign=("left", "left", "right")))
    note = f"seed {report.seed}"
    if report.stratify:
        note += f", stratified over {report.labels:,} labels (final assistant answers)"
    if report.blank_lines_dropped:
        note += f", {report.blank_lines_dropped:,} blank lines dropped"
    print(f"\n{report.examples:,} examples from {report.file} ({note}); the input is unchanged.")
    if report.stratify and report.label_counts:
        print()
        print(tabulate([[_shorten(d["label"]), _fmt(d["examples"]), _fmt(d["val"])] for d in report.label_counts],
                       headers=["label", "examples", "val"], colalign=("left", "right", "right")))
    return 0


def _cmd_dedupe(args: argparse.Namespace) -> int:
    report = dedupe(args.file, args.output, by=args.by, force=args.force, max_line_bytes=args.max_line_bytes,
                    progress=_progress_flag(args))
    if args.json:
        _print_json(report.to_dict())
        return 0
    blank = f", {report.blank_lines_dropped:,} blank lines dropped" if report.blank_lines_dropped else ""
    print(f"{report.file} -> {report.output}: {report.examples:,} examples, {report.removed:,} "
          f"duplicate{'s' if report.removed != 1 else ''} removed (by {report.by}), {report.kept:,} kept{blank}")
    if report.duplicates:
        print()
        print(tabulate([[d["line"], d["duplicate_of"]] for d in report.duplicates[:20]],
                       headers=["removed line", "duplicate of line"]))
        if report.removed > 20:
            print(f"... and {report.removed - 20:,} more")
    return 0


def _shorten(text: str, width: int = 60) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _cmd_check_leak(args: argparse.Namespace) -> int:
    report = check_leak(args.train, args.suites, max_line_bytes=args.max_line_bytes, progress=_progress_flag(args))
    if args.json:
        _print_json(report.to_dict())
        return 0 if report.ok else 1
    if report.ok:
        print(f"OK: none of the {report.cases:,} eval cases appears in {report.train} "
              f"({report.train_examples:,} examples).")
        return 0
    print(tabulate([[leak.suite, leak.case, _shorten(leak.input), ", ".join(map(str, leak.train_lines))
                     + (" ..." if leak.train_matches > len(leak.train_lines) else "")] for leak in report.leaks],
                   headers=["suite", "case", "input (normalised)", "training lines"]))
    print(f"\nLEAK: {len(report.leaks):,} of {report.cases:,} eval cases appear in {report.train}: "
          f"a model trained on it would score falsely high on them.")
    return 1


def _progress_flag(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "no_progress", False) else None


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    return guarded(lambda args: f"data {args.data_command}", handler,
                   {DataError: None, tokens.UnknownModelError: 2}, "interrupted (no output file was left behind)")


def _common(p: argparse.ArgumentParser, *, line_limit: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of tables")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    if line_limit:
        p.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE_BYTES, metavar="N",
                       help=f"lines longer than N bytes are reported, not parsed (default {DEFAULT_MAX_LINE_BYTES:,};"
                            f" 0 for no limit)")


def register_cli(subparsers: Any) -> None:
    """Add ``data`` and its subcommands to an argparse ``subparsers`` object (``func=`` set on each)."""
    data = subparsers.add_parser(
        "data", help="validate, inspect, convert, split and leak-check fine-tuning datasets",
        description="Validate, inspect, convert, split, dedupe and leak-check fine-tuning datasets "
                    "(OpenAI chat JSONL). Each command prints tables, or JSON with --json.")
    sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", help="check every line as OpenAI's chat fine-tuning does",
                       description="Check every line of a chat (or preference/DPO) fine-tuning JSONL file. "
                                   "Exit 1 when any line has an error, 2 when the file cannot be read.")
    p.add_argument("file", help="the JSONL dataset")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"the model to be fine-tuned, for its tokenizer and training context (default {DEFAULT_MODEL})")
    p.add_argument("--max-details", type=int, default=DEFAULT_MAX_DETAILS, metavar="N",
                   help=f"list at most N errors and N warnings (default {DEFAULT_MAX_DETAILS}; -1 for all)")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument("-v", "--verbose", action="store_true", help="list warning details even when there are errors")
    _common(p)
    p.set_defaults(func=_run(_cmd_validate))

    p = sub.add_parser("stats", help="token counts, billed tokens, epochs and estimated training cost",
                       description="Per-example distributions, billed training tokens (each example capped at the "
                                   "model's training context), OpenAI's default epochs and the estimated cost.")
    p.add_argument("file", help="the JSONL dataset")
    p.add_argument("--model", required=True, help="the model to be fine-tuned (e.g. gpt-4o-mini-2024-07-18)")
    p.add_argument("--epochs", type=int, help="override the default number of epochs")
    p.add_argument("--prices", metavar="FILE", help="a YAML/JSON price file overriding the built-in prices")
    _common(p)
    p.set_defaults(func=_run(_cmd_stats))

    p = sub.add_parser("convert", help="CSV or a *.ft.yaml suite -> chat JSONL; chat JSONL -> suite",
                       description="CSV (input and expected-answer columns) or a *.ft.yaml suite to chat JSONL; "
                                   "chat JSONL to a suite with inline cases. The direction follows SOURCE's name.")
    p.add_argument("source", help="a .csv/.tsv file, a *.ft.yaml suite, or a .jsonl dataset")
    p.add_argument("-o", "--output", help="where to write (default: SOURCE with the new extension)")
    p.add_argument("--input-col", help=f"CSV column of the user input (default: first of {', '.join(INPUT_COLUMNS)})")
    p.add_argument("--expected-col",
                   help=f"CSV column of the expected answer (default: first of {', '.join(EXPECTED_COLUMNS)})")
    p.add_argument("--system", help="system message for every CSV example")
    p.add_argument("--name", help="the suite's name when writing a suite (default: the file's name)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    _common(p, line_limit=False)
    p.set_defaults(func=_run(_cmd_convert))

    p = sub.add_parser("split", help="deterministic train/validation split",
                       description="Split a JSONL dataset into FILE.train.jsonl and FILE.val.jsonl. The same seed "
                                   "gives the same split; the input is never modified.")
    p.add_argument("file", help="the JSONL dataset")
    p.add_argument("--val", type=float, default=0.1,
                   help="validation share (0 < VAL < 1) or number of examples (>= 1); default 0.1")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--stratify", action="store_true",
                   help="keep each final assistant answer's (label's) share in both files")
    p.add_argument("--out-train", help="train file (default FILE.train.jsonl)")
    p.add_argument("--out-val", help="validation file (default FILE.val.jsonl)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    _common(p)
    p.set_defaults(func=_run(_cmd_split))

    p = sub.add_parser("dedupe", help="write the dataset without duplicate examples",
                       description="Write FILE.dedup.jsonl without repeated examples (first occurrence kept).")
    p.add_argument("file", help="the JSONL dataset")
    p.add_argument("-o", "--output", help="output file (default FILE.dedup.jsonl)")
    p.add_argument("--by", choices=("example", "input"), default="example",
                   help="'example': equal JSON (default); 'input': equal normalised user messages")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    _common(p)
    p.set_defaults(func=_run(_cmd_dedupe))

    p = sub.add_parser("check-leak", help="eval cases whose input appears in the training data",
                       description="List eval cases whose user input (casefolded, whitespace collapsed) also "
                                   "appears in the training data. Exit 1 when any does.")
    p.add_argument("train", help="the training JSONL")
    p.add_argument("suites", nargs="+", metavar="SUITE", help="*.ft.yaml suites or JSONL files of eval cases")
    _common(p)
    p.set_defaults(func=_run(_cmd_check_leak))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pytest-ft data ...`` (argv starts with ``data``); returns the exit code."""
    parser = argparse.ArgumentParser(prog="pytest-ft")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_cli(sub)
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return args.func(args)
