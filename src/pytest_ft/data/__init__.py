"""``pytest-ft data``: validate, inspect, convert, split, dedupe and leak-check fine-tuning datasets.

Every command is a plain function returning a report dataclass (``validate``, ``stats``,
``convert``, ``split``, ``dedupe``, ``check_leak``), and a CLI subcommand printing tables for
people or ``--json`` for machines. Files are read as a stream, one line at a time: a dataset
of a million lines is checked in bounded memory (a few compact integers per example). No
command ever writes over its input: outputs go to a temporary file next to the target and are
renamed into place only when complete, and an existing output is replaced only with ``--force``.

Validation follows OpenAI's chat fine-tuning format and the checks of its cookbook notebook
"Chat_finetuning_data_prep" (error kinds ``data_type``, ``missing_messages_list``,
``message_missing_key``, ``message_unrecognized_key``, ``unrecognized_role``, ``missing_content``,
``example_missing_assistant_message``), plus kinds of our own for what the notebook does not
check (see ``ERROR_KINDS``). Token counts, billed tokens and default epochs follow the same
notebook; see :mod:`pytest_ft.tokens`.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import hashlib
import json
import math
import os
import random
import re
import sys
import tempfile
import time
import unicodedata
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Sequence

from tabulate import tabulate

from . import tokens

__all__ = [
    "DataError", "Problem", "ValidationReport", "StatsReport", "ConvertReport", "SplitReport",
    "DedupeReport", "Leak", "LeakReport", "validate", "stats", "convert", "split", "dedupe",
    "check_leak", "default_epochs", "training_token_limit", "normalize_input", "lone_surrogate", "register_cli",
    "main",
    "ERROR_KINDS", "WARNING_KINDS",
]

DEFAULT_MODEL = "gpt-4o-mini"
# A line longer than this is not parsed (it is reported as ``line_too_long``): no text-only
# example that long fits any model's training context, and parsing it would cost memory and time.
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DETAILS = 100

MIN_EXAMPLES = 10           # OpenAI rejects a training file with fewer examples
RECOMMENDED_EXAMPLES = 50   # OpenAI: "clear improvements ... with 50 to 100 training examples"

# Default epochs, as OpenAI's cookbook notebook "Chat_finetuning_data_prep" estimates them.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

# Tokens per training example, beyond which OpenAI truncates the example. OpenAI's fine-tuning
# guide ("Token limits": gpt-4o / gpt-4o-mini 65,536; gpt-3.5-turbo-0125 and -1106 16,385;
# gpt-3.5-turbo-0613 4,096) and Azure OpenAI's fine-tuning model table (gpt-4.1 and
# gpt-4.1-mini 65,536, gpt-4.1-nano 32,768); gpt-4-0613 is an 8,192-token model.
# Matched like tokenizer families: exact id, or the id followed by "-" and a snapshot suffix.
TRAINING_TOKEN_LIMITS: list[tuple[str, int]] = [
    ("gpt-3.5-turbo-0613", 4_096),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-35-turbo", 16_385),
    ("gpt-4o-mini", 65_536),
    ("gpt-4o", 65_536),
    ("gpt-4.1-nano", 32_768),
    ("gpt-4.1-mini", 65_536),
    ("gpt-4.1", 65_536),
    ("gpt-4", 8_192),
]

ROLES = ("system", "user", "assistant", "tool", "function")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id", "refusal")
CHAT_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
DPO_KEYS = ("input", "preferred_output", "non_preferred_output")
DPO_INPUT_KEYS = ("messages", "tools", "parallel_tool_calls")

ERROR_KINDS: dict[str, str] = {
    # the cookbook's kinds
    "data_type": "the line (or a message) is not a JSON object",
    "missing_messages_list": "no non-empty 'messages' list",
    "message_missing_key": "a message lacks 'role' or 'content' (or a tool message its tool_call_id)",
    "message_unrecognized_key": "a message has a key OpenAI does not accept",
    "unrecognized_role": "a role other than system, user, assistant, tool, function",
    "missing_content": "content is null, empty or not text",
    "example_missing_assistant_message": "no assistant message to learn from",
    # ours
    "empty_file": "the file holds no example",
    "blank_line": "an empty line between examples",
    "encoding_error": "bytes that are not UTF-8, or a \\u escape that is half a surrogate pair",
    "invalid_json": "the line is not valid JSON",
    "truncated_line": "the last line is cut off (no newline, incomplete JSON)",
    "line_too_long": "the line is over the byte limit and was not parsed",
    "unrecognized_key": "a top-level key OpenAI does not accept",
    "invalid_content_part": "a content list part other than text (images only in user messages)",
    "invalid_weight": "weight other than 0 or 1, or on a non-assistant message",
    "invalid_name": "a message name that is not a string",
    "invalid_tool_calls": "malformed tool_calls / function_call, or on a non-assistant message",
    "invalid_tools": "malformed tools, functions or parallel_tool_calls",
    "dpo_missing_output": "a preference example without a non-empty preferred_output / non_preferred_output list",
    "dpo_output_not_assistant": "a preference output message whose role is not assistant",
    "mixed_example_types": "chat and preference (DPO) examples in one file",
}

WARNING_KINDS: dict[str, str] = {
    "too_few_examples": f"fewer than {MIN_EXAMPLES} examples: OpenAI will reject the file",
    "few_examples": f"fewer than {RECOMMENDED_EXAMPLES} examples: probably too few to help",
    "example_too_long": "longer than the model's training context: it will be truncated",
    "missing_system_message": "no system message",
    "missing_user_message": "no user message",
    "empty_assistant_answer": "an assistant message with empty content",
    "duplicate_example": "the same example appears earlier in the file",
    "dpo_identical_outputs": "preferred and non-preferred outputs are identical",
    "utf8_bom": "the file starts with a UTF-8 byte-order mark",
    "unknown_token_limit": "the model's training context is not known: no truncation applied",
}


class DataError(Exception):
    """A dataset or option problem the CLI reports as ``error: ...`` with an exit code."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


# --------------------------------------------------------------------------------------------
# models, epochs


def _family_match(name: str, family: str) -> bool:
    return name == family or name.startswith(family + "-")


def training_token_limit(model: str) -> int | None:
    """Tokens per training example for ``model`` (aliases and ``ft:`` ids resolved); None if unknown."""
    from ..report.pricing import ALIASES

    name = tokens.base_model(model.strip())
    name = ALIASES.get(name, name)
    for family, limit in TRAINING_TOKEN_LIMITS:
        if _family_match(name, family):
            return limit
    return None


def default_epochs(n_examples: int) -> int | None:
    """The epochs OpenAI picks by default for ``n_examples`` (cookbook method); None for no examples."""
    if n_examples <= 0:
        return None
    epochs = TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return epochs


# --------------------------------------------------------------------------------------------
# reading lines


@dataclass
class _Raw:
    lineno: int
    data: bytes | None  # the line without its line ending; None when over the byte limit
    size: int           # bytes the line takes in the file, line ending included
    newline: bool       # False only for a last line without a trailing newline


