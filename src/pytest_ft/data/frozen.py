"""The frozen-answers file: a retiring model's answers to a list of prompts, kept before it is shut down.

Each line is one chat example, the prompt's messages and then the model's answer as the final
assistant message, so one file serves twice: as a suite's ``cases_file`` (the answer is the
expected one, ``metadata.id`` the case id) when evaluating the models that replace it, and as
training data for distilling the old model's behaviour into a new one (``pytest-ft data
validate`` accepts the ``metadata`` object). ``metadata.frozen`` says where the answer came from::

    {"messages": [..., {"role": "assistant", "content": "..."}],
     "metadata": {"id": "q-17", "frozen": {"model": "...", "requested_model": "...",
                  "date": "2026-05-01T12:00:00Z", "latency_ms": 812.4, "replayed": false,
                  "usage": {"prompt_tokens": 31, "completion_tokens": 4, "cached_tokens": 0}}}}

An answer is found again by its prompt (:func:`prompt_key`: key order and spacing do not
matter) or by its id. ``pytest-ft freeze`` appends to the file as answers arrive and resumes
from it, so a file it cannot read whole is an error, never something to write over.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..messages import tool_calls
from ..redact import scrub_value
from ..suite.load import MAX_CASES_FILE_BYTES
from .errors import DataError
from .io import BLANK, iter_parsed, lone_surrogate

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "cached_tokens")
MAX_FROZEN_BYTES = MAX_CASES_FILE_BYTES  # the file is a cases_file: what a suite cannot read is no use


class FrozenFileError(ValueError):
    """A frozen-answers file that cannot be read whole; the message names ``file:line`` and the key."""


def prompt_key(messages: list[dict]) -> str:
    """A stable key of a prompt: the sha256 of its canonical JSON."""
    text = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class FrozenAnswer:
    id: str
    text: str
    model: str  # the model that answered, as the response named it (else the one asked for)
    date: str  # ISO-8601, UTC
    latency_ms: float | None
    usage: dict  # prompt_tokens, completion_tokens, cached_tokens
    tool_calls: list[dict] | None = None  # as messages.tool_calls reads them


class FrozenAnswers:
    """A file's answers, found by prompt or by id."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._by_prompt: dict[str, FrozenAnswer] = {}
        self._by_id: dict[str, FrozenAnswer] = {}

    def by_prompt(self, messages: list[dict]) -> FrozenAnswer | None:
        """The answer to ``messages``. A prompt holding something shaped like a credential was
        written masked (every file pytest-ft writes is scrubbed), so it is also looked up masked."""
        found = self._by_prompt.get(prompt_key(messages))
        if found is None and self._by_prompt:
            found = self._by_prompt.get(prompt_key(scrub_value(messages)))
        return found

    def by_id(self, id: str) -> FrozenAnswer | None:
        return self._by_id.get(id)

    def __len__(self) -> int:
        return len(self._by_id)


