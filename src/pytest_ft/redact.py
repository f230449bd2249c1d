"""Keep credentials out of everything pytest-ft writes or prints.

A key does not always look like ``sk-…``: a vLLM or Azure token, a password in a
``base_url`` can have any shape. So besides the shapes OpenAI uses, the values actually in
use are masked: every key an endpoint of the run reads from the environment, the
organization and project ids, and URL credentials. Cassettes, reports, log records and
error messages all pass through :func:`scrub`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import urllib.parse
from typing import Any, Callable, Iterable

MASK = "REDACTED"
# Always masked when set: what the openai client reads on its own.
SECRET_ENV = ("OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY",
              "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN")
MIN_SECRET = 8  # shorter values would mask ordinary words ("pass" in "passed")

# (a lower-case literal the text must hold, the shape, its mask): the literal is a quick
# test in C, so ordinary text never pays for the regular expressions.
_SHAPES = tuple((trigger, re.compile(shape), mask) for trigger, shape, mask in (
    ("sk-", r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{8,}", "sk-" + MASK),
    ("org-", r"(?<![A-Za-z0-9])org-[A-Za-z0-9]{8,}", "org-" + MASK),
    ("proj_", r"(?<![A-Za-z0-9])proj_[A-Za-z0-9]{8,}", "proj_" + MASK),
    ("bearer", r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}", r"\1 " + MASK),
    ("key", r"(?i)\b(api[-_]?key[\"']?\s*[:=]\s*\[?[\"']?)[^\s\"',;&\]]{8,}", r"\1" + MASK),
    ("cookie", r"(?i)\b(cookie[\"']?\s*[:=]\s*\[?[\"']?)[^\s\"',;&\]]{8,}", r"\1" + MASK),
    ("://", r"://[^/@\s\"'<>]+@", "://" + MASK + "@"),  # URL userinfo
))

_lock = threading.Lock()
_values: set[str] = set()
_ordered: list[str] = []  # longest first, so a value inside another is not masked half


def register(value: str | None) -> None:
    """Mask ``value`` (and its JSON- and URL-escaped forms) wherever it appears from now on."""
    global _ordered
    if not isinstance(value, str) or len(value) < MIN_SECRET:
        return
    forms = {value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    with _lock:
        if not forms <= _values:
            _values.update(forms)
            _ordered = sorted(_values, key=len, reverse=True)


def register_env(names: Iterable[str] = SECRET_ENV) -> None:
    for name in names:
        register(os.environ.get(name))


def register_url(url: str | None) -> None:
    """A URL's password and user (``http://user:password@host``) are secrets."""
    if not url:
        return
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return
    user, password = (urllib.parse.unquote(v) if v else "" for v in (parts.username, parts.password))
    for value in (password, user):
        register(value)
    if user or password:  # what an HTTP client sends for them: Authorization: Basic <base64>
        register(base64.b64encode(f"{user}:{password}".encode()).decode())


def scrub(text: str) -> str:
    """``text`` with every known credential masked."""
    if not text:
        return text
    for value in _ordered:
        if value in text:
            text = text.replace(value, MASK)
    lower = text.lower()
    for trigger, shape, mask in _SHAPES:
        if trigger in lower:
            text = shape.sub(mask, text)
    return text


def scrub_value(value: Any) -> Any:
    """Every string in a JSON-like value scrubbed (keys included)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_value(k): scrub_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v) for v in value]
    return value


def redact_url(url: str) -> str:
    """``url`` without its userinfo: where a URL is kept (a cassette's ``uri``), credentials are not."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return scrub(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def scrub_log_records() -> Callable[[], None]:
    """Scrub every log record as it is made, whatever logs it (vcrpy logs whole responses at
    INFO, httpx logs URLs); returns the function that undoes it."""
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return record
        scrubbed = scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)

    def undo() -> None:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(previous)

    return undo