def _iter_raw(f: BinaryIO, max_line_bytes: int) -> Iterator[_Raw]:
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
            yield _Raw(lineno, None, size, newline)
            continue
        data = chunk[:-1] if newline else chunk
        if data.endswith(b"\r"):
            data = data[:-1]
        yield _Raw(lineno, data, len(chunk), newline)


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


_BOM = b"\xef\xbb\xbf"
_BLANK = object()


@dataclass
class _Parsed:
    lineno: int
    obj: Any = None             # the parsed JSON value (or _BLANK)
    kind: str | None = None     # error kind when the line could not be parsed
    message: str = ""
    bom: bool = False
    data: bytes | None = None   # the line's bytes (without BOM / line ending)


def _parse(raw: _Raw, max_line_bytes: int) -> _Parsed:
    if raw.data is None:
        return _Parsed(raw.lineno, kind="line_too_long",
                       message=f"line is {_human_bytes(raw.size)}, over the {_human_bytes(max_line_bytes)} "
                               f"limit (--max-line-bytes): not parsed")
    data = raw.data
    bom = False
    if raw.lineno == 1 and data.startswith(_BOM):
        data, bom = data[3:], True
    if not data.strip():
        return _Parsed(raw.lineno, obj=_BLANK, kind="blank_line",
                       message="blank line" if data == b"" else "line holds only whitespace",
                       bom=bom, data=data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1]
        return _Parsed(raw.lineno, kind="encoding_error",
                       message=f"not valid UTF-8: byte 0x{bad.hex()} at byte {exc.start + 1} of the line "
                               f"(save the file as UTF-8)", bom=bom)
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        if not raw.newline:
            return _Parsed(raw.lineno, kind="truncated_line",
                           message=f"the last line is incomplete (no newline at the end, and {_json_error(exc)}): "
                                   f"was the file cut off?", bom=bom)
        return _Parsed(raw.lineno, kind="invalid_json", message=_json_error(exc), bom=bom)
    # valid UTF-8 holds no surrogate: only an escape can make one, so most lines skip the walk
    surrogate = lone_surrogate(obj) if _SURROGATE_ESCAPE.search(text) else None
    if surrogate:
        return _Parsed(raw.lineno, kind="encoding_error",
                       message=f"not valid Unicode: the escape \\u{ord(surrogate):04x} is half of a surrogate pair "
                               f"(was a character cut in two?)", bom=bom)
    return _Parsed(raw.lineno, obj=obj, bom=bom, data=data)


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


def _iter_lines(path: str | os.PathLike, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                progress: bool | None = None, label: str = "") -> Iterator[_Raw]:
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


def _iter_parsed(path: str | os.PathLike, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 progress: bool | None = None, label: str = "") -> Iterator[_Parsed]:
    for raw in _iter_lines(path, max_line_bytes=max_line_bytes, progress=progress, label=label):
        yield _parse(raw, max_line_bytes)


def _examples_strict(path, *, max_line_bytes=DEFAULT_MAX_LINE_BYTES, progress=None, label="",
                     blank: list[int] | None = None) -> Iterator[_Parsed]:
    """Parsed examples; blank lines skipped (their numbers added to ``blank``); a bad line raises."""
    any_line = False
    for parsed in _iter_parsed(path, max_line_bytes=max_line_bytes, progress=progress, label=label):
        any_line = True
        if parsed.obj is _BLANK:
            if blank is not None:
                blank.append(parsed.lineno)
            continue
        if parsed.kind:
            raise DataError(f"{path}: line {parsed.lineno}: {parsed.kind}: {parsed.message} "
                            f"(run `pytest-ft data validate {path}`)", exit_code=1)
        yield parsed
    if not any_line:
        raise DataError(f"{path}: the file is empty", exit_code=1)


# --------------------------------------------------------------------------------------------
# validating one example


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


_Add = Callable[[str, str], None]


def _check_content(msg: Mapping[str, Any], role: Any, where: str, has_call: bool, add: _Add,
                   warn: _Add) -> None:
    content = msg["content"]
    if content is None:
        if not has_call:
            add("missing_content", f"{where}: content is null")
        return
    if isinstance(content, str):
        if not content.strip():
            if role == "assistant":
                if not has_call:
                    warn("empty_assistant_answer", f"{where}: the assistant's content is empty")
            else:
                add("missing_content", f"{where}: content is empty")
        return
    if isinstance(content, list):
        if not content:
            if role == "assistant" and not has_call:
                warn("empty_assistant_answer", f"{where}: the assistant's content is an empty list")
            elif role != "assistant":
                add("missing_content", f"{where}: content is an empty list")
            return
        has_text = False
        for i, part in enumerate(content, 1):
            if not isinstance(part, dict):
                add("invalid_content_part", f"{where}: content part {i} is {_type_name(part)}, not an object")
                continue
            ptype = part.get("type")
            if ptype == "text":
                if not isinstance(part.get("text"), str):
                    add("invalid_content_part", f"{where}: content part {i} (text) has no 'text' string")
                elif part["text"].strip():
                    has_text = True
            elif ptype == "image_url" and role == "user":
                image = part.get("image_url")
                if not (isinstance(image, dict) and isinstance(image.get("url"), str) and image["url"]):
                    add("invalid_content_part", f"{where}: content part {i} (image_url) has no 'url'")
                else:
                    has_text = True
            else:
                allowed = "'text' or 'image_url'" if role == "user" else "'text'"
                add("invalid_content_part", f"{where}: content part {i} has type {ptype!r}; "
                                            f"a {role} message takes {allowed} parts")
        if not has_text and role == "assistant" and not has_call:
            warn("empty_assistant_answer", f"{where}: the assistant's content has no text")
        return
    add("missing_content", f"{where}: content is {_type_name(content)}, not a string or a list of text parts")


def _check_tool_calls(msg: Mapping[str, Any], role: Any, where: str, add: _Add) -> bool:
    """Check tool_calls / function_call; True when the message carries a well-formed call."""
    has_call = False
    if "tool_calls" in msg:
        calls = msg["tool_calls"]
        if role != "assistant":
            add("invalid_tool_calls", f"{where}: tool_calls is only allowed on assistant messages")
        elif not isinstance(calls, list) or not calls:
            add("invalid_tool_calls", f"{where}: tool_calls must be a non-empty list")
        else:
            ok = True
            for i, call in enumerate(calls, 1):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(call, dict) or call.get("type", "function") != "function" \
                        or not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                        or not isinstance(fn.get("arguments"), str):
                    add("invalid_tool_calls", f"{where}: tool call {i} needs type 'function' and a function "
                                              f"with string 'name' and 'arguments'")
                    ok = False
                elif "id" in call and not isinstance(call["id"], str):
                    add("invalid_tool_calls", f"{where}: tool call {i} has a non-string id")
                    ok = False
            has_call = ok
    if "function_call" in msg:
        fc = msg["function_call"]
        if role != "assistant":
            add("invalid_tool_calls", f"{where}: function_call is only allowed on assistant messages")
        elif not isinstance(fc, dict) or not isinstance(fc.get("name"), str) \
                or not isinstance(fc.get("arguments"), str):
            add("invalid_tool_calls", f"{where}: function_call needs string 'name' and 'arguments'")
        else:
            has_call = True
    return has_call