class _Bad(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")


def file_problem(path: Path, limit: int = MAX_FROZEN_BYTES) -> str | None:
    """Why ``path`` cannot be read whole into memory (not a regular file, too big), or None.

    A FIFO or a device would block the reader or never end.
    """
    try:
        info = path.stat()
    except OSError as exc:
        return f"{path}: cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return f"{path}: not a regular file"
    if info.st_size > limit:
        return f"{path}: {info.st_size:,} bytes, over the limit of {limit:,}"
    return None


def read_frozen(path: str | os.PathLike) -> FrozenAnswers:
    """Every answer of a frozen-answers file; raises :class:`FrozenFileError` on the first bad line.

    Of two lines with the same prompt the first answers it; two lines with the same id are an
    error (the id names a case, and a recording).
    """
    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise FrozenFileError(problem)
    answers = FrozenAnswers(path)
    lines: dict[str, int] = {}
    try:
        for parsed in iter_parsed(path, progress=False):
            if parsed.obj is BLANK:
                continue
            where = f"{path}:{parsed.lineno}"
            if parsed.kind:
                raise FrozenFileError(f"{where}: {parsed.kind}: {parsed.message}")
            try:
                prompt, answer = _entry(parsed.obj)
            except _Bad as exc:
                raise FrozenFileError(f"{where}: {exc}") from None
            if answer.id in lines:
                raise FrozenFileError(f"{where}: metadata.id: {answer.id!r} is also the id of line {lines[answer.id]}")
            lines[answer.id] = parsed.lineno
            answers._by_id[answer.id] = answer
            answers._by_prompt.setdefault(prompt_key(prompt), answer)
    except DataError as exc:
        raise FrozenFileError(str(exc)) from None
    return answers


def _entry(obj: Any) -> tuple[list[dict], FrozenAnswer]:
    """A line's prompt and answer; :class:`_Bad` names the key that is wrong."""
    if not isinstance(obj, dict):
        raise _Bad("line", "not a JSON object")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _Bad("messages", "must be a list of message objects")
    last = messages[-1] if messages else {}
    calls = tool_calls(last) if isinstance(last.get("tool_calls"), list) else None
    if last.get("role") != "assistant" or not (isinstance(last.get("content"), str) or calls):
        raise _Bad("messages", "no assistant answer: the last message must be the assistant's, with text content "
                               "or tool calls")
    if len(messages) < 2:
        raise _Bad("messages", "no prompt before the assistant's answer")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        raise _Bad("metadata", "must be an object with the answer's id and where it came from ('frozen')")
    case_id = metadata.get("id")
    if not isinstance(case_id, str) or not case_id.strip():
        raise _Bad("metadata.id", "must be a non-empty string")
    frozen = metadata.get("frozen")
    if not isinstance(frozen, dict):
        raise _Bad("metadata.frozen", "must be an object (the answer's model, date, latency and usage)")
    model, date = frozen.get("model"), frozen.get("date")
    if not isinstance(model, str) or not model:
        raise _Bad("metadata.frozen.model", "must be a model id")
    try:
        datetime.fromisoformat(date)
    except (TypeError, ValueError):
        raise _Bad("metadata.frozen.date", f"must be an ISO-8601 date and time, got {date!r:.60}") from None
    latency = frozen.get("latency_ms")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float))
                                or not math.isfinite(latency) or latency < 0):
        raise _Bad("metadata.frozen.latency_ms", f"must be milliseconds (0 or more) or null, got {latency!r:.60}")
    usage = frozen.get("usage", {})
    if not isinstance(usage, dict) or not all(
            isinstance(usage.get(k, 0), int) and not isinstance(usage.get(k, 0), bool) and usage.get(k, 0) >= 0
            for k in USAGE_KEYS):
        raise _Bad("metadata.frozen.usage", f"must be an object of token counts ({', '.join(USAGE_KEYS)})")
    if not isinstance(frozen.get("replayed", False), bool):
        raise _Bad("metadata.frozen.replayed", "must be true or false")
    return messages[:-1], FrozenAnswer(id=case_id, text=last.get("content") or "", model=model, date=date,
                                       latency_ms=None if latency is None else float(latency),
                                       usage={k: usage.get(k, 0) for k in USAGE_KEYS}, tool_calls=calls)


def frozen_line(id: str, prompt: list[dict], answer_text: str, *, model: str, requested_model: str, date: str,
                latency_ms: float | None, usage: dict, replayed: bool, calls: list[dict] | None = None,
                tools: dict | None = None) -> str:
    """One line of the file, newline included; a ValueError for an answer that is not text
    (a lone surrogate: no file reader, this one included, would take it back).

    ``calls`` (as :func:`~pytest_ft.messages.tool_calls` reads them) are written back in the
    fine-tuning format, the arguments exactly as the model sent them."""
    answer: dict[str, Any] = {"role": "assistant", "content": answer_text}
    if calls:
        answer = {"role": "assistant", "content": answer_text or None, "tool_calls": [
            {"id": call.get("id") or f"call_{i}", "type": "function",
             "function": {"name": call["name"], "arguments": call["raw_arguments"]}} for i, call in enumerate(calls)]}
    record = {**(tools or {}), "messages": [*prompt, answer],
              "metadata": {"id": id, "frozen": {
                  "model": model, "requested_model": requested_model, "date": date,
                  "latency_ms": None if latency_ms is None else round(latency_ms, 1),
                  "usage": {k: int(usage.get(k) or 0) for k in USAGE_KEYS}, "replayed": replayed}}}
    surrogate = lone_surrogate(record)
    if surrogate:
        raise ValueError(f"not valid Unicode: \\u{ord(surrogate):04x} is half of a surrogate pair")
    return json.dumps(record, ensure_ascii=False) + "\n"


def utc_now() -> str:
    """Now, as the file's dates are written: ISO-8601, UTC, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
