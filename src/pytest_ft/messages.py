"""A chat message's content as text, the one way every part of pytest-ft reads it.

Content is a string, or a list of parts of which the ``text`` ones carry text (images, audio
and files do not). Parts are joined by a newline, so that words of two parts never run
together.
"""

from __future__ import annotations

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