def _check_message(msg: Any, where: str, add: _Add, warn: _Add) -> str | None:
    if not isinstance(msg, dict):
        add("data_type", f"{where} is {_type_name(msg)}, not an object")
        return None
    role = msg.get("role")
    if "role" not in msg:
        add("message_missing_key", f"{where} has no 'role'")
    elif role not in ROLES:
        add("unrecognized_role", f"{where}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
    unknown = [k for k in msg if k not in MESSAGE_KEYS]
    if unknown:
        add("message_unrecognized_key", f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                                        f"{', '.join(repr(k) for k in unknown)}")
    _check_tool_calls(msg, role, where, add)
    # an assistant turn may be a call instead of text (a malformed call is reported on its own)
    has_call = role == "assistant" and bool(msg.get("tool_calls") or msg.get("function_call"))
    if "content" in msg:
        _check_content(msg, role, where, has_call, add, warn)
    elif not has_call:
        add("message_missing_key", f"{where} has no 'content'")
    if "weight" in msg:
        weight = msg["weight"]
        if role != "assistant":
            add("invalid_weight", f"{where}: weight is only allowed on assistant messages")
        elif type(weight) is not int or weight not in (0, 1):
            add("invalid_weight", f"{where}: weight must be 0 or 1, got {json.dumps(weight)}")
    if "name" in msg and not isinstance(msg["name"], str):
        add("invalid_name", f"{where}: name must be a string, got {_type_name(msg['name'])}")
    if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
        add("message_missing_key", f"{where}: a tool message needs a 'tool_call_id' string")
    if role == "function" and not isinstance(msg.get("name"), str):
        add("message_missing_key", f"{where}: a function message needs a 'name'")
    return role if isinstance(role, str) else None


def _check_tools(container: Mapping[str, Any], prefix: str, add: _Add) -> None:
    if "tools" in container:
        tools_ = container["tools"]
        if not isinstance(tools_, list):
            add("invalid_tools", f"{prefix}tools must be a list, got {_type_name(tools_)}")
        else:
            for i, tool in enumerate(tools_, 1):
                fn = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict) \
                        or not isinstance(fn.get("name"), str):
                    add("invalid_tools", f"{prefix}tool {i} needs type 'function' and a function with a 'name'")
    if "functions" in container:
        fns = container["functions"]
        if not isinstance(fns, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in fns):
            add("invalid_tools", f"{prefix}functions must be a list of objects with a 'name'")
    if "parallel_tool_calls" in container and not isinstance(container["parallel_tool_calls"], bool):
        add("invalid_tools", f"{prefix}parallel_tool_calls must be true or false")


def _check_messages_list(messages: Any, owner: str, add: _Add, warn: _Add) -> list[str | None] | None:
    if messages is None:
        add("missing_messages_list", f"no '{owner}' list")
        return None
    if not isinstance(messages, list):
        add("missing_messages_list", f"'{owner}' is {_type_name(messages)}, not a list")
        return None
    if not messages:
        add("missing_messages_list", f"'{owner}' is empty")
        return None
    return [_check_message(m, f"message {i}", add, warn) for i, m in enumerate(messages, 1)]


def _example_type(obj: Any) -> str | None:
    if isinstance(obj, dict):
        if "messages" in obj:
            return "chat"
        if any(k in obj for k in DPO_KEYS):
            return "dpo"
    return None


def _check_example(obj: Any, add: _Add, warn: _Add) -> str | None:
    """Check one parsed line; returns its type ("chat" / "dpo") or None when it is neither."""
    if not isinstance(obj, dict):
        add("data_type", f"the line is {_type_name(obj)}, not a JSON object")
        return None
    kind = _example_type(obj)
    if kind == "dpo":
        unknown = [k for k in obj if k not in DPO_KEYS]
        if unknown:
            add("unrecognized_key", f"unknown top-level key{'s' if len(unknown) > 1 else ''} "
                                    f"{', '.join(repr(k) for k in unknown)} in a preference example")
        inp = obj.get("input")
        roles: list[str | None] = []
        if not isinstance(inp, dict):
            add("missing_messages_list", "a preference example needs an 'input' object with a 'messages' list")
        else:
            bad = [k for k in inp if k not in DPO_INPUT_KEYS]
            if bad:
                add("unrecognized_key", f"unknown key{'s' if len(bad) > 1 else ''} "
                                        f"{', '.join(repr(k) for k in bad)} in 'input'")
            roles = _check_messages_list(inp.get("messages"), "input.messages", add, warn) or []
            _check_tools(inp, "input.", add)
        outputs = []
        for key in ("preferred_output", "non_preferred_output"):
            out = obj.get(key)
            if not isinstance(out, list) or not out:
                add("dpo_missing_output", f"'{key}' must be a non-empty list of assistant messages")
                continue
            outputs.append(out)
            for i, msg in enumerate(out, 1):
                role = _check_message(msg, f"{key} message {i}", add, warn)
                if isinstance(msg, dict) and "role" in msg and role != "assistant":
                    add("dpo_output_not_assistant", f"{key} message {i} has role {msg.get('role')!r}, "
                                                    f"not 'assistant'")
        if len(outputs) == 2 and outputs[0] == outputs[1]:
            warn("dpo_identical_outputs", "preferred_output and non_preferred_output are identical")
        if roles:
            if "system" not in roles:
                warn("missing_system_message", "no system message")
            if "user" not in roles:
                warn("missing_user_message", "no user message")
        return "dpo"
    unknown = [k for k in obj if k not in CHAT_KEYS]
    if unknown and kind == "chat":
        add("unrecognized_key", f"unknown top-level key{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(repr(k) for k in unknown)} (allowed: {', '.join(CHAT_KEYS)})")
    roles = _check_messages_list(obj.get("messages"), "messages", add, warn)
    if roles is None:
        return kind
    _check_tools(obj, "", add)
    if "assistant" not in roles:
        add("example_missing_assistant_message", "no assistant message")
    if "system" not in roles:
        warn("missing_system_message", "no system message")
    if "user" not in roles:
        warn("missing_user_message", "no user message")
    return "chat"


def _canonical_hash(obj: Any) -> int:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


# --------------------------------------------------------------------------------------------
# reports


@dataclass
class Problem:
    line: int | None
    kind: str
    message: str
    severity: str = "error"


