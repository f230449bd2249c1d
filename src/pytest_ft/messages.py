"""A chat message's content as text, and its tool calls: the one way pytest-ft reads them.

Content is a string, or a list of parts of which the ``text`` ones carry text (images, audio
and files do not). Parts are joined by a newline, so that words of two parts never run
together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def text_parts(content: Any) -> list[str]:
    """The texts of a message's content, in order."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)]
    return []


def content_text(content: Any, non_text: str | None = None) -> str:
    """The text of a message's content; each part that is not text stands as ``non_text`` when given."""
    if non_text is None or not isinstance(content, list):
        return "\n".join(text_parts(content))
    return "\n".join(part["text"] if isinstance(part, Mapping) and isinstance(part.get("text"), str) else non_text
                     for part in content)


def tool_calls(message: Mapping[str, Any]) -> list[dict] | None:
    """An assistant message's tool calls as graders read them, or None when it calls no tool.

    Each is ``{"id", "name", "arguments", "raw_arguments", "error"}``: ``arguments`` parsed from
    the JSON string the model sent, or None with ``error`` saying why it is not JSON — a model's
    malformed arguments are its answer, to be graded, not a failure of the run.
    """
    raw = message.get("tool_calls")
    if not isinstance(raw, list) or not raw:
        return None
    calls = []
    for call in raw:
        function = call.get("function") if isinstance(call, Mapping) else None
        function = function if isinstance(function, Mapping) else {}
        text = function.get("arguments")
        arguments, error = None, None
        if isinstance(text, str):
            try:
                arguments = json.loads(text) if text.strip() else {}
            except ValueError as exc:
                error = f"not valid JSON ({exc})"
        elif isinstance(text, Mapping):  # some servers send the object itself
            arguments, text = dict(text), json.dumps(text, ensure_ascii=False)
        else:
            error, text = "no arguments", ""
        calls.append({"id": call.get("id") if isinstance(call, Mapping) else None,
                      "name": str(function.get("name") or ""), "arguments": arguments, "raw_arguments": text,
                      "error": error})
    return calls


def answer_text(text: str, calls: list[dict] | None) -> str:
    """An answer as people read it in reports: its text, then one line per tool call."""
    lines = [text] if text else []
    lines += [f"→ {call['name']}({call['raw_arguments']})" for call in calls or ()]
    return "\n".join(lines)
