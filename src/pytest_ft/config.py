"""The ``--ft-*`` options: declared once, typed where they are declared, resolved once.

Each option is a command-line flag and an ini key of the same name (``--ft-timeout`` /
``ft_timeout``); the command line wins, then the ini file, then the default. pytest
converts ini values by their declared type; the flags are converted by argparse with the
same type, and :class:`Options` checks the ranges, naming the option in every error.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import pytest

from .recording import RECORD_MODES
from .run import DEFAULT_CONCURRENCY
from .suite import PASS_RULES


def _number(kind: type) -> Callable[[str], Any]:
    """argparse type: a finite number (argparse's own ``float`` takes "nan" and "inf")."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
        return value
    convert.__name__ = kind.__name__
    return convert


def _pass_rule(text: str) -> str | int:
    if text in PASS_RULES:
        return text
    if str(text).isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected {', '.join(PASS_RULES)} or a number, got {text!r}")


@dataclass(frozen=True)
class Option:
    name: str  # as on the command line, without "--ft-"
    help: str
    kind: type = str  # str, int, float, bool or Path
    default: Any = None
    minimum: float | None = None  # the smallest value allowed (inclusive)
    maximum: float | None = None
    above: float | None = None  # values must be greater than this
    choices: tuple[str, ...] | None = None
    convert: Callable[[str], Any] | None = None  # for values with a shape of their own (pass_if)

    @property
    def dest(self) -> str:
        return "ft_" + self.name.replace("-", "_")


OPTIONS = (
    Option("model", "the fine-tuned model under test, e.g. ft:gpt-4o-mini-2024-07-18:acme:x:abc123"),
    Option("base-model", "the base model to compare with (default: the suite's, else the base named in the ft: id)"),
    Option("base-url", "OpenAI-compatible endpoint (default: $OPENAI_BASE_URL, else OpenAI's)"),
    Option("reference", "the model being replaced (role 'reference'): every other model reports its agreement "
                        "with it, case by case"),
    Option("judge-model", "model for 'judge' graders"),
    Option("concurrency", f"requests in flight at once, across cases and models (default {DEFAULT_CONCURRENCY})",
           int, DEFAULT_CONCURRENCY, minimum=1),
    Option("timeout", "seconds a request may take, whole answer included, before it is retried (default 60)",
           float, 60.0, above=0),
    Option("retries", "retries of a request after 429, 5xx, timeouts or dropped connections (default 4)",
           int, 4, minimum=0),
    Option("tpm", "tokens-per-minute budget: requests wait rather than exceed it", int, minimum=1),
    Option("repeat", "sample each model N times per case, for suites and cases that do not say (default 1)",
           int, 1, minimum=1, maximum=100),
    Option("pass-if", "with repeats, a case passes when: majority (default), all, any, or a number k of samples",
           str, "majority", convert=_pass_rule),
    Option("min-accuracy", "gate every suite on the tuned model's accuracy (0..1)", float, minimum=0, maximum=1),
    Option("train", "fine-tune on this chat JSONL (unless --ft-model is given) and evaluate the model it makes", Path),
    Option("train-poll", "seconds between fine-tuning job status checks (default 10)", float, 10.0, above=0),
    Option("batch-poll", "seconds between batch status checks (default 30)", float, 30.0, above=0),
    Option("max-regressions", "gate every suite on cases that regressed since --ft-baseline (else against base)",
           int, minimum=0),
    Option("baseline", "an earlier JSON report to compare with, case by case", Path),
    Option("report", "write the JSON report here", Path),
    Option("markdown", "write the summary as GitHub Markdown here (also appended to $GITHUB_STEP_SUMMARY)", Path),
    Option("html", "write a self-contained HTML report here", Path),
    Option("prices", "YAML/JSON price file overriding the built-in per-1M-token prices", Path),
    Option("retirements", "YAML/JSON file of model retirement dates overriding the built-in calendar", Path),
    Option("record-mode", "vcrpy record mode: once (default: replay what is recorded, record what is missing), "
                          "new_episodes, none (replay only, no network), all (re-record)", str, "once",
           choices=RECORD_MODES),
    Option("cassette-dir", "where recordings live (default: cassettes/ beside each suite)", Path),
    Option("batch", "send every suite's requests as OpenAI Batch API jobs (half price, within 24 h)", bool, False),
)
FLAGS = (  # command line only
    ("batch-submit-only", "with --ft-batch: submit the batches and exit; the same command later collects them"),
    ("launch", "allow launching a (paid) fine-tuning job when none matches the training data"),
    ("disable-recording", "send every request live and record nothing"),
)
OUTPUT_FILES = ("report", "markdown", "html")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("ft", "pytest-ft: evaluate fine-tuned models")
    for option in OPTIONS:
        if option.kind is bool:
            group.addoption(f"--ft-{option.name}", dest=option.dest, action="store_true", default=None,
                            help=option.help)
            parser.addini(option.dest, option.help, type="bool", default=option.default)
            continue
        convert = option.convert or (_number(option.kind) if option.kind in (int, float) else None)
        extra = {"type": convert} if convert else {}
        group.addoption(f"--ft-{option.name}", dest=option.dest, default=None, help=option.help,
                        choices=option.choices, **extra)
        ini_type = {int: "int", float: "float"}.get(option.kind, "string")
        parser.addini(option.dest, option.help, type=ini_type,
                      default=option.default if ini_type != "string" else None)
    for name, help_text in FLAGS:
        group.addoption(f"--ft-{name}", dest="ft_" + name.replace("-", "_"), action="store_true", default=False,
                        help=help_text)


@dataclass
class Options:
    """Every ``--ft-*`` option, resolved: command line, else ini, else default."""

    model: str | None = None
    base_model: str | None = None
    base_url: str | None = None
    reference: str | None = None
    judge_model: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = 60.0
    retries: int = 4
    tpm: int | None = None
    repeat: int = 1
    pass_if: str | int = "majority"
    min_accuracy: float | None = None
    train: Path | None = None
    train_poll: float = 10.0
    batch_poll: float = 30.0
    max_regressions: int | None = None
    baseline: Path | None = None
    report: Path | None = None
    markdown: Path | None = None
    html: Path | None = None
    prices: Path | None = None
    retirements: Path | None = None
    record_mode: str | None = "once"  # None: recording disabled
    cassette_dir: Path | None = None
    batch: bool = False
    batch_submit_only: bool = False
    launch: bool = False

    @classmethod
    def from_config(cls, config: pytest.Config) -> "Options":
        values = {option.dest[3:]: _resolve(config, option) for option in OPTIONS}
        options = cls(**values, batch_submit_only=config.getoption("ft_batch_submit_only", False),
                      launch=config.getoption("ft_launch", False))
        options.batch = options.batch or options.batch_submit_only
        if config.getoption("ft_disable_recording", False):
            options.record_mode = None
        for name in OUTPUT_FILES:
            target = getattr(options, name)
            if target is not None and (target.is_dir() or any(p.exists() and not p.is_dir() for p in target.parents)):
                raise pytest.UsageError(f"--ft-{name}: {target} is a folder, or lies under a file: "
                                        f"give the path of the file to write")
        if options.cassette_dir is not None and options.cassette_dir.exists() and not options.cassette_dir.is_dir():
            raise pytest.UsageError(f"--ft-cassette-dir: {options.cassette_dir} is not a folder")
        return options

    def __post_init__(self) -> None:
        known = {f.name for f in fields(self)}
        assert all(option.dest[3:] in known for option in OPTIONS)


def _resolve(config: pytest.Config, option: Option) -> Any:
    value = config.getoption(option.dest, None)
    from_cli = value is not None
    if not from_cli:
        try:
            value = config.getini(option.dest)
        except (ValueError, pytest.UsageError) as exc:
            raise pytest.UsageError(f"{option.dest} (ini): {exc}") from None
        if value in ("", None):
            value = option.default
        elif option.kind is str and option.convert is not None:
            value = _ini(option, option.convert, value)
        elif option.kind is str and option.choices and value not in option.choices:
            raise pytest.UsageError(f"{option.dest} (ini): expected one of {', '.join(option.choices)}, "
                                    f"got {value!r}")
    if value is None:
        return None
    if option.kind is Path:
        return Path(config.invocation_params.dir if from_cli else config.rootpath, value)
    if option.kind in (int, float):
        _check_range(option, value, from_cli)
    return value


def _ini(option: Option, convert: Callable[[str], Any], value: Any) -> Any:
    try:
        return convert(str(value))
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"{option.dest} (ini): {exc}") from None


def _check_range(option: Option, value: float, from_cli: bool) -> None:
    flag = f"--ft-{option.name}" if from_cli else f"{option.dest} (ini)"
    if not math.isfinite(value):
        raise pytest.UsageError(f"{flag}: expected a number, got {value!r}")
    if option.above is not None and value <= option.above:
        raise pytest.UsageError(f"{flag} must be more than {option.above:g}, got {value:g}")
    if option.minimum is not None and value < option.minimum:
        raise pytest.UsageError(f"{flag} must be {option.minimum:g} or more, got {value:g}")
    if option.maximum is not None and value > option.maximum:
        raise pytest.UsageError(f"{flag} must be at most {option.maximum:g}, got {value:g}")