def _distribution(histogram: Mapping[int, int]) -> dict[str, float | int | None]:
    """min, max, mean, median, p10 and p90 of the values counted in ``histogram`` (value -> count).

    Quantiles use numpy's default (linear interpolation between order statistics), as the
    cookbook does; a histogram gives the same order statistics as the sorted values, in memory
    proportional to the number of distinct values rather than of examples.
    """
    n = sum(histogram.values())
    if not n:
        return {"min": None, "max": None, "mean": None, "median": None, "p10": None, "p90": None}
    values = sorted(histogram)
    ends = []  # ends[i]: number of examples with a value <= values[i]
    running = 0
    for v in values:
        running += histogram[v]
        ends.append(running)

    def order_statistic(k: int) -> int:  # the k-th smallest value, 0-based
        return values[bisect.bisect_right(ends, k)]

    def quantile(q: float) -> float:
        pos = (n - 1) * q
        lo = math.floor(pos)
        t = pos - lo
        a, b = order_statistic(lo), order_statistic(min(lo + 1, n - 1))
        return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t

    return {"min": values[0], "max": values[-1], "mean": sum(v * c for v, c in histogram.items()) / n,
            "median": quantile(0.5), "p10": quantile(0.1), "p90": quantile(0.9)}


class _Duplicates:
    """Finds repeated 64-bit hashes in bounded memory.

    Per item it keeps the hash and the line (12 bytes). A bitmap of about 32 bits per item
    (grown as items arrive) flags the hashes that may have been seen before; only those
    candidates (true repeats plus a few percent of bitmap collisions) are looked up at the end.
    """

    def __init__(self) -> None:
        self.bits = 1 << 16
        self.bitmap = bytearray(self.bits >> 3)
        self.hashes = array("Q")
        self.lines = array("I")
        self.candidates: set[int] = set()

    def _mark(self, h: int) -> None:
        i = h & (self.bits - 1)
        bit = 1 << (i & 7)
        if self.bitmap[i >> 3] & bit:
            self.candidates.add(h)
        else:
            self.bitmap[i >> 3] |= bit

    def add(self, h: int, line: int) -> None:
        if len(self.hashes) >= self.bits >> 5:
            self.bits <<= 2
            self.bitmap = bytearray(self.bits >> 3)
            for old in self.hashes:
                self._mark(old)
        self._mark(h)
        self.hashes.append(h)
        self.lines.append(line)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """(line, line of its first occurrence) for every repeat, in file order."""
        if not self.candidates:
            return
        first: dict[int, int] = {}
        for h, line in zip(self.hashes, self.lines, strict=True):
            if h in self.candidates:
                seen = first.get(h)
                if seen is None:
                    first[h] = line
                else:
                    yield line, seen


@dataclass
class ValidationReport:
    file: str
    model: str
    encoding: str
    max_tokens_per_example: int | None
    format: str | None = None                 # "chat", "dpo", or None when no example parsed
    lines: int = 0
    examples: int = 0                         # non-blank lines
    valid_examples: int = 0
    invalid_examples: int = 0                 # examples (non-blank lines) with at least one error
    lines_with_errors: int = 0                # invalid examples and blank lines
    errors: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)   # first --max-details errors, then warnings
    problems_truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["valid"] = self.ok
        d["error_count"] = sum(self.errors.values())
        d["warning_count"] = sum(self.warnings.values())
        return d


@dataclass
class StatsReport:
    file: str
    model: str
    encoding: str
    format: str | None
    lines: int
    examples: int
    invalid_examples: int
    errors: dict[str, int]
    messages_per_example: dict[str, Any]
    tokens_per_example: dict[str, Any]
    assistant_tokens_per_example: dict[str, Any]
    max_tokens_per_example: int | None
    examples_over_limit: int
    missing_system_message: int
    missing_user_message: int
    billed_tokens: int
    epochs: int | None
    epochs_source: str
    charged_tokens: int | None
    training_price_per_1m_tokens: float | None
    estimated_cost_usd: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Scan:
    """One streaming pass: validation problems and per-example compact numbers."""

    def __init__(self, path, model: str, *, max_line_bytes: int, max_details: int, progress: bool | None,
                 label: str, find_duplicates: bool = True):
        self.path = str(path)
        self.model = model
        self.encoding = tokens.encoding_for_model(model)
        self.limit = training_token_limit(model)
        self.count = tokens.example_token_counter(model)
        self.max_line_bytes = max_line_bytes
        self.max_details = max_details
        self.progress = progress
        self.label = label
        self.errors: Counter[str] = Counter()
        self.warnings: Counter[str] = Counter()
        self.error_details: list[Problem] = []
        self.warning_details: list[Problem] = []
        self.truncated = False
        self.lines = 0
        self.examples = 0
        self.invalid = 0
        self.error_lines = 0
        self.format: str | None = None
        self.valid = 0
        self.n_messages: Counter[int] = Counter()   # histograms: value -> examples
        self.n_tokens: Counter[int] = Counter()
        self.n_assistant: Counter[int] = Counter()
        self.duplicates: _Duplicates | None = _Duplicates() if find_duplicates else None
        self.over_limit = 0
        self.billed = 0

    def _record(self, severity: str, line: int | None, kind: str, message: str) -> None:
        counts, details = ((self.errors, self.error_details) if severity == "error"
                           else (self.warnings, self.warning_details))
        counts[kind] += 1
        if self.max_details < 0 or len(details) < self.max_details:
            details.append(Problem(line, kind, message, severity))
        else:
            self.truncated = True

    def run(self) -> "_Scan":
        for parsed in _iter_parsed(self.path, max_line_bytes=self.max_line_bytes, progress=self.progress,
                                   label=self.label):
            self.lines = parsed.lineno
            if parsed.bom:
                self._record("warning", 1, "utf8_bom", "the file starts with a UTF-8 byte-order mark (BOM)")
            if parsed.obj is _BLANK:
                self.error_lines += 1
                self._record("error", parsed.lineno, "blank_line", parsed.message)
                continue
            self.examples += 1
            if parsed.kind:
                self.invalid += 1
                self.error_lines += 1
                self._record("error", parsed.lineno, parsed.kind, parsed.message)
                continue
            self._example(parsed.lineno, parsed.obj)
        self._finish()
        return self

    def _example(self, lineno: int, obj: Any) -> None:
        line_errors: list[tuple[str, str]] = []
        line_warnings: list[tuple[str, str]] = []
        kind = _check_example(obj, lambda k, m: line_errors.append((k, m)),
                              lambda k, m: line_warnings.append((k, m)))
        if kind:
            if self.format is None:
                self.format = kind
            elif kind != self.format:
                line_errors.append(("mixed_example_types",
                                    f"a {'preference (DPO)' if kind == 'dpo' else 'chat'} example in a file whose "
                                    f"first example is {'chat' if kind == 'dpo' else 'a preference (DPO) one'}"))
        if line_errors:  # an invalid example gets its errors only: warnings are about valid ones
            self.invalid += 1
            self.error_lines += 1
            for k, m in line_errors:
                self._record("error", lineno, k, m)
            return
        for k, m in line_warnings:
            self._record("warning", lineno, k, m)
        if kind == "dpo":
            # OpenAI does not publish how preference examples are billed: we count both sequences,
            # the input with the preferred output and the input with the non-preferred one.
            inp = obj["input"]["messages"]
            n_msgs = len(inp) + 1
            good, good_asst = self.count(inp + obj["preferred_output"])
            bad, bad_asst = self.count(inp + obj["non_preferred_output"])
            n_tok, n_asst = good + bad, good_asst + bad_asst
        else:
            msgs = obj["messages"]
            n_msgs = len(msgs)
            n_tok, n_asst = self.count(msgs)
        if self.limit is not None and n_tok > self.limit:
            self.over_limit += 1
            self._record("warning", lineno, "example_too_long",
                         f"{n_tok:,} tokens, over the {self.limit:,}-token training context of {self.model}: "
                         f"it will be truncated")
        self.billed += min(n_tok, self.limit) if self.limit is not None else n_tok
        self.valid += 1
        self.n_messages[n_msgs] += 1
        self.n_tokens[n_tok] += 1
        self.n_assistant[n_asst] += 1
        if self.duplicates is not None:
            self.duplicates.add(_canonical_hash(obj), lineno)

    def _finish(self) -> None:
        if self.examples == 0:
            self._record("error", None, "empty_file",
                         "the file is empty" if self.lines == 0 else f"the file has no examples, only {self.lines} "
                                                                     f"blank line{'s' if self.lines != 1 else ''}")
        if self.duplicates is not None:
            for line, first in self.duplicates:
                self._record("warning", line, "duplicate_example", f"the same example as line {first}")
            self.duplicates = None  # frees the per-example arrays
        valid = self.valid
        if 0 < self.examples and valid < MIN_EXAMPLES:
            self._record("warning", None, "too_few_examples",
                         f"{valid} valid example{'s' if valid != 1 else ''}: OpenAI requires at least {MIN_EXAMPLES}")
        elif MIN_EXAMPLES <= valid < RECOMMENDED_EXAMPLES:
            self._record("warning", None, "few_examples",
                         f"{valid} examples: OpenAI sees clear improvements from 50-100; fewer rarely help")
        if self.limit is None and valid:
            self._record("warning", None, "unknown_token_limit",
                         f"the training context of {self.model} is not known: examples are not truncated in the "
                         f"billed-token count")

    def problems(self) -> list[Problem]:
        return sorted(self.error_details, key=lambda p: (p.line or 0)) + \
            sorted(self.warning_details, key=lambda p: (p.line or 0))

    def validation_report(self) -> ValidationReport:
        return ValidationReport(
            file=self.path, model=self.model, encoding=self.encoding, max_tokens_per_example=self.limit,
            format=self.format, lines=self.lines, examples=self.examples, valid_examples=self.valid,
            invalid_examples=self.invalid, lines_with_errors=self.error_lines, errors=dict(self.errors.most_common()),
            warnings=dict(self.warnings.most_common()), problems=self.problems(), problems_truncated=self.truncated)


