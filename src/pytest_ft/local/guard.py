"""What stands in front of the app: the API key, and the request body size limits.

It is pure ASGI, not FastAPI middleware, so that a refused request is answered before any of
its body is parsed, and an oversized body is cut off while it streams in rather than after.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Callable

from .errors import ApiError

MAX_JSON_BYTES = 16 * 1024 * 1024
# A body over its limit is read on (and thrown away) up to this much more, so the client gets
# the 413 answer instead of a connection reset in the middle of its upload.
DRAIN_BYTES = 64 * 1024 * 1024


class TooLarge(ApiError):
    """A request body over ``limit`` bytes: raised from the body stream, answered as a 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"The request is too large: the limit is {limit / 1024 / 1024:g} MB.",
                         code="request_too_large")
        self.limit = limit


class Guard:
    """ASGI middleware: the bearer token on ``/v1``, and the body size limits."""

    def __init__(self, app: Any, *, api_key: str | None, upload_limit: int):
        self.app = app
        self.api_key = api_key
        self.upload_limit = upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if self.api_key and path.startswith("/v1"):
            auth = headers.get(b"authorization", b"").decode("latin-1")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not token or not hmac.compare_digest(token.encode(), self.api_key.encode()):
                await _drain(receive, DRAIN_BYTES)
                message = ("You didn't provide an API key. Provide it as 'Authorization: Bearer <key>'."
                           if not token else "Incorrect API key provided.")
                return await _answer(send, ApiError(401, message, code="invalid_api_key",
                                                    headers={"WWW-Authenticate": "Bearer"}))
        limit = self.upload_limit if path.rstrip("/") == "/v1/files" else MAX_JSON_BYTES
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared > limit:
                if declared <= limit + DRAIN_BYTES:
                    await _drain(receive, declared)
                return await _answer(send, TooLarge(limit))
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if message.get("more_body"):
                        await _drain(receive, DRAIN_BYTES)
                    raise TooLarge(limit)
            return message

        return await self.app(scope, limited_receive, send)


async def _answer(send: Callable, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drain(receive: Callable, budget: int) -> None:
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body"):
            return
