"""The HTTP layer of any OpenAI-compatible fine-tuning API: raw JSON, one retry mechanism, errors explained.

Requests go through the openai client's HTTP stack, but responses are read as raw JSON (see
:mod:`.job_info`), and the client's own retries are off: 429 and 5xx are retried here,
honouring ``Retry-After``, so each failure is counted and explained once.

**Errors are explained**: an invalid API key, a missing permission or quota, rate limits, a
server error, an unreachable endpoint, a request missing from a replayed cassette. Each
becomes a :class:`~.errors.JobError` that names the endpoint and what to do. No API key is ever
printed: the key and URL credentials are registered with :mod:`pytest_ft.redact`, and API
messages pass through :func:`pytest_ft.redact.scrub`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import httpx2
import openai

from .. import redact
from ..run.ratelimit import retry_delay as backoff
from .errors import JobError
from .job_info import as_str

RATE_LIMIT_RETRIES = 6

Explain = Callable[[openai.APIStatusError], "str | None"]


def make_client(base_url: str | None = None, *, api_key_env: str = "OPENAI_API_KEY",
                timeout: float = 60.0) -> openai.OpenAI:
    """An OpenAI client for a fine-tuning API, with the openai client's own retries off.

    The endpoint is ``base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's. The key comes from the
    environment variable ``api_key_env`` (for Azure OpenAI also ``AZURE_OPENAI_API_KEY``), and is
    sent as ``Authorization: Bearer`` plus, to an ``*.azure.com`` host, ``api-key``. Azure OpenAI's
    v1 API works as is: ``https://RESOURCE.openai.azure.com/openai/v1``.
    """
    base = base_url or os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get(api_key_env)
    azure = bool(base) and (urlsplit(base).hostname or "").endswith(".azure.com")
    if not key and azure:
        key = os.environ.get("AZURE_OPENAI_API_KEY")
    headers = {"api-key": key} if azure and key else None
    client = openai.OpenAI(api_key=key or "pytest-ft-no-api-key", base_url=base, max_retries=0,
                           timeout=timeout, default_headers=headers)
    client._pytest_ft_api_key_env = api_key_env  # for error messages only (a name, never the value)
    return client


def display_url(url: Any) -> str:
    """The endpoint as shown to people and kept in the state file: no credentials, no trailing slash."""
    parts = urlsplit(redact.redact_url(str(url)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def retry_delay(attempt: int, response: httpx2.Response | None) -> float:
    """Seconds before retry ``attempt`` (0-based): the evaluation's policy, one step later.

    A command calls the fine-tuning API a few times, not thousands, so its first unexplained
    wait is 1 s rather than the runner's 0.5 s.
    """
    return backoff(attempt + 1, response)


class Api:
    """JSON over the openai client's HTTP stack; retries 429 and 5xx; turns failures into JobErrors."""

    def __init__(self, client: openai.OpenAI):
        self.client = client.with_options(max_retries=0)  # one retry mechanism: ours
        self.base_url = display_url(client.base_url)
        self.api_key_env = getattr(client, "_pytest_ft_api_key_env", "OPENAI_API_KEY")
        redact.register(getattr(client, "api_key", None))
        redact.register_url(str(client.base_url))

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, what: str,
            explain: Explain | None = None) -> dict:
        return self.call(what, lambda: self.client.get(
            path, cast_to=httpx2.Response, options={"params": dict(params or {})}), explain=explain)

    def post(self, path: str, body: Any = None, *, what: str, explain: Explain | None = None,
             retry_server_errors: bool = True) -> dict:
        return self.call(what, lambda: self.client.post(path, body=body, cast_to=httpx2.Response),
                         explain=explain, retry_server_errors=retry_server_errors)

    def upload(self, path: Path, *, what: str) -> dict:
        def send():
            with open(path, "rb") as fh:
                return self.client.files.with_raw_response.create(
                    file=(path.name, fh, "application/jsonl"), purpose="fine-tune").http_response
        return self.call(what, send)

    def call(self, what: str, send: Callable[[], Any], *, explain: Explain | None = None,
             retry_server_errors: bool = True) -> dict:
        """``send()`` → its JSON object. 429 (and 5xx unless ``retry_server_errors`` is False) are
        retried honouring Retry-After; every failure becomes a :class:`JobError`, worded by
        ``explain(exc)`` when it returns a message."""
        attempt = 0
        while True:
            try:
                response = send()
                try:
                    data = response.json()
                except ValueError:
                    raise JobError(f"{what}: {self.base_url} answered something that is not JSON "
                                   f"(HTTP {response.status_code}): is it an OpenAI-compatible API?") from None
                if not isinstance(data, dict):
                    raise JobError(f"{what}: {self.base_url} answered unexpected JSON: {redact.scrub(str(data))[:200]}")
                return data
            except openai.APIStatusError as exc:
                transient = exc.status_code == 429 or exc.status_code >= 500
                if exc.status_code == 429 and error_fields(exc)[1] == "insufficient_quota":
                    transient = False
                retryable = transient and (exc.status_code == 429 or retry_server_errors)
                if retryable and attempt < RATE_LIMIT_RETRIES:
                    self.sleep(retry_delay(attempt, exc.response))
                    attempt += 1
                    continue
                message = explain(exc) if explain else None
                raise JobError(message or self._explain(exc, what, retries=attempt), transient=transient,
                               status=exc.status_code) from None
            except openai.APIConnectionError as exc:
                cassette_error = _cassette_error(exc)
                if cassette_error:
                    raise JobError(f"{what}: {cassette_error}") from None
                raise JobError(f"{what}: cannot reach {self.base_url} ({_connection_detail(exc)}). Is the server "
                               f"running and the network up? Choose the endpoint with --base-url or "
                               f"OPENAI_BASE_URL.", transient=True) from None
            except Exception as exc:  # vcrpy's replay-only refusal is not an openai error
                cassette_error = _cassette_error(exc)
                if cassette_error:
                    raise JobError(f"{what}: {cassette_error}") from None
                raise

    def _explain(self, exc: openai.APIStatusError, what: str, *, retries: int = 0) -> str:
        status = exc.status_code
        message, code, param = error_fields(exc)
        if status == 401:
            env = self.api_key_env
            unset = "" if os.environ.get(env) else f" ({env} is not set)"
            return (f"{what}: {self.base_url} rejected the API key (HTTP 401{', ' + code if code else ''}). "
                    f"Check {env}{unset}: it must be a valid key for this endpoint.")
        if status == 403:
            return (f"{what}: permission denied by {self.base_url} (HTTP 403): {message} "
                    f"The key's organization or project may not have access to fine-tuning.")
        if status == 429:
            if code == "insufficient_quota":
                return (f"{what}: the account behind this API key has no quota left (HTTP 429, insufficient_quota): "
                        f"{message} Check its plan and billing.")
            return (f"{what}: rate limited by {self.base_url} (HTTP 429) and still limited after {retries} "
                    f"retries that honoured Retry-After. Wait a few minutes and run the command again.")
        if status >= 500:
            return (f"{what}: {self.base_url} had a server error (HTTP {status}) after {retries} retries: "
                    f"{message} Try again later.")
        if status == 404 and not message:
            message = "not found"
        detail = ", ".join(x for x in (code, f"param {param}" if param else None) if x)
        return f"{what}: HTTP {status}: {message}" + (f" ({detail})" if detail else "")


def error_fields(exc: openai.APIStatusError) -> tuple[str, str | None, str | None]:
    """The error's (scrubbed message, code, param), from a JSON error body or a plain-text one."""
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") if body else None
    if not message:
        message = str(exc.body) if isinstance(exc.body, str) and exc.body else ""
    return redact.scrub(str(message)).strip(), as_str(body.get("code")), as_str(body.get("param"))


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes / contexts, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 12:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _connection_detail(exc: BaseException) -> str:
    chain = _chain(exc)
    root = chain[-1]
    text = " ".join(f"{type(e).__name__} {e}" for e in chain).lower()
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "host name not found"
    if isinstance(exc, openai.APITimeoutError) or "timed out" in text or "timeout" in text:
        return "timed out"
    return f"{type(root).__name__}: {root}" if str(root) else type(root).__name__


def _cassette_error(exc: BaseException) -> str | None:
    for current in _chain(exc):
        if type(current).__name__ == "CannotOverwriteExistingCassetteException":
            first = str(current).strip().splitlines()[0] if str(current).strip() else ""
            return (f"no recording of this request in the cassette ({first}); the cassette replays only what "
                    f"was recorded: record it again with --record-mode=all")
    return None