# --------------------------------------------------------------------------------------------
# validate, stats


def validate(path: str | os.PathLike, model: str = DEFAULT_MODEL, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
             max_details: int = DEFAULT_MAX_DETAILS, progress: bool | None = None) -> ValidationReport:
    """Check every line of a chat (or preference) fine-tuning JSONL file as OpenAI does.

    ``max_details`` caps the problems listed (errors and warnings separately; -1 for all);
    the counts per kind are always complete.
    """
    return _Scan(path, model, max_line_bytes=max_line_bytes, max_details=max_details, progress=progress,
                 label=f"validate {path}").run().validation_report()


def stats(path: str | os.PathLike, model: str, *, epochs: int | None = None, prices: Any = None,
          max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, progress: bool | None = None) -> StatsReport:
    """Counts, token distributions, billed tokens, default epochs and estimated training cost.

    ``prices`` is a :class:`pytest_ft.pricing.PriceTable`, a price file path, or None for the
    built-in table. Only examples without errors are counted.
    """
    from ..report.pricing import PriceFileError, PriceTable

    if epochs is not None and epochs < 1:
        raise DataError(f"--epochs must be at least 1, got {epochs}")
    if isinstance(prices, PriceTable):
        table = prices
    else:
        try:
            table = PriceTable.from_file(prices) if prices else PriceTable()
        except PriceFileError as exc:
            raise DataError(str(exc)) from None
    scan = _Scan(path, model, max_line_bytes=max_line_bytes, max_details=0, progress=progress,
                 label=f"stats {path}", find_duplicates=False).run()
    n = scan.valid
    n_epochs = epochs if epochs is not None else default_epochs(n)
    charged = scan.billed * n_epochs if n_epochs is not None else None
    price = table.training_price(model)
    cost = charged * price / 1e6 if (price is not None and charged is not None) else None
    return StatsReport(
        file=str(path), model=model, encoding=scan.encoding, format=scan.format, lines=scan.lines, examples=n,
        invalid_examples=scan.invalid, errors=dict(scan.errors.most_common()),
        messages_per_example=_distribution(scan.n_messages), tokens_per_example=_distribution(scan.n_tokens),
        assistant_tokens_per_example=_distribution(scan.n_assistant), max_tokens_per_example=scan.limit,
        examples_over_limit=scan.over_limit, missing_system_message=scan.warnings["missing_system_message"],
        missing_user_message=scan.warnings["missing_user_message"], billed_tokens=scan.billed, epochs=n_epochs,
        epochs_source="--epochs" if epochs is not None else "default", charged_tokens=charged,
        training_price_per_1m_tokens=price, estimated_cost_usd=cost)


# --------------------------------------------------------------------------------------------
# writing outputs safely


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:  # pragma: no cover
        pass
    return a.resolve() == b.resolve()


def _check_outputs(outputs: Sequence[Path], inputs: Sequence[Path], force: bool) -> None:
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


class _AtomicWriter:
    """Write to a temporary file next to ``path``; rename it into place only on success."""

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


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _default_output(path: Path, suffix: str) -> Path:
    name = path.name
    for ext in (".jsonl", ".json"):
        if name.endswith(ext):
            return path.with_name(name[: -len(ext)] + suffix)
    return path.with_name(name + suffix)


# --------------------------------------------------------------------------------------------
# split


