"""An example's input: its user messages, normalised so that copies compare equal.

``dedupe --by input`` and ``check-leak`` compare examples and eval cases by this key.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterable

from . import tokens

_WS = re.compile(r"\s+")


def normalize_input(text: str) -> str:
    """The form inputs are compared in: Unicode NFC, casefolded, whitespace collapsed and trimmed."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()


def user_texts(messages: Any) -> list[str]:
    """The text of each user message of a messages list (nothing when it is no list)."""
    if not isinstance(messages, list):
        return []
    return [tokens.content_text(m.get("content")) for m in messages
            if isinstance(m, dict) and m.get("role") == "user"]


def example_user_texts(obj: Any) -> list[str]:
    """The user messages' texts of a chat example, or of a preference example's input."""
    if not isinstance(obj, dict):
        return []
    if "messages" in obj:
        return user_texts(obj["messages"])
    inp = obj.get("input")
    return user_texts(inp.get("messages")) if isinstance(inp, dict) else []


def input_key(texts: Iterable[str]) -> str:
    """The normalised user messages joined: equal for two examples that ask the same."""
    return "\n".join(normalize_input(t) for t in texts)
