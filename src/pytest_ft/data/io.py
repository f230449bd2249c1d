"""Reading datasets one numbered line at a time, and writing outputs without harming inputs.

A dataset of a million lines is read as a stream, so that every command runs in bounded
memory; each line keeps its number for the reports. Outputs are streamed to a temporary file
next to the target and renamed into place only when complete, and never over an input.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

from .errors import DataError

# A line longer than this is not parsed (it is reported as ``line_too_long``): no text-only
# example that long fits any model's training context, and parsing it would cost memory and time.
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024

BOM = b"\xef\xbb\xbf"
BLANK = object()  # the parsed value of a blank line
SUITE_SUFFIXES = (".yaml", ".yml")


# --------------------------------------------------------------------------------------------
# reading lines


@dataclass
class Raw:
    lineno: int
    data: bytes | None  # the line without its line ending; None when over the byte limit
    size: int           # bytes the line takes in the file, line ending included
    newline: bool       # False only for a last line without a trailing newline


def _iter_raw(f: BinaryIO, max_line_bytes: int) -> Iterator[Raw]:
    limit = max_line_bytes if max_line_bytes and max_line_bytes > 0 else -1
    lineno = 0
    while True:
        chunk = f.readline(limit + 1 if limit > 0 else -1)
        if not chunk:
            return
        lineno += 1
        newline = chunk.endswith(b"\n")
        if limit > 0 and len(chunk) - newline > limit:
            size = len(chunk)
            while not newline:  # drain the rest of the line without keeping it
                more = f.readline(1 << 20)
                if not more:
                    break
                size += len(more)
                newline = more.endswith(b"\n")
            yield Raw(lineno, None, size, newline)
            continue
        data = chunk[:-1] if newline else chunk
        if data.endswith(b"\r"):
            data = data[:-1]
        yield Raw(lineno, data, len(chunk), newline)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate in the strings (keys included) of a parsed JSON value, or None.

    ``json.loads`` turns an unpaired ``\\ud800`` escape into such a character: it is no text,
    and encoding it (to UTF-8, for a tokenizer, a hash or an output file) raises.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return found.group()
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


@dataclass
class Parsed:
    lineno: int
    obj: Any = None             # the parsed JSON value (or BLANK)
    kind: str | None = None     # error kind when the line could not be parsed
    message: str = ""
    bom: bool = False
    data: bytes | None = None   # the line's bytes (without BOM / line ending)


def _parse(raw: Raw, max_line_bytes: int) -> Parsed:
    if raw.data is None:
        return Parsed(raw.lineno, kind="line_too_long",
                      message=f"line is {_human_bytes(raw.size)}, over the {_human_bytes(max_line_bytes)} "
                              f"limit (--max-line-bytes): not parsed")
    data = raw.data
    bom = False
    if raw.lineno == 1 and data.startswith(BOM):
        data, bom = data[3:], True
    if not data.strip():
        return Parsed(raw.lineno, obj=BLANK, kind="blank_line",
                      message="blank line" if data == b"" else "line holds only whitespace",
                      bom=bom, data=data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1]
        return Parsed(raw.lineno, kind="encoding_error",
                      message=f"not valid UTF-8: byte 0x{bad.hex()} at byte {exc.start + 1} of the line "
                              f"(save the file as UTF-8)", bom=bom)
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        if not raw.newline:
            return Parsed(raw.lineno, kind="truncated_line",
                          message=f"the last line is incomplete (no newline at the end, and {_json_error(exc)}): "
                                  f"was the file cut off?", bom=bom)
        return Parsed(raw.lineno, kind="invalid_json", message=_json_error(exc), bom=bom)
    # valid UTF-8 holds no surrogate: only an escape can make one, so most lines skip the walk
    surrogate = lone_surrogate(obj) if _SURROGATE_ESCAPE.search(text) else None
    if surrogate:
        return Parsed(raw.lineno, kind="encoding_error",
                      message=f"not valid Unicode: the escape \\u{ord(surrogate):04x} is half of a surrogate pair "
                              f"(was a character cut in two?)", bom=bom)
    return Parsed(raw.lineno, obj=obj, bom=bom, data=data)


def _json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON: {exc}"


def _human_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


class _Progress:
    """A one-line progress indicator on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str, total_bytes: int, enabled: bool | None = None, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            try:
                enabled = self.stream.isatty()
            except (AttributeError, ValueError):
                enabled = False
        self.enabled = enabled
        self.label = label
        self.total = max(total_bytes, 1)
        self.started = time.monotonic()
        self.last = self.started
        self.width = 0

    def update(self, done_bytes: int, lines: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        pct = min(100.0, 100.0 * done_bytes / self.total)
        rate = lines / max(now - self.started, 1e-9)
        text = f"{self.label}: {lines:,} lines ({pct:.0f}%, {rate:,.0f} lines/s)"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def _open_input(path: str | os.PathLike) -> tuple[Path, BinaryIO, int]:
    p = Path(path)
    try:
        f = open(p, "rb", buffering=1 << 20)
    except FileNotFoundError:
        raise DataError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{p}: is a directory, not a file") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        size = os.fstat(f.fileno()).st_size
    except OSError:  # pragma: no cover
        size = 0
    return p, f, size


def iter_lines(path: str | os.PathLike, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               progress: bool | None = None, label: str = "") -> Iterator[Raw]:
    """The file's lines as bytes, with their numbers; a progress line on a terminal."""
    p, f, size = _open_input(path)
    bar = _Progress(label or str(p), size, progress)
    done = 0
    try:
        with f:
            for raw in _iter_raw(f, max_line_bytes):
                done += raw.size
                if raw.lineno & 0x3FF == 0:
                    bar.update(done, raw.lineno)
                yield raw
    finally:
        bar.close()


def iter_parsed(path: str | os.PathLike, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                progress: bool | None = None, label: str = "") -> Iterator[Parsed]:
    """Every line parsed, or with the kind of error that kept it from parsing."""
    for raw in iter_lines(path, max_line_bytes=max_line_bytes, progress=progress, label=label):
        yield _parse(raw, max_line_bytes)


def examples_strict(path, *, max_line_bytes=DEFAULT_MAX_LINE_BYTES, progress=None, label="",
                    blank: list[int] | None = None) -> Iterator[Parsed]:
    """Parsed examples; blank lines skipped (their numbers added to ``blank``); a bad line raises."""
    any_line = False
    for parsed in iter_parsed(path, max_line_bytes=max_line_bytes, progress=progress, label=label):
        any_line = True
        if parsed.obj is BLANK:
            if blank is not None:
                blank.append(parsed.lineno)
            continue
        if parsed.kind:
            raise DataError(f"{path}: line {parsed.lineno}: {parsed.kind}: {parsed.message} "
                            f"(run `pytest-ft data validate {path}`)", exit_code=1)
        yield parsed
    if not any_line:
        raise DataError(f"{path}: the file is empty", exit_code=1)


def read_suite(path: Path):
    """A ``*.ft.yaml`` suite, its loader's errors turned into :class:`DataError`."""
    try:
        from ..suite import load_suite
    except ImportError as exc:  # pragma: no cover - the suite module ships with the core package
        raise DataError(f"{path}: cannot read suites: pytest_ft.suite is unavailable ({exc})") from None
    try:
        return load_suite(path)
    except DataError:
        raise
    except Exception as exc:  # the suite loader's own error types carry file and line
        message = str(exc)
        raise DataError(message if str(path) in message else f"{path}: {message}", exit_code=1) from None


# --------------------------------------------------------------------------------------------
# writing outputs


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:  # pragma: no cover
        pass
    return a.resolve() == b.resolve()


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path], force: bool) -> None:
    """Refuse, before any work, an output that is an input, is given twice, or exists without ``force``."""
    for i, out in enumerate(outputs):
        for inp in inputs:
            if _same_file(out, inp):
                raise DataError(f"{out}: refusing to write over the input file {inp}")
        for other in outputs[:i]:
            if _same_file(out, other):
                raise DataError(f"{out}: the same path is given for two outputs")
        if out.exists() and not force:
            raise DataError(f"{out} already exists: pass --force to overwrite it")
        if out.exists() and out.is_dir():
            raise DataError(f"{out} is a directory")