@dataclass
class SplitReport:
    file: str
    train_file: str
    val_file: str
    examples: int
    train: int
    val: int
    seed: int
    stratify: bool
    labels: int | None = None
    blank_lines_dropped: int = 0
    label_counts: list[dict[str, Any]] = field(default_factory=list)  # the 20 most common labels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _final_answer(obj: Mapping[str, Any]) -> str:
    """The label of an example: its final assistant answer (the preferred output for DPO)."""
    if "messages" in obj:
        msgs = obj["messages"]
    else:
        msgs = obj.get("preferred_output") or []
    for msg in reversed(msgs if isinstance(msgs, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "assistant":
            text = tokens.content_text(msg.get("content"))
            if not text and (msg.get("tool_calls") or msg.get("function_call")):
                text = json.dumps(msg.get("tool_calls") or msg.get("function_call"), sort_keys=True)
            return text.strip()
    return ""


MAX_STRATIFY_LABELS = 10_000


def _check_val(val: float) -> None:
    if not val > 0 or (val >= 1 and val != int(val)) or math.isinf(val):
        raise DataError(f"--val must be a fraction between 0 and 1 or a whole number of examples, got {val}")


def _val_count(n: int, val: float) -> int:
    k = int(val) if val >= 1 else round(n * val)
    if n >= 2:
        k = max(1, min(k, n - 1))
    else:
        k = 0
    return k


def split(path: str | os.PathLike, val: float = 0.1, seed: int = 0, *, stratify: bool = False,
          out_train: str | os.PathLike | None = None, out_val: str | os.PathLike | None = None,
          force: bool = False, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
          progress: bool | None = None) -> SplitReport:
    """Split a JSONL dataset into train and validation files, deterministically for a seed.

    ``val`` is a fraction (0 < val < 1) or a number of examples (>= 1). With ``stratify`` each
    final assistant answer (label) keeps its share in both files. The input is never modified.
    """
    src = Path(path)
    train_path = Path(out_train) if out_train else _default_output(src, ".train.jsonl")
    val_path = Path(out_val) if out_val else _default_output(src, ".val.jsonl")
    _check_val(val)
    _check_outputs([train_path, val_path], [src], force)
    if not src.is_file():
        raise DataError(f"{src}: no such file" if not src.exists() else f"{src}: not a regular file")
    before = _stat_key(src)

    # pass 1: count examples (and their labels)
    labels: dict[str, int] = {}
    label_of = array("I")
    blank: list[int] = []
    n = 0
    for parsed in _examples_strict(src, max_line_bytes=max_line_bytes, progress=progress,
                                   label=f"split {src} (1/2)", blank=blank):
        n += 1
        if stratify:
            obj = parsed.obj
            label = _final_answer(obj) if isinstance(obj, dict) else ""
            label_of.append(labels.setdefault(label, len(labels)))
            if len(labels) > MAX_STRATIFY_LABELS:
                raise DataError(f"--stratify: more than {MAX_STRATIFY_LABELS:,} different final answers by line "
                                f"{parsed.lineno}: the answers look like free text, not labels; split without "
                                f"--stratify")
    k = _val_count(n, val)
    rng = random.Random(seed)
    in_val = bytearray(n)
    label_counts: list[dict[str, Any]] = []
    if stratify and n:
        counts = Counter(label_of)
        exact = {lab: counts[lab] * k / n for lab in counts}
        quota = {lab: math.floor(q) for lab, q in exact.items()}
        rest = k - sum(quota.values())
        for lab in sorted(counts, key=lambda lab: (-(exact[lab] - quota[lab]), lab))[:rest]:
            quota[lab] += 1
        chosen = {lab: set(rng.sample(range(counts[lab]), quota[lab])) for lab in sorted(counts)}
        seen: Counter[int] = Counter()
        for i, lab in enumerate(label_of):
            if seen[lab] in chosen[lab]:
                in_val[i] = 1
            seen[lab] += 1
        names = {v: key for key, v in labels.items()}
        for lab, c in counts.most_common(20):
            label_counts.append({"label": names[lab], "examples": c, "val": quota[lab]})
    else:
        for i in rng.sample(range(n), k):
            in_val[i] = 1
    del label_of

    # pass 2: copy each line to its file, in the input's order
    if _stat_key(src) != before:
        raise DataError(f"{src} changed while it was being split; try again", exit_code=1)
    i = 0
    with _AtomicWriter(train_path) as ftrain, _AtomicWriter(val_path) as fval:
        for raw in _iter_lines(src, max_line_bytes=max_line_bytes, progress=progress, label=f"split {src} (2/2)"):
            line_data = raw.data
            if line_data is None:  # pragma: no cover - pass 1 would have stopped
                raise DataError(f"{src}: line {raw.lineno} changed while it was being split", exit_code=1)
            if raw.lineno == 1 and line_data.startswith(_BOM):
                line_data = line_data[3:]
            if not line_data.strip():
                continue
            if i >= n:  # pragma: no cover - the file grew between the passes
                raise DataError(f"{src} changed while it was being split; try again", exit_code=1)
            (fval if in_val[i] else ftrain).write(line_data + b"\n")
            i += 1
    return SplitReport(file=str(src), train_file=str(train_path), val_file=str(val_path), examples=n,
                       train=n - k, val=k, seed=seed, stratify=stratify,
                       labels=len(labels) if stratify else None, blank_lines_dropped=len(blank),
                       label_counts=label_counts)


# --------------------------------------------------------------------------------------------
# dedupe


_WS = re.compile(r"\s+")


def normalize_input(text: str) -> str:
    """The form inputs are compared in: Unicode NFC, casefolded, whitespace collapsed and trimmed."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()


def _user_texts(messages: Any) -> list[str]:
    if not isinstance(messages, list):
        return []
    return [tokens.content_text(m.get("content")) for m in messages
            if isinstance(m, dict) and m.get("role") == "user"]


def _example_user_texts(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return []
    if "messages" in obj:
        return _user_texts(obj["messages"])
    inp = obj.get("input")
    return _user_texts(inp.get("messages")) if isinstance(inp, dict) else []


def _input_key(texts: Iterable[str]) -> str:
    return "\n".join(normalize_input(t) for t in texts)


def _key_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class DedupeReport:
    file: str
    output: str
    by: str
    examples: int
    kept: int
    removed: int
    blank_lines_dropped: int = 0
    duplicates: list[dict[str, int]] = field(default_factory=list)   # first 100: {line, duplicate_of}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dedupe(path: str | os.PathLike, out: str | os.PathLike | None = None, *, by: str = "example",
           force: bool = False, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
           progress: bool | None = None) -> DedupeReport:
    """Write the dataset without repeated examples (the first occurrence is kept).

    ``by="example"`` removes lines whose JSON is equal (key order and spacing ignored);
    ``by="input"`` removes lines whose user messages are equal once normalised.
    """
    if by not in ("example", "input"):
        raise DataError(f"--by must be 'example' or 'input', got {by!r}")
    src = Path(path)
    dst = Path(out) if out else _default_output(src, ".dedup.jsonl")
    _check_outputs([dst], [src], force)
    if not src.is_file():
        raise DataError(f"{src}: no such file" if not src.exists() else f"{src}: not a regular file")
    before = _stat_key(src)

    # pass 1: a 64-bit hash per example; repeats found in bounded memory
    finder = _Duplicates()
    blank: list[int] = []
    n = last_line = 0
    for parsed in _examples_strict(src, max_line_bytes=max_line_bytes, progress=progress,
                                   label=f"dedupe {src} (1/2)", blank=blank):
        n += 1
        last_line = parsed.lineno
        if by == "example":
            finder.add(_canonical_hash(parsed.obj), parsed.lineno)
        else:
            finder.add(_key_hash(_input_key(_example_user_texts(parsed.obj))), parsed.lineno)
    drop = bytearray(last_line + 1)
    dups: list[dict[str, int]] = []
    removed = 0
    for line, first in finder:
        drop[line] = 1
        removed += 1
        if len(dups) < 100:
            dups.append({"line": line, "duplicate_of": first})
    del finder

    # pass 2: copy the lines that are kept, byte for byte
    if _stat_key(src) != before:
        raise DataError(f"{src} changed while it was being deduplicated; try again", exit_code=1)
    with _AtomicWriter(dst) as f:
        for raw in _iter_lines(src, max_line_bytes=max_line_bytes, progress=progress, label=f"dedupe {src} (2/2)"):
            line_data = raw.data
            if line_data is None:  # pragma: no cover - pass 1 would have stopped
                raise DataError(f"{src}: line {raw.lineno} changed while it was being deduplicated", exit_code=1)
            if raw.lineno == 1 and line_data.startswith(_BOM):
                line_data = line_data[3:]
            if not line_data.strip() or (raw.lineno <= last_line and drop[raw.lineno]):
                continue
            f.write(line_data + b"\n")
    return DedupeReport(file=str(src), output=str(dst), by=by, examples=n, kept=n - removed, removed=removed,
                        blank_lines_dropped=len(blank), duplicates=dups)


# --------------------------------------------------------------------------------------------
# check-leak


@dataclass
class Leak:
    suite: str
    case: str
    input: str                 # the eval case's user input (normalised)
    train_lines: list[int]     # the first training lines holding it
    train_matches: int


@dataclass
class LeakReport:
    train: str
    suites: list[str]
    cases: int
    train_examples: int
    leaks: list[Leak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.leaks

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["leaked_cases"] = len(self.leaks)
        return d


_SUITE_SUFFIXES = (".yaml", ".yml")


def _eval_cases(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(case id, user message texts) of each case of a suite file or of a JSONL file."""
    if path.name.endswith(_SUITE_SUFFIXES):
        suite = _load_suite(path)
        for case in suite.cases:
            yield str(case.id), _user_texts(case.messages)
        return
    for parsed in _examples_strict(path, label=f"check-leak {path}"):
        yield f"line{parsed.lineno}", _example_user_texts(parsed.obj)


def _load_suite(path: Path):
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


def check_leak(train: str | os.PathLike, suites: Sequence[str | os.PathLike], *,
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, progress: bool | None = None) -> LeakReport:
    """Eval cases whose input (normalised user messages) also appears in the training data.

    A case leaks when its user messages, normalised (:func:`normalize_input`), equal those of
    a training example, or when it has a single user message equal to any one user message of
    a training example. The training file is streamed; only the eval cases are held.
    """
    train_path = Path(train)
    wanted: dict[str, list[tuple[int, str, str]]] = {}
    n_cases = 0
    for s in suites:
        sp = Path(s)
        if not sp.exists():
            raise DataError(f"{sp}: no such file")
        for case_id, texts in _eval_cases(sp):
            key = _input_key(texts)
            if key:
                wanted.setdefault(key, []).append((n_cases, str(sp), case_id))
            n_cases += 1
    hits: dict[int, Leak] = {}  # by the case's position among all eval cases
    n_train = 0
    for parsed in _examples_strict(train_path, max_line_bytes=max_line_bytes, progress=progress,
                                   label=f"check-leak {train_path}"):
        n_train += 1
        texts = _example_user_texts(parsed.obj)
        keys = {_input_key(texts)}
        if len(texts) > 1:
            keys.update(normalize_input(t) for t in texts)
        for key in keys:
            for ordinal, suite_file, case_id in wanted.get(key, ()):
                leak = hits.get(ordinal)
                if leak is None:
                    leak = hits[ordinal] = Leak(suite_file, case_id, key, [], 0)
                leak.train_matches += 1
                if len(leak.train_lines) < 5:
                    leak.train_lines.append(parsed.lineno)
    return LeakReport(train=str(train_path), suites=[str(s) for s in suites], cases=n_cases,
                      train_examples=n_train, leaks=[hits[i] for i in sorted(hits)])


# --------------------------------------------------------------------------------------------
# convert


INPUT_COLUMNS = ("input", "prompt", "question", "user", "query", "instruction", "text")
EXPECTED_COLUMNS = ("expected", "completion", "answer", "output", "response", "target", "label", "assistant",
                    "expected_output", "ideal")


@dataclass
class ConvertReport:
    source: str
    output: str
    direction: str            # "csv->jsonl", "suite->jsonl", "jsonl->suite"
    written: int
    skipped: int = 0
    skipped_details: list[dict[str, Any]] = field(default_factory=list)   # first 100: {line, reason}
    columns: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _source_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith(_SUITE_SUFFIXES):
        return "suite"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise DataError(f"{path}: cannot tell the format from the name: expected .csv / .tsv, a *.ft.yaml suite, "
                    f"or .jsonl")


def _pick_column(header: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str,
                 path: Path, flag: str) -> str:
    if wanted:
        if wanted in header:
            return wanted
        folded = {h.strip().casefold(): h for h in header}
        if wanted.strip().casefold() in folded:
            return folded[wanted.strip().casefold()]
        raise DataError(f"{path}: no column {wanted!r} (columns: {', '.join(header)})")
    folded = {h.strip().casefold(): h for h in header}
    for c in candidates:
        if c in folded:
            return folded[c]
    raise DataError(f"{path}: cannot find the {what} column among {', '.join(header) or 'no columns'}; "
                    f"name it with {flag}")


def _answer_text(expected: Any) -> str | None:
    if expected is None:
        return None
    if isinstance(expected, str):
        return expected
    if isinstance(expected, (bool, int, float)):
        return json.dumps(expected)
    return json.dumps(expected, ensure_ascii=False, sort_keys=True)


def _jsonl_line(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def convert(source: str | os.PathLike, output: str | os.PathLike | None = None, *,
            input_col: str | None = None, expected_col: str | None = None, system: str | None = None,
            name: str | None = None, force: bool = False, progress: bool | None = None) -> ConvertReport:
    """Convert CSV or a ``*.ft.yaml`` suite to chat JSONL, or chat JSONL to a suite.

    The direction follows the source's name: ``.csv``/``.tsv`` and ``.yaml``/``.yml`` become
    JSONL, ``.jsonl`` becomes a suite (cases inline, ids ``lineN`` as for a suite's ``cases_file``).
    """
    src = Path(source)
    kind = _source_kind(src)
    if not src.is_file():
        raise DataError(f"{src}: no such file")
    if kind == "jsonl":
        dst = Path(output) if output else _default_output(src, ".ft.yaml")
    else:
        stem = src.name
        for ext in (".ft.yaml", ".ft.yml", ".yaml", ".yml", ".csv", ".tsv"):
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
                break
        dst = Path(output) if output else src.with_name(stem + ".jsonl")
    if system is not None and kind != "csv":
        raise DataError("--system applies to CSV input only (a suite carries its own system message)")
    if (input_col or expected_col) and kind != "csv":
        raise DataError("--input-col / --expected-col apply to CSV input only")
    _check_outputs([dst], [src], force)
    if kind == "csv":
        return _convert_csv(src, dst, input_col, expected_col, system)
    if kind == "suite":
        return _convert_suite(src, dst)
    return _convert_jsonl(src, dst, name, progress)


def _convert_csv(src: Path, dst: Path, input_col, expected_col, system) -> ConvertReport:
    delimiter = "\t" if src.name.lower().endswith(".tsv") else ","
    skipped: list[dict[str, Any]] = []
    n_skipped = written = 0
    try:
        fh = open(src, "rb")
    except OSError as exc:
        raise DataError(f"{src}: cannot read: {exc.strerror or exc}") from None

    def text_lines() -> Iterator[str]:  # decoded one physical line at a time, for exact line numbers
        for number, raw in enumerate(fh, 1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{src}: line {number}: not valid UTF-8 (byte 0x{raw[exc.start:exc.start + 1].hex()}"
                                f" at byte {exc.start + 1}); save the file as UTF-8", 1) from None

    with fh, _AtomicWriter(dst) as out:
        reader = csv.reader(text_lines(), delimiter=delimiter)
        try:
            header = next(reader, None)
            if not header:
                raise DataError(f"{src}: the file is empty (a header row naming the columns is needed)", 1)
            icol = _pick_column(header, input_col, INPUT_COLUMNS, "input", src, "--input-col")
            ecol = _pick_column(header, expected_col, EXPECTED_COLUMNS, "expected answer", src, "--expected-col")
            ii, ei = header.index(icol), header.index(ecol)
            for row in reader:
                line = reader.line_num
                if not row or not any(cell.strip() for cell in row):
                    continue
                user = row[ii] if ii < len(row) else ""
                answer = row[ei] if ei < len(row) else ""
                if not user.strip() or not answer.strip():
                    n_skipped += 1
                    if len(skipped) < 100:
                        skipped.append({"line": line, "reason": f"empty {icol if not user.strip() else ecol}"})
                    continue
                messages = ([{"role": "system", "content": system}] if system else []) + [
                    {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
                out.write(_jsonl_line({"messages": messages}))
                written += 1
        except csv.Error as exc:
            raise DataError(f"{src}: line {reader.line_num}: {exc}", 1) from None
    return ConvertReport(str(src), str(dst), "csv->jsonl", written, n_skipped, skipped,
                         columns={"input": icol, "expected": ecol})


def _convert_suite(src: Path, dst: Path) -> ConvertReport:
    suite = _load_suite(src)
    skipped: list[dict[str, Any]] = []
    written = 0
    with _AtomicWriter(dst) as out:
        for case in suite.cases:
            answer = _answer_text(case.expected)
            if answer is None or not answer.strip():
                skipped.append({"case": str(case.id), "reason": "no expected answer"})
                continue
            # fine-tuning data has no "developer" role: its instructions are the system message
            messages = [{**m, "role": "system"} if m.get("role") == "developer" else dict(m) for m in case.messages]
            if suite.system and not any(m.get("role") == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": suite.system})
            messages.append({"role": "assistant", "content": answer})
            out.write(_jsonl_line({"messages": messages}))
            written += 1
    return ConvertReport(str(src), str(dst), "suite->jsonl", written, len(skipped), skipped)


def _case_from_example(obj: Any, common_system: str | None) -> tuple[dict[str, Any] | None, str]:
    if _example_type(obj) != "chat" or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        return None, "not a chat example"
    msgs = obj["messages"]
    last = msgs[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return None, "the last message is not the assistant's answer"
    if last.get("tool_calls") or last.get("function_call"):
        return None, "the answer is a tool call"
    answer = tokens.content_text(last.get("content"))
    if not answer.strip():
        return None, "the assistant's answer is empty"
    inputs = [{k: v for k, v in m.items() if k != "weight"} for m in msgs[:-1] if isinstance(m, dict)]
    if common_system is not None and inputs and inputs[0].get("role") == "system":
        inputs = inputs[1:]
    if not any(m.get("role") == "user" for m in inputs):
        return None, "no user message"
    case: dict[str, Any] = {}
    if len(inputs) == 1 and set(inputs[0]) == {"role", "content"} and isinstance(inputs[0]["content"], str):
        case["input"] = inputs[0]["content"]
    else:
        case["messages"] = inputs
    case["expected"] = answer
    return case, ""


def _convert_jsonl(src: Path, dst: Path, name: str | None, progress) -> ConvertReport:
    import yaml

    # pass 1: is there one system message shared by every example?
    system: str | None = None
    shared = True
    for parsed in _examples_strict(src, progress=progress, label=f"convert {src} (1/2)"):
        msgs = parsed.obj.get("messages") if isinstance(parsed.obj, dict) else None
        first = msgs[0] if isinstance(msgs, list) and msgs else None
        sys_text = first.get("content") if isinstance(first, dict) and first.get("role") == "system" else None
        if not isinstance(sys_text, str):
            shared = False
            break
        if system is None:
            system = sys_text
        elif sys_text != system:
            shared = False
            break
    common = system if shared else None
    suite_name = name or (src.name[: -len(".jsonl")] if src.name.endswith(".jsonl") else src.stem)
    skipped: list[dict[str, Any]] = []
    n_skipped = written = 0

    def dump(value: Any) -> str:
        return yaml.safe_dump(value, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1 << 16)

    with _AtomicWriter(dst, "w") as out:
        out.write(f"# converted by `pytest-ft data convert` from {src.name}\n")
        out.write(dump({"suite": suite_name}))
        if common is not None:
            out.write(dump({"system": common}))
        out.write("cases:\n")
        for parsed in _examples_strict(src, progress=progress, label=f"convert {src} (2/2)"):
            case, reason = _case_from_example(parsed.obj, common)
            if case is None:
                n_skipped += 1
                if len(skipped) < 100:
                    skipped.append({"line": parsed.lineno, "reason": reason})
                continue
            out.write(dump([{"id": f"line{parsed.lineno}", **case}]))
            written += 1
        if not written:
            first = f" (line {skipped[0]['line']}: {skipped[0]['reason']})" if skipped else ""
            raise DataError(f"{src}: no example could become a case{first}", exit_code=1)
    return ConvertReport(str(src), str(dst), "jsonl->suite", written, n_skipped, skipped)


# --------------------------------------------------------------------------------------------
# CLI


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
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except DataError as exc:
            print(f"pytest-ft data {args.data_command}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except tokens.UnknownModelError as exc:
            print(f"pytest-ft data {args.data_command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"\npytest-ft data {args.data_command}: interrupted (no output file was left behind)",
                  file=sys.stderr)
            return 130
    return run


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