class AtomicWriter:
    """Write to a temporary file next to ``path``; rename it into place only on success.

    Not :func:`pytest_ft.files.write_atomic`, which takes a whole text and scrubs it: outputs
    here are streamed (a million lines in bounded memory), and dataset bytes are copied
    exactly as they are.
    """

    def __init__(self, path: Path, mode: str = "wb"):
        self.path = path
        self.mode = mode

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        if "b" in self.mode:
            self.f = os.fdopen(fd, self.mode, buffering=1 << 20)
        else:
            self.f = os.fdopen(fd, self.mode, encoding="utf-8", newline="")
        return self.f

    def __exit__(self, exc_type, exc, tb):
        self.f.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            try:
                os.unlink(self.tmp)
            except OSError:  # pragma: no cover
                pass
        return False


def stat_key(path: Path) -> tuple[int, int]:
    """Size and modification time: what tells that a file changed between two passes."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def default_output(path: Path, suffix: str) -> Path:
    """``path`` with its ``.jsonl`` / ``.json`` extension replaced by ``suffix``."""
    name = path.name
    for ext in (".jsonl", ".json"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + suffix)
    return path.with_name(name + suffix)


def reread(src: Path, before: tuple[int, int], *, command: str, doing: str, max_line_bytes: int,
           progress: bool | None) -> Iterator[tuple[int, bytes]]:
    """The second pass of a two-pass command: ``src``'s non-blank lines again, byte for byte (without a
    BOM), as (line number, bytes). ``src`` must be as it was in the first pass (``before``, its
    :func:`stat_key`): the first pass decided what to do with each line."""
    if stat_key(src) != before:
        raise DataError(f"{src} changed while it was being {doing}; try again", exit_code=1)
    return _nonblank_lines(src, doing, max_line_bytes=max_line_bytes, progress=progress,
                           label=f"{command} {src} (2/2)")


def _nonblank_lines(src: Path, doing: str, **options: Any) -> Iterator[tuple[int, bytes]]:
    for raw in iter_lines(src, **options):
        line_data = raw.data
        if line_data is None:  # pragma: no cover - the first pass would have stopped
            raise DataError(f"{src}: line {raw.lineno} changed while it was being {doing}", exit_code=1)
        if raw.lineno == 1 and line_data.startswith(BOM):
            line_data = line_data[3:]
        if line_data.strip():
            yield raw.lineno, line_data
