"""``pytest-ft train`` and ``pytest-ft jobs``: launch, follow and reuse fine-tuning jobs.

The workflow pytest-ft serves is: prepare the data → upload it → create the job → follow it →
evaluate the tuned model against its base → decide whether it pays. This module covers the
middle: it validates the data (:func:`pytest_ft.data.validate`), uploads the files, creates the
job, follows it to its end, and ends with the ``pytest --ft-model=...`` command that evaluates
the result.

**Idempotence.** A job is identified by a content hash: sha256 of the training (and validation)
file bytes, the base model, the method, the hyperparameters, the suffix and the seed. The hash is
stored in the job's ``metadata`` (``pytest_ft_hash``) and in a local state file
(``.pytest-ft/jobs.json``, written atomically, under a lock), so the same command run again
reuses the job instead of paying for a second one; ``force=True`` (``--force``) launches a new
one. Uploaded files are remembered too, so a retry after a failure does not upload them again.

**Any OpenAI-compatible fine-tuning API.** Responses are read as raw JSON, never through the
SDK's strict models, so statuses and fields the SDK does not list (Azure OpenAI's ``pending``,
``notRunning``, ``canceled``; extra fields) pass through. Requests use the current API shape
(hyperparameters inside ``method``).

**Errors are explained**: an invalid API key, a model that cannot be fine-tuned, a file still
being processed (job creation is retried), a failed job (with the failing line when the API
names one), rate limits (retried, honouring ``Retry-After``), an unreachable endpoint. No API key
is ever printed or written: the state file holds ids, hashes and paths; API messages are scrubbed.

Python API (used by the pytest fixtures and the cost report):

* :func:`ensure_job` - reuse the job for these data and parameters, or launch one;
* :func:`wait_for_job` - follow a job until it ends;
* :func:`get_job`, :func:`list_jobs`, :func:`list_events`, :func:`list_checkpoints`, :func:`cancel_job`;
* :func:`training_cost` - trained tokens × the base model's training price;
* :func:`job_hash`, :func:`make_client`, :func:`evaluate_command`;
* :class:`JobInfo`, :class:`JobFailure`, :class:`Progress`, :class:`JobError`, :class:`LaunchNotAllowed`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx2
import openai
from tabulate import tabulate

from .. import redact
from ..files import write_atomic
from ..report.pricing import PriceTable, fine_tuned_base
from ..run.ratelimit import retry_after

__all__ = [
    "JobError", "LaunchNotAllowed", "JobFailure", "JobInfo", "Progress", "ensure_job", "wait_for_job",
    "get_job", "list_jobs", "list_events", "list_checkpoints", "cancel_job", "training_cost", "job_hash",
    "make_client", "evaluate_command", "register_cli", "TERMINAL_STATUSES", "DEFAULT_POLL_INTERVAL",
    "DEFAULT_STATE_DIR", "HASH_KEY",
]

DEFAULT_POLL_INTERVAL = 10.0
DEFAULT_STATE_DIR = Path(".pytest-ft")
STATE_FILE = "jobs.json"
HASH_KEY = "pytest_ft_hash"
METHODS = ("supervised", "dpo")
# Azure OpenAI spells it "canceled"; "deleted" and "expired" end a job too.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "canceled", "deleted", "expired"})
_NOT_REUSABLE = frozenset({"cancelled", "canceled", "deleted", "expired"})
_FILE_READY = frozenset({"processed", "succeeded"})
_FILE_FAILED = frozenset({"error", "failed", "deleted"})

RATE_LIMIT_RETRIES = 6
FILE_NOT_READY_RETRIES = 5
MAX_POLL_FAILURES = 8
MAX_EVENT_PAGES = 20
MAX_LIST_PAGES = 5
FINE_TUNING_GUIDE = "https://platform.openai.com/docs/guides/fine-tuning"


# --------------------------------------------------------------------------------------------
# results and errors


class JobError(Exception):
    """An error a user can act on; its message explains what happened and what to do.

    ``exit_code`` is what the CLI returns (1 for a job that failed or was cancelled, 2 otherwise).
    """

    def __init__(self, message: str, *, exit_code: int = 2, job: "JobInfo | None" = None, transient: bool = False,
                 status: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.job = job
        self.transient = transient  # the endpoint was unreachable, overloaded or rate limiting: may pass
        self.status = status        # the HTTP status behind it, if any


class LaunchNotAllowed(JobError):
    """No existing job matches, and :func:`ensure_job` was told not to launch one (a paid action)."""

    def __init__(self, message: str, *, content_hash: str):
        super().__init__(message)
        self.content_hash = content_hash


@dataclass
class JobFailure:
    """Why a job failed: the API's ``error`` object, plus the failing line when it names one."""

    code: str | None
    message: str
    param: str | None = None
    line: int | None = None

    def describe(self, files: Mapping[str, str | None] | None = None) -> str:
        """One or two lines for people; ``files`` maps ``training_file``/``validation_file`` to local paths."""
        text = self.message + (f" ({self.code})" if self.code else "")
        where = (files or {}).get(self.param or "") or self.param
        if self.line is not None:
            text += f"\n  failing line: {where}:{self.line}" if where else f"\n  failing line: {self.line}"
        elif where:
            text += f"\n  in: {where}"
        return text


@dataclass
class JobInfo:
    """A fine-tuning job as the API describes it, read leniently.

    ``status`` is the API's word, whatever it is (``validating_files``, ``queued``, ``running``,
    ``succeeded``, ``failed``, ``cancelled``, or a provider's own such as Azure's ``pending``).
    ``hyperparameters`` merges the job's top-level ``hyperparameters`` with its
    ``method.<type>.hyperparameters`` (``n_epochs``, ``batch_size``, ``learning_rate_multiplier``,
    ``beta``...). ``reused`` is True when :func:`ensure_job` found an existing job.
    """

    id: str
    status: str
    base_model: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: JobFailure | None = None
    created_at: int | None = None
    finished_at: int | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    estimated_finish: int | None = None
    reused: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def content_hash(self) -> str | None:
        return self.metadata.get(HASH_KEY)

    @property
    def n_epochs(self) -> int | None:
        value = self.hyperparameters.get("n_epochs")
        return value if isinstance(value, int) else None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded" and bool(self.fine_tuned_model)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, reused: bool = False) -> "JobInfo":
        data = dict(data)
        method = data.get("method") if isinstance(data.get("method"), dict) else {}
        mtype = method.get("type") if isinstance(method.get("type"), str) else None
        hp: dict[str, Any] = {}
        inner = method.get(mtype) if mtype else None
        if isinstance(inner, dict) and isinstance(inner.get("hyperparameters"), dict):
            hp.update(inner["hyperparameters"])
        if isinstance(data.get("hyperparameters"), dict):
            hp.update({k: v for k, v in data["hyperparameters"].items() if v is not None})
        error = data.get("error")
        failure = None
        if isinstance(error, dict) and (error.get("message") or error.get("code")):
            failure = _failure(error)
        elif isinstance(error, str) and error:
            failure = _failure({"message": error})
        return cls(
            id=str(data.get("id") or ""), status=str(data.get("status") or "unknown"),
            base_model=_str(data.get("model")), fine_tuned_model=_str(data.get("fine_tuned_model")),
            trained_tokens=_int(data.get("trained_tokens")), error=failure,
            created_at=_int(data.get("created_at")), finished_at=_int(data.get("finished_at")),
            hyperparameters=hp, method=mtype, training_file=_str(data.get("training_file")),
            validation_file=_str(data.get("validation_file")),
            suffix=_str(data.get("user_provided_suffix") or data.get("suffix")), seed=_int(data.get("seed")),
            metadata=dict(data.get("metadata") or {}) if isinstance(data.get("metadata"), dict) else {},
            estimated_finish=_int(data.get("estimated_finish")), reused=reused, raw=data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("raw")
        d["content_hash"] = self.content_hash
        d["n_epochs"] = self.n_epochs
        return d


@dataclass
class Progress:
    """What the events say about training so far: step, total steps and the last training loss."""

    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None

    _STEP = re.compile(r"\bstep\s+(\d+)\s*(?:/\s*(\d+))?", re.IGNORECASE)
    _LOSS = re.compile(r"\b(?:training|train)[ _]loss\s*[=:]\s*([-+0-9.eE]+|nan)", re.IGNORECASE)

    def update(self, event: Mapping[str, Any]) -> None:
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        message = str(event.get("message") or "")
        step = _int(data.get("step"))
        total = _int(data.get("total_steps"))
        loss = data.get("train_loss")
        match = self._STEP.search(message)
        if match:
            step = step if step is not None else int(match.group(1))
            total = total if total is not None else (int(match.group(2)) if match.group(2) else None)
        loss_match = self._LOSS.search(message)
        if loss is None and loss_match:
            loss = loss_match.group(1)
        if step is not None:
            self.step = step
        if total is not None:
            self.total_steps = total
        try:
            if loss is not None:
                self.loss = float(loss)
        except (TypeError, ValueError):
            pass


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


_LINE = re.compile(r"\bline[ _.:#-]*(?:number[ _:]*)?(\d+)", re.IGNORECASE)


def _failure(error: Mapping[str, Any]) -> JobFailure:
    message = redact.scrub(str(error.get("message") or "the job failed (no message from the API)"))
    param = _str(error.get("param"))
    line = None
    for text in (param or "", message):
        match = _LINE.search(text)
        if match:
            line = int(match.group(1))
            break
    if param and re.match(r"^(training_file|validation_file)\b", param):
        param = re.match(r"^(training_file|validation_file)", param).group(1)
    return JobFailure(code=_str(error.get("code")), message=message, param=param, line=line)


# --------------------------------------------------------------------------------------------
# the HTTP layer: raw JSON, our own retries, explained errors


def _display_url(url: Any) -> str:
    """The endpoint as shown to people and stored: no user:password, no trailing slash."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _retry_delay(attempt: int, response: httpx2.Response | None) -> float:
    """The server's ``Retry-After`` (or ``retry-after-ms``) when it gives one, else exponential backoff."""
    asked = retry_after(response.headers) if response is not None else None
    if asked is not None:
        return asked
    return min(1.0 * 2 ** attempt, 30.0) * random.uniform(0.75, 1.25)


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


class _Api:
    """JSON over the openai client's HTTP stack; retries 429 and 5xx; turns failures into JobErrors."""

    def __init__(self, client: openai.OpenAI, *, sleep: Callable[[float], None] | None = None):
        self.client = client.with_options(max_retries=0)  # one retry mechanism: ours
        self.base_url = _display_url(client.base_url)
        self.sleep = sleep or (lambda seconds: time.sleep(seconds))
        redact.register(getattr(client, "api_key", None))
        redact.register_url(str(client.base_url))

    @staticmethod
    def scrub(text: str) -> str:
        return redact.scrub(text)

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, what: str) -> dict:
        return self.call(what, lambda: self.client.get(
            path, cast_to=httpx2.Response, options={"params": dict(params or {})}))

    def upload(self, path: Path, *, what: str) -> dict:
        def send():
            with open(path, "rb") as fh:
                return self.client.files.with_raw_response.create(
                    file=(path.name, fh, "application/jsonl"), purpose="fine-tune").http_response
        return self.call(what, send)

    def call(self, what: str, send: Callable[[], Any], *, explain: Callable[[openai.APIStatusError], str | None]
             | None = None, retry_server_errors: bool = True) -> dict:
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
                    raise JobError(f"{what}: {self.base_url} answered unexpected JSON: {self.scrub(str(data))[:200]}")
                return data
            except openai.APIStatusError as exc:
                transient = exc.status_code == 429 or exc.status_code >= 500
                if exc.status_code == 429 and _code(exc) == "insufficient_quota":
                    transient = False
                retryable = transient and (exc.status_code == 429 or retry_server_errors)
                if retryable and attempt < RATE_LIMIT_RETRIES:
                    self.sleep(_retry_delay(attempt, exc.response))
                    attempt += 1
                    continue
                message = explain(exc) if explain else None
                raise JobError(message or self.explain(exc, what, retries=attempt), transient=transient,
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

    def explain(self, exc: openai.APIStatusError, what: str, *, retries: int = 0) -> str:
        status = exc.status_code
        message, code, param = _error_fields(exc, self.scrub)
        if status == 401:
            env = getattr(self, "api_key_env", "OPENAI_API_KEY")
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


def _code(exc: openai.APIStatusError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    return _str(body.get("code"))


def _error_fields(exc: openai.APIStatusError, scrub: Callable[[str], str]) -> tuple[str, str | None, str | None]:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") if body else None
    if not message:
        message = str(exc.body) if isinstance(exc.body, str) and exc.body else ""
    return scrub(str(message)).strip(), _str(body.get("code")), _str(body.get("param"))


def _cassette_error(exc: BaseException) -> str | None:
    for current in _chain(exc):
        if type(current).__name__ == "CannotOverwriteExistingCassetteException":
            first = str(current).strip().splitlines()[0] if str(current).strip() else ""
            return (f"no recording of this request in the cassette ({first}); the cassette replays only what "
                    f"was recorded: record it again with --record-mode=all")
    return None


# --------------------------------------------------------------------------------------------
# the client


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


def _api(client: openai.OpenAI) -> _Api:
    api = _Api(client)
    api.api_key_env = getattr(client, "_pytest_ft_api_key_env", "OPENAI_API_KEY")
    return api


# --------------------------------------------------------------------------------------------
# content hash and local state


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise JobError(f"data file not found: {path}") from None
    except OSError as exc:
        raise JobError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _clean_hp(hyperparameters: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in sorted((hyperparameters or {}).items()) if v is not None and v != "auto"}


def job_hash(*, base_model: str, train_file: str | os.PathLike, val_file: str | os.PathLike | None = None,
             method: str = "supervised", hyperparameters: Mapping[str, Any] | None = None,
             suffix: str | None = None, seed: int | None = None) -> str:
    """The content hash identifying a job: sha256 over the data bytes and every parameter.

    Equal data and parameters give the equal hash whatever the files are called or where they are.
    Hyperparameters that are None or ``"auto"`` count as not given.
    """
    spec = {
        "v": 1, "base_model": base_model, "method": method, "hyperparameters": _clean_hp(hyperparameters),
        "suffix": suffix or None, "seed": seed, "train": _file_sha256(Path(train_file)),
        "val": _file_sha256(Path(val_file)) if val_file else None,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class _State:
    """``.pytest-ft/jobs.json``: the jobs launched and files uploaded from this directory.

    Writes go to a temporary file renamed into place; changes happen under an exclusive lock, so
    concurrent processes (pytest-xdist workers) neither lose entries nor launch a job twice.
    """

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.path = self.dir / STATE_FILE

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"cannot create {self.dir}: {exc.strerror or exc}") from None
        with open(self.dir / "jobs.lock", "a") as fh:
            try:
                import fcntl
                fcntl.flock(fh, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - Windows: atomic writes only
                pass
            yield

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "jobs": [], "files": []}
        except (OSError, ValueError) as exc:
            raise JobError(f"cannot read the job state file {self.path}: {exc}. Fix it or delete it "
                           f"(jobs are then found again through their metadata).") from None
        if not isinstance(data, dict):
            raise JobError(f"the job state file {self.path} is not a JSON object; fix it or delete it")
        data.setdefault("version", 1)
        data.setdefault("jobs", [])
        data.setdefault("files", [])
        return data

    def save(self, data: Mapping[str, Any]) -> None:
        write_atomic(self.path, json.dumps(data, indent=2) + "\n", durable=True)

    def find_job(self, content_hash: str, base_url: str) -> dict | None:
        for entry in reversed(self.load()["jobs"]):
            if entry.get("hash") == content_hash and entry.get("base_url") == base_url:
                return entry
        return None

    def entry_for(self, job_id: str) -> dict | None:
        try:
            jobs = self.load()["jobs"]
        except JobError:
            return None
        return next((e for e in reversed(jobs) if e.get("job_id") == job_id), None)

    def put_job(self, entry: dict) -> None:
        data = self.load()
        data["jobs"] = [e for e in data["jobs"] if e.get("job_id") != entry["job_id"]] + [entry]
        self.save(data)

    def update_job(self, job: JobInfo) -> None:
        if not self.path.exists():
            return
        with self.locked():
            data = self.load()
            for entry in data["jobs"]:
                if entry.get("job_id") == job.id:
                    entry.update(status=job.status, fine_tuned_model=job.fine_tuned_model,
                                 trained_tokens=job.trained_tokens)
                    self.save(data)
                    return

    def forget_job(self, job_id: str) -> None:
        data = self.load()
        data["jobs"] = [e for e in data["jobs"] if e.get("job_id") != job_id]
        self.save(data)

    def find_file(self, sha256: str, base_url: str) -> str | None:
        for entry in reversed(self.load()["files"]):
            if entry.get("sha256") == sha256 and entry.get("base_url") == base_url:
                return entry.get("file_id")
        return None

    def put_file(self, sha256: str, base_url: str, file_id: str, filename: str) -> None:
        data = self.load()
        data["files"] = [e for e in data["files"] if not (e.get("sha256") == sha256 and e.get("base_url") == base_url)]
        data["files"].append({"sha256": sha256, "base_url": base_url, "file_id": file_id, "filename": filename})
        self.save(data)

    def forget_file(self, file_id: str) -> None:
        data = self.load()
        data["files"] = [e for e in data["files"] if e.get("file_id") != file_id]
        self.save(data)


# --------------------------------------------------------------------------------------------
# jobs: the Python API


def _job_path(job_id: str, *rest: str) -> str:
    if not job_id or "/" in job_id or "?" in job_id:
        raise JobError(f"not a fine-tuning job id: {job_id!r}")
    return "/".join(("/fine_tuning/jobs", job_id, *rest))


def _not_found(api: _Api, job_id: str) -> Callable[[openai.APIStatusError], str | None]:
    def explain(exc: openai.APIStatusError) -> str | None:
        if exc.status_code == 404:
            return (f"no fine-tuning job {job_id!r} on {api.base_url} (HTTP 404). "
                    f"List your jobs with: pytest-ft jobs list")
        return None
    return explain


def _get_job(api: _Api, job_id: str, *, reused: bool = False) -> JobInfo:
    data = api.call(f"reading job {job_id}", lambda: api.client.get(
        _job_path(job_id), cast_to=httpx2.Response), explain=_not_found(api, job_id))
    return JobInfo.from_json(data, reused=reused)


def get_job(client: openai.OpenAI, job_id: str) -> JobInfo:
    """The job ``job_id`` (raises :class:`JobError` naming the endpoint when it does not exist)."""
    return _get_job(_api(client), job_id)


def list_jobs(client: openai.OpenAI, *, limit: int = 20, metadata: Mapping[str, str] | None = None) -> list[JobInfo]:
    """The newest ``limit`` jobs (optionally only those whose metadata has these values)."""
    api = _api(client)
    return [JobInfo.from_json(d) for d in _list_raw(api, limit=limit, metadata=metadata)]


def _list_raw(api: _Api, *, limit: int, metadata: Mapping[str, str] | None = None,
              max_pages: int = MAX_LIST_PAGES) -> list[dict]:
    out: list[dict] = []
    after = None
    filters = {f"metadata[{k}]": v for k, v in (metadata or {}).items()}
    for _ in range(max_pages):
        params: dict[str, Any] = {"limit": min(100, max(1, limit - len(out))), **filters}
        if after:
            params["after"] = after
        page = api.get("/fine_tuning/jobs", params, what="listing fine-tuning jobs")
        data = [d for d in page.get("data") or [] if isinstance(d, dict)]
        if metadata:  # a server may ignore the filter: match here too
            data = [d for d in data if all((d.get("metadata") or {}).get(k) == v for k, v in metadata.items())]
        out.extend(data)
        raw_page = page.get("data") or []
        if len(out) >= limit or not page.get("has_more") or not raw_page:
            break
        after = raw_page[-1].get("id") if isinstance(raw_page[-1], dict) else None
        if not after:
            break
    return out[:limit]


def list_events(client: openai.OpenAI, job_id: str, *, limit: int = 100) -> list[dict]:
    """The job's latest ``limit`` events, oldest first, as the API's JSON objects."""
    api = _api(client)
    events: list[dict] = []
    after = None
    while len(events) < limit:
        params: dict[str, Any] = {"limit": min(100, limit - len(events))}
        if after:
            params["after"] = after
        page = api.call(f"reading the events of job {job_id}", lambda params=params: api.client.get(
            _job_path(job_id, "events"), cast_to=httpx2.Response, options={"params": params}),
            explain=_not_found(api, job_id))
        data = [d for d in page.get("data") or [] if isinstance(d, dict)]
        events.extend(data)
        if not page.get("has_more") or not data or not data[-1].get("id"):
            break
        after = data[-1]["id"]
    return _chronological(events[:limit])


def list_checkpoints(client: openai.OpenAI, job_id: str, *, limit: int = 10) -> list[dict]:
    """The job's checkpoints (newest first), as the API's JSON objects; [] when the API has none."""
    api = _api(client)
    try:
        page = api.get(_job_path(job_id, "checkpoints"), {"limit": limit}, what=f"reading checkpoints of {job_id}")
    except JobError:
        return []
    return [d for d in page.get("data") or [] if isinstance(d, dict)]


def cancel_job(client: openai.OpenAI, job_id: str) -> JobInfo:
    """Cancel a job; a job that already ended is a :class:`JobError` saying so."""
    api = _api(client)

    def explain(exc: openai.APIStatusError) -> str | None:
        if exc.status_code == 404:
            return _not_found(api, job_id)(exc)
        if exc.status_code in (400, 409):
            message = _error_fields(exc, api.scrub)[0]
            return f"cannot cancel job {job_id}: {message}"
        return None

    data = api.call(f"cancelling job {job_id}", lambda: api.client.post(
        _job_path(job_id, "cancel"), cast_to=httpx2.Response), explain=explain)
    return JobInfo.from_json(data)


def _chronological(events: list[dict]) -> list[dict]:
    """OpenAI lists events newest first; a backend listing them oldest first is left as it is."""
    if len(events) >= 2:
        first, last = _int(events[0].get("created_at")), _int(events[-1].get("created_at"))
        if first is not None and last is not None and first < last:
            return list(events)
    return list(reversed(events))


def _check_data(train_file: Path, val_file: Path | None, base_model: str, method: str,
                max_warnings: int = 10) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the data files, one ``file:line: kind: message`` string each.

    Any error forbids launching. A model whose tokenizer is unknown (an open model on a local
    backend) is checked with the default model's tokenizer: the format checks are the same.
    """
    from .. import data
    from ..data import tokens

    errors: list[str] = []
    warnings: list[str] = []
    for path in filter(None, (train_file, val_file)):
        try:
            try:
                report = data.validate(path, base_model, progress=False)
            except tokens.UnknownModelError:
                report = data.validate(path, data.DEFAULT_MODEL, progress=False)
                warnings.append(f"{path}: tokenizer of {base_model!r} unknown; token counts use "
                                f"{data.DEFAULT_MODEL}'s")
        except data.DataError as exc:
            errors.append(f"{path}: {exc}")
            continue
        for p in report.problems:
            line = f"{path}:{p.line if p.line is not None else '-'}: {p.kind}: {p.message}"
            if p.severity == "error":
                errors.append(line)
            elif len(warnings) < max_warnings:
                warnings.append(line)
        if report.errors and report.problems_truncated:
            errors.append(f"{path}: ... {sum(report.errors.values())} errors in all "
                          f"(pytest-ft data validate {path} lists them)")
        wanted = "dpo" if method == "dpo" else "chat"
        if report.ok and report.format and report.format != wanted:
            names = {"dpo": "preference (DPO)", "chat": "chat"}
            errors.append(f"{path}: --method {method} needs {names[wanted]} examples, but the file holds "
                          f"{names.get(report.format, report.format)} examples")
    return errors, warnings


def _method_object(method: str, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    hp = _clean_hp(hyperparameters)
    return {"type": method, method: {"hyperparameters": hp}} if hp else {"type": method}


def _find_by_metadata(api: _Api, content_hash: str, *, created_since: float | None = None) -> dict | None:
    """The newest reusable job whose metadata carries this hash (created since then, if given)."""
    metadata = {HASH_KEY: content_hash}
    try:
        jobs = _list_raw(api, limit=100, metadata=metadata)
    except JobError as exc:
        if exc.status != 400:
            raise
        jobs = _list_raw(api, limit=500, metadata=metadata)  # the server refuses the filter: scan the list
        jobs = [j for j in jobs if (j.get("metadata") or {}).get(HASH_KEY) == content_hash]
    for job in jobs:  # newest first
        if created_since is not None and (_int(job.get("created_at")) or 0) < created_since:
            continue
        if str(job.get("status")) not in _NOT_REUSABLE:
            return job
    return None


def _upload(api: _Api, state: _State, path: Path, log: Callable[[str], None], poll_interval: float) -> str:
    sha = _file_sha256(path)
    known = state.find_file(sha, api.base_url)
    if known:
        try:
            info = api.get(f"/files/{known}", what=f"checking the uploaded file {known}")
            if str(info.get("status")) not in _FILE_FAILED:
                log(f"{path}: already uploaded as {known}")
                return known
        except JobError:
            pass
        state.forget_file(known)
    size = path.stat().st_size
    log(f"uploading {path} ({size:,} bytes)...")
    info = api.upload(path, what=f"uploading {path}")
    file_id = _str(info.get("id"))
    if not file_id:
        raise JobError(f"uploading {path}: {api.base_url} returned no file id")
    state.put_file(sha, api.base_url, file_id, path.name)
    # Wait (a little) for the API to process the file; job creation retries if it is not ready yet.
    for attempt in range(30):
        status = str(info.get("status") or "processed")
        if status in _FILE_FAILED:
            details = api.scrub(str(info.get("status_details") or "no details"))
            state.forget_file(file_id)
            failure = _failure({"message": details, "param": "training_file"})
            line = f" (line {failure.line})" if failure.line else ""
            raise JobError(f"the API rejected {path}{line}: {details}")
        if status in _FILE_READY or status not in ("uploaded", "pending", "running", "processing"):
            break
        api.sleep(min(poll_interval, 2.0 ** attempt))
        info = api.get(f"/files/{file_id}", what=f"checking the uploaded file {file_id}")
    return file_id


def _is_file_not_ready(exc: openai.APIStatusError) -> bool:
    if exc.status_code != 400:
        return False
    body = exc.body if isinstance(exc.body, dict) else {}
    code = str(body.get("code") or "")
    message = str(body.get("message") or "")
    return code in ("file_not_ready", "invalid_file_status") or bool(
        re.search(r"not (?:yet )?ready|still being processed|is being processed|processing", message, re.IGNORECASE))


def _model_not_fine_tunable(exc: openai.APIStatusError, model: str) -> bool:
    if exc.status_code not in (400, 404):
        return False
    body = exc.body if isinstance(exc.body, dict) else {}
    code, param, message = str(body.get("code") or ""), str(body.get("param") or ""), str(body.get("message") or "")
    return (param == "model" or code in ("model_not_available", "model_not_found", "invalid_model")
            or "fine-tun" in message.lower() and model in message)


def ensure_job(client: openai.OpenAI, *, base_model: str, train_file: str | os.PathLike,
               val_file: str | os.PathLike | None = None, suffix: str | None = None,
               hyperparameters: Mapping[str, Any] | None = None, method: str = "supervised",
               seed: int | None = None, force: bool = False, allow_launch: bool = True,
               state_dir: str | os.PathLike = DEFAULT_STATE_DIR, validate: bool = True,
               poll_interval: float = DEFAULT_POLL_INTERVAL, log: Callable[[str], None] | None = None) -> JobInfo:
    """Reuse the fine-tuning job for these data and parameters, or launch one.

    The job is looked up by its :func:`job_hash`: first in ``state_dir/jobs.json`` (for this
    endpoint), then among the endpoint's jobs by ``metadata.pytest_ft_hash``. A cancelled, deleted
    or expired job is not reused; a failed one is (its error tells the user what to fix: changed
    data make a new hash, or ``force=True`` launches anew). The returned :class:`JobInfo` has
    ``reused=True`` when found.

    Launching (only when nothing matches, or ``force``) validates the data (``validate=True``:
    a :class:`JobError` listing the errors with their line numbers), uploads the files (purpose
    ``fine-tune``; files uploaded before from this directory are reused), and creates the job with
    the hyperparameters inside ``method`` and the hash in ``metadata``. It is recorded in the state
    file at once. With ``allow_launch=False`` it raises :class:`LaunchNotAllowed` instead of
    launching (a job is paid). The whole call holds the state file's lock, so concurrent calls
    launch one job. ``log`` receives progress lines ("uploading ...", "reusing job ...").

    ``hyperparameters``: ``n_epochs``, ``batch_size``, ``learning_rate_multiplier`` (and ``beta``
    for ``method="dpo"``); None or ``"auto"`` values are left to the API.
    """
    if method not in METHODS:
        raise JobError(f"unknown method {method!r}: choose {' or '.join(METHODS)}")
    say = log or (lambda _msg: None)
    train, val = Path(train_file), Path(val_file) if val_file else None
    content_hash = job_hash(base_model=base_model, train_file=train, val_file=val, method=method,
                            hyperparameters=hyperparameters, suffix=suffix, seed=seed)
    api = _api(client)
    state = _State(state_dir)
    with state.locked():
        if not force:
            entry = state.find_job(content_hash, api.base_url)
            if entry:
                try:
                    job = _get_job(api, entry["job_id"], reused=True)
                except JobError as exc:
                    if exc.status != 404:
                        raise
                    state.forget_job(entry["job_id"])
                else:
                    if job.status not in _NOT_REUSABLE:
                        say(f"reusing job {job.id} ({job.status}): same data and parameters (state file {state.path})")
                        return job
            found = _find_by_metadata(api, content_hash)
            if found:
                job = JobInfo.from_json(found, reused=True)
                state.put_job(_state_entry(job, content_hash, api.base_url, train, val, method, hyperparameters, suffix, seed))
                say(f"reusing job {job.id} ({job.status}): found by its metadata {HASH_KEY}={content_hash[:12]}...")
                return job
        if not allow_launch:
            raise LaunchNotAllowed(
                f"no fine-tuning job on {api.base_url} matches {train} + {base_model} (hash {content_hash[:12]}), "
                f"and launching one (a paid job) was not allowed", content_hash=content_hash)
        if validate:
            problems, _warnings = _check_data(train, val, base_model, method)
            if problems:
                raise JobError("the data has errors; fix them before launching a job:\n  " + "\n  ".join(problems))
        train_id = _upload(api, state, train, say, poll_interval)
        val_id = _upload(api, state, val, say, poll_interval) if val else None
        payload: dict[str, Any] = {"model": base_model, "training_file": train_id,
                                   "method": _method_object(method, hyperparameters or {}),
                                   "metadata": {HASH_KEY: content_hash}}
        if val_id:
            payload["validation_file"] = val_id
        if suffix:
            payload["suffix"] = suffix
        if seed is not None:
            payload["seed"] = seed
        data = _create_with_retries(api, payload, train=train, val=val, poll_interval=poll_interval, log=say)
        job = JobInfo.from_json(data)
        if not job.id:
            raise JobError(f"creating the fine-tuning job: {api.base_url} returned no job id")
        state.put_job(_state_entry(job, content_hash, api.base_url, train, val, method, hyperparameters, suffix, seed))
        return job


def _create_with_retries(api: _Api, payload: dict, *, train: Path, val: Path | None, poll_interval: float,
                         log: Callable[[str], None]) -> dict:
    """POST the job; a "file not ready" answer is retried a few times, then explained."""
    model = payload["model"]
    files = {"training_file": str(train), "validation_file": str(val) if val else None}

    def explain(exc: openai.APIStatusError) -> str | None:
        message, _, param = _error_fields(exc, api.scrub)
        if _model_not_fine_tunable(exc, model):
            return (f"model {model!r} cannot be fine-tuned on {api.base_url}: {message}\n"
                    f"Pick a model that supports fine-tuning (e.g. gpt-4o-mini-2024-07-18 or "
                    f"gpt-4.1-mini-2025-04-14; see {FINE_TUNING_GUIDE}).")
        if exc.status_code == 400 and param in ("training_file", "validation_file"):
            failure = _failure(exc.body if isinstance(exc.body, dict) else {"message": message, "param": param})
            return f"creating the fine-tuning job: the API refused {files[param] or param}: " + failure.describe(files)
        return None

    not_ready: list[bool] = []

    def classify(exc: openai.APIStatusError) -> str | None:
        if _is_file_not_ready(exc):
            not_ready.append(True)
            return "file not ready"
        return explain(exc)

    lost = 0
    attempt = 0
    started = time.time() - 60  # server clocks differ a little; an older job with this hash is not ours
    while True:
        not_ready.clear()
        try:
            # 5xx is not retried blindly here: the job may exist although the answer was lost.
            return api.call("creating the fine-tuning job", lambda: api.client.post(
                "/fine_tuning/jobs", body=payload, cast_to=httpx2.Response), explain=classify,
                retry_server_errors=False)
        except JobError as exc:
            if exc.transient and lost < 3:  # a 5xx or a dropped connection: was the job created?
                lost += 1
                api.sleep(_retry_delay(lost - 1, None))
                found = _find_by_metadata(api, payload["metadata"][HASH_KEY], created_since=started)
                if found:
                    return found
                continue
            if not not_ready:
                raise
            attempt += 1
            if attempt > FILE_NOT_READY_RETRIES:
                raise JobError(
                    f"creating the fine-tuning job: the uploaded file is still being processed by {api.base_url} "
                    f"after {FILE_NOT_READY_RETRIES} retries. Run the same command again in a minute: the "
                    f"uploaded files are reused, nothing is uploaded twice.") from None
            log(f"the uploaded file is not ready yet; retrying ({attempt}/{FILE_NOT_READY_RETRIES})...")
            api.sleep(min(poll_interval, 2.0 ** (attempt - 1)))


def _state_entry(job: JobInfo, content_hash: str, base_url: str, train: Path, val: Path | None, method: str,
                 hyperparameters: Mapping[str, Any] | None, suffix: str | None, seed: int | None) -> dict:
    return {"hash": content_hash, "base_url": base_url, "job_id": job.id, "base_model": job.base_model,
            "train_file": str(train), "val_file": str(val) if val else None, "method": method,
            "hyperparameters": _clean_hp(hyperparameters), "suffix": suffix, "seed": seed,
            "created_at": job.created_at, "status": job.status, "fine_tuned_model": job.fine_tuned_model}


def _new_events(api: _Api, job_id: str, seen: set[str]) -> list[dict]:
    """Events not seen yet, oldest first: pages back from the newest until a page holds a seen one."""
    collected: list[dict] = []
    after = None
    for _ in range(MAX_EVENT_PAGES):
        params: dict[str, Any] = {"limit": 100}
        if after:
            params["after"] = after
        page = api.get(_job_path(job_id, "events"), params, what=f"reading the events of job {job_id}")
        data = [d for d in page.get("data") or [] if isinstance(d, dict)]
        hit_seen = False
        for event in data:
            key = str(event.get("id") or json.dumps(event, sort_keys=True))
            if key in seen:
                hit_seen = True
                continue
            collected.append(event)
        if hit_seen or not page.get("has_more") or not data or not data[-1].get("id"):
            break
        after = data[-1]["id"]
    fresh = []
    for event in _chronological(collected):
        key = str(event.get("id") or json.dumps(event, sort_keys=True))
        if key not in seen:
            seen.add(key)
            fresh.append(event)
    return fresh


def wait_for_job(client: openai.OpenAI, job_id: str, *, poll_interval: float = DEFAULT_POLL_INTERVAL,
                 on_event: Callable[[dict], None] | None = None,
                 on_poll: Callable[[JobInfo, Progress], None] | None = None,
                 timeout: float | None = None, seen_events: set[str] | None = None) -> JobInfo:
    """Follow job ``job_id`` until it is terminal (succeeded, failed, cancelled...) and return it.

    Every ``poll_interval`` seconds it reads the job and, when a callback wants them, its new
    events: ``on_event(event)`` gets each event once, oldest first (the API's JSON object:
    ``message``, ``level``, ``created_at``, ``data``...); ``on_poll(job, progress)`` gets the job and
    the :class:`Progress` (step, total steps, loss) after each poll. A failed job is *returned*
    (its ``error`` says why), not raised. Transient failures while polling (network, 5xx) are
    retried up to a few times; 429 is retried honouring Retry-After. ``timeout`` (seconds) raises
    :class:`JobError` when exceeded, leaving the job running. KeyboardInterrupt (from a callback
    or Ctrl-C) propagates: the job keeps running.
    """
    api = _api(client)
    seen = seen_events if seen_events is not None else set()
    progress = Progress()
    started = time.monotonic()
    failures = 0
    while True:
        try:
            job = _get_job(api, job_id)
            events = _new_events(api, job_id, seen) if (on_event or on_poll) else []
        except JobError as exc:
            failures += 1
            if not exc.transient or failures > MAX_POLL_FAILURES:
                raise
            api.sleep(poll_interval)
            continue
        failures = 0
        for event in events:
            progress.update(event)
            if on_event:
                on_event(event)
        if on_poll:
            on_poll(job, progress)
        if job.terminal:
            return job
        if timeout is not None and time.monotonic() - started > timeout:
            raise JobError(f"job {job_id} is still {job.status} after {timeout:g} s; it keeps running. "
                           f"Follow it with: pytest-ft jobs wait {job_id}", job=job)
        api.sleep(poll_interval)


def training_cost(job_or_tokens: JobInfo | int | None, base_model: str | None = None,
                  prices: PriceTable | None = None) -> float | None:
    """USD for training: trained tokens × the base model's training price per 1M tokens.

    ``job_or_tokens`` is a :class:`JobInfo` (its ``trained_tokens``, which already counts every
    epoch, and its ``base_model`` unless one is given) or a number of trained tokens (billed tokens
    × epochs, e.g. from :func:`pytest_ft.data.stats`). None when the tokens or the price are unknown
    (never a silent 0). ``prices`` defaults to the built-in table.
    """
    if isinstance(job_or_tokens, JobInfo):
        tokens = job_or_tokens.trained_tokens
        base_model = base_model or job_or_tokens.base_model
    else:
        tokens = job_or_tokens
    if tokens is None or not base_model:
        return None
    rate = (prices or PriceTable()).training_price(base_model)
    if rate is None:
        return None
    return tokens * rate / 1e6


def evaluate_command(job: JobInfo, *, base_url: str | None = None, suites: str | None = None) -> str | None:
    """The ``pytest --ft-model=...`` command evaluating a succeeded job's model (None before that)."""
    if not job.fine_tuned_model:
        return None
    parts = ["pytest"] + ([suites] if suites else []) + [f"--ft-model={job.fine_tuned_model}"]
    if job.base_model and fine_tuned_base(job.fine_tuned_model) != job.base_model:
        parts.append(f"--ft-base-model={job.base_model}")
    if base_url:
        parts.append(f"--ft-base-url={base_url}")
    return " ".join(shlex.quote(p) for p in parts)


# --------------------------------------------------------------------------------------------
# CLI


def _fmt_time(ts: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _fmt_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _fmt_int(value: int | None) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _fmt_usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _event_line(api: _Api, event: Mapping[str, Any]) -> str:
    level = str(event.get("level") or "info").lower()
    prefix = "" if level == "info" else f"{level.upper()}: "
    stamp = time.strftime("%H:%M:%S", time.localtime(_int(event.get("created_at")) or time.time()))
    return f"{stamp} {prefix}{api.scrub(str(event.get('message') or ''))}"


def _status_line(job: JobInfo, progress: Progress, started: float) -> str:
    parts = [job.status]
    if job.trained_tokens:
        parts.append(f"{job.trained_tokens:,} trained tokens")
    if progress.step is not None:
        parts.append(f"step {progress.step}" + (f"/{progress.total_steps}" if progress.total_steps else ""))
    if progress.loss is not None:
        parts.append(f"loss {progress.loss:.4g}")
    since = job.created_at if job.created_at and job.created_at <= time.time() else started
    parts.append(f"elapsed {_fmt_elapsed(time.time() - since)}")
    return " | ".join(parts)


class _Follower:
    """Prints a job's events once each and, on a terminal, one live status line redrawn in place."""

    def __init__(self, api: _Api, *, live: bool, stream=None):
        self.api = api
        self.live = live
        self.stream = stream or sys.stdout
        self.started = time.time()
        self.status: str | None = None
        self.line = ""

    def _clear(self) -> None:
        if self.live and self.line:
            self.stream.write("\r\x1b[K")

    def on_event(self, event: dict) -> None:
        self._clear()
        self.stream.write(_event_line(self.api, event) + "\n")
        if self.live and self.line:
            self.stream.write(self.line)
        self.stream.flush()

    def on_poll(self, job: JobInfo, progress: Progress) -> None:
        line = _status_line(job, progress, self.started)
        if self.live:
            self._clear()
            self.line = line
            self.stream.write(line)
        elif job.status != self.status:
            self.stream.write(f"status: {line}\n")
        self.status = job.status
        self.stream.flush()

    def close(self) -> None:
        if self.live and self.line:
            self.stream.write("\n")
            self.stream.flush()
            self.line = ""


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _resume_hint(job_id: str, args: argparse.Namespace) -> str:
    extra = f" --base-url {shlex.quote(args.base_url)}" if getattr(args, "base_url", None) else ""
    return (f"stopped following job {job_id}; it keeps running (Ctrl-C does not cancel it).\n"
            f"resume:  pytest-ft jobs wait {job_id}{extra}\n"
            f"cancel:  pytest-ft jobs cancel {job_id}{extra}")


def _local_files(state_dir: Path, job: JobInfo) -> dict[str, str | None]:
    entry = _State(state_dir).entry_for(job.id) or {}
    return {"training_file": entry.get("train_file") or job.training_file,
            "validation_file": entry.get("val_file") or job.validation_file}


def _finish(api: _Api, job: JobInfo, args: argparse.Namespace, *, quiet: bool = False) -> int:
    """Report a terminal job: the model and the pytest command, or why it did not succeed."""
    state_dir = Path(args.state_dir)
    _State(state_dir).update_job(job)
    if job.succeeded:
        if not quiet:
            cost = training_cost(job)
            print(f"\nsucceeded: {job.fine_tuned_model}")
            print(f"  trained tokens: {_fmt_int(job.trained_tokens)}"
                  + (f", training cost ~{_fmt_usd(cost)}" if cost is not None else ""))
            print("evaluate it with:")
            print(f"  {evaluate_command(job, base_url=args.base_url)}")
        return 0
    if job.status == "failed":
        reason = api.scrub(job.error.describe(_local_files(state_dir, job))) if job.error else "the API gave no reason"
        raise JobError(f"job {job.id} failed: {reason}\nFix the data or parameters and run again "
                       f"(changed data launch a new job; --force relaunches the same).", exit_code=1, job=job)
    if job.status in ("cancelled", "canceled"):
        raise JobError(f"job {job.id} was cancelled; run train with --force to launch it again", exit_code=1, job=job)
    raise JobError(f"job {job.id} ended with status {job.status!r} and no model", exit_code=1, job=job)


def _follow(api: _Api, client: openai.OpenAI, job_id: str, args: argparse.Namespace) -> JobInfo:
    follower = _Follower(api, live=sys.stdout.isatty() and not args.json)
    callbacks = {} if args.json else {"on_event": follower.on_event, "on_poll": follower.on_poll}
    try:
        return wait_for_job(client, job_id, poll_interval=args.poll_interval, **callbacks)
    except KeyboardInterrupt:
        follower.close()
        print("\n" + _resume_hint(job_id, args), file=sys.stderr)
        raise _Interrupted() from None
    finally:
        follower.close()


class _Interrupted(Exception):
    pass


@contextlib.contextmanager
def _cassette(path: str | None, mode: str) -> Iterator[None]:
    """Record (or replay) every HTTP call of the command in one vcrpy cassette."""
    if not path:
        yield
        return
    import vcr

    from ..recording.cassette import filter_request, filter_response, readable_yaml

    def before_record_request(request: Any) -> Any:
        return _digest_uploads(filter_request(request))

    recorder = vcr.VCR()
    recorder.register_serializer("pytest_ft_yaml", readable_yaml)
    recorder.register_matcher("ft_body", _body_matcher)
    with recorder.use_cassette(path, serializer="pytest_ft_yaml", record_mode=mode,
                               match_on=["method", "path", "query", "ft_body"],
                               before_record_request=before_record_request, before_record_response=filter_response):
        yield


_BOUNDARY = re.compile(rb"--([^\r\n]+)\r\n")


def _digest_uploads(request: Any) -> Any:
    """An uploaded file is recorded as its sha256 and size, not its bytes: datasets stay out of cassettes."""
    if getattr(request, "_ft_uploads_digested", False):
        return request
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    match = _BOUNDARY.match(body)
    if match:
        delimiter = b"--" + match.group(1)
        parts = body.split(delimiter)
        out = []
        for part in parts:
            head, sep, content = part.partition(b"\r\n\r\n")
            if sep and b"filename=" in head and not content.startswith(b"<file: "):  # (vcrpy filters twice)
                content = content[:-2] if content.endswith(b"\r\n") else content
                digest = hashlib.sha256(content).hexdigest()
                part = head + sep + f"<file: {len(content)} bytes, sha256 {digest}>".encode() + b"\r\n"
            out.append(part)
        request.body = b"--BOUNDARY".join(out)
    request._ft_uploads_digested = True
    return request


def _normal_body(request: Any) -> Any:
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    try:
        return ("json", json.loads(body))
    except ValueError:
        pass
    match = _BOUNDARY.match(body)
    if match:  # multipart: the boundary is random
        return ("multipart", body.replace(match.group(1), b"BOUNDARY"))
    return ("raw", body)


def _body_matcher(r1: Any, r2: Any) -> None:
    if _normal_body(r1) != _normal_body(r2):
        raise AssertionError("request bodies differ")


def _client_for(args: argparse.Namespace) -> tuple[openai.OpenAI, _Api]:
    client = make_client(args.base_url, api_key_env=args.api_key_env)
    return client, _api(client)


def _hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    hp = {"n_epochs": args.epochs, "batch_size": args.batch_size, "learning_rate_multiplier": args.lr_multiplier}
    if args.beta is not None:
        if args.method != "dpo":
            raise JobError("--beta applies to --method dpo only")
        hp["beta"] = args.beta
    return {k: v for k, v in hp.items() if v is not None}


def _cmd_train(args: argparse.Namespace) -> int:
    train, val = Path(args.train), Path(args.val) if args.val else None
    hp = _hyperparameters(args)
    out = sys.stderr if args.json else sys.stdout
    for path in filter(None, (train, val)):
        if not path.is_file():
            raise JobError(f"data file not found: {path}")
    problems, warnings = _check_data(train, val, args.model, args.method)
    if problems:
        raise JobError("the data has errors; nothing was uploaded. Fix them first "
                       "(pytest-ft data validate FILE explains each kind):\n  " + "\n  ".join(problems))
    if warnings:
        print(f"data warnings ({len(warnings)}{'+' if len(warnings) >= 10 else ''}; "
              f"pytest-ft data validate FILE shows all):", file=out)
        for line in warnings:
            print(f"  {line}", file=out)
    client, api = _client_for(args)
    with _cassette(args.cassette, args.record_mode):
        job = ensure_job(client, base_model=args.model, train_file=train, val_file=val, suffix=args.suffix,
                         hyperparameters=hp, method=args.method, seed=args.seed, force=args.force,
                         state_dir=args.state_dir, validate=False, poll_interval=args.poll_interval,
                         log=lambda msg: print(msg, file=out))
        if not args.json:
            print(f"job: {job.id} ({job.status}{', reused' if job.reused else ''})")
        if args.wait and not job.terminal:
            if not args.json:
                print(f"following {job.id} (Ctrl-C stops following; the job keeps running)")
            reused = job.reused
            job = _follow(api, client, job.id, args)
            job.reused = reused
        elif not args.wait and not job.terminal and not args.json:
            print(f"follow it with: pytest-ft jobs wait {job.id}"
                  + (f" --base-url {shlex.quote(args.base_url)}" if args.base_url else ""))
    if args.json:
        _print_json({"job": job.to_dict(), "evaluate": evaluate_command(job, base_url=args.base_url),
                     "training_cost_usd": training_cost(job)})
    if job.terminal:
        return _finish(api, job, args, quiet=args.json)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    client, _ = _client_for(args)
    with _cassette(args.cassette, args.record_mode):
        jobs = list_jobs(client, limit=args.limit)
    if args.json:
        _print_json([j.to_dict() for j in jobs])
        return 0
    if not jobs:
        print(f"no fine-tuning jobs on {_display_url(client.base_url)}")
        return 0
    state = _State(args.state_dir)
    rows = []
    for j in jobs:
        entry = state.entry_for(j.id) or {}
        rows.append([j.id, j.status, j.base_model or "-", j.fine_tuned_model or "-", _fmt_int(j.trained_tokens),
                     _fmt_time(j.created_at), entry.get("train_file") or "-"])
    print(tabulate(rows, headers=["job", "status", "base model", "fine-tuned model", "trained tokens", "created",
                                  "data (local)"], colalign=("left", "left", "left", "left", "right")))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    client, api = _client_for(args)
    with _cassette(args.cassette, args.record_mode):
        job = get_job(client, args.job_id)
        checkpoints = list_checkpoints(client, args.job_id) if job.status == "succeeded" else []
    prices = PriceTable.from_file(args.prices) if args.prices else None
    cost = training_cost(job, prices=prices)
    if args.json:
        _print_json({"job": job.to_dict(), "checkpoints": checkpoints, "training_cost_usd": cost,
                     "evaluate": evaluate_command(job, base_url=args.base_url)})
        return 0
    hp = job.hyperparameters
    rows = [["job", job.id], ["status", job.status], ["base model", job.base_model or "-"],
            ["fine-tuned model", job.fine_tuned_model or "-"], ["method", job.method or "-"],
            ["epochs", hp.get("n_epochs", "-")], ["batch size", hp.get("batch_size", "-")],
            ["learning rate multiplier", hp.get("learning_rate_multiplier", "-")],
            ["trained tokens", _fmt_int(job.trained_tokens)], ["training cost", _fmt_usd(cost)],
            ["created", _fmt_time(job.created_at)], ["finished", _fmt_time(job.finished_at)],
            ["training file", job.training_file or "-"], ["validation file", job.validation_file or "-"],
            ["suffix", job.suffix or "-"], ["content hash", (job.content_hash or "-")[:16]]]
    if job.error:
        rows.append(["error", api.scrub(job.error.describe(_local_files(Path(args.state_dir), job)))])
    print(tabulate(rows, tablefmt="plain"))
    if checkpoints:
        print("\ncheckpoints:")
        print(tabulate([[c.get("step_number", "-"), c.get("fine_tuned_model_checkpoint", "-"),
                         _loss((c.get("metrics") or {}).get("train_loss"))] for c in checkpoints],
                       headers=["step", "model", "train loss"]))
    command = evaluate_command(job, base_url=args.base_url)
    if command:
        print(f"\nevaluate it with:\n  {command}")
    return 0


def _loss(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


def _cmd_events(args: argparse.Namespace) -> int:
    client, api = _client_for(args)
    with _cassette(args.cassette, args.record_mode):
        events = list_events(client, args.job_id, limit=args.limit)
    if args.json:
        _print_json(events)
        return 0
    if not events:
        print(f"no events for job {args.job_id}")
        return 0
    print(tabulate([[_fmt_time(_int(e.get("created_at"))), e.get("level") or "-", api.scrub(str(e.get("message") or ""))]
                    for e in events], headers=["time", "level", "message"]))
    return 0


def _cmd_wait(args: argparse.Namespace) -> int:
    client, api = _client_for(args)
    with _cassette(args.cassette, args.record_mode):
        if not args.json:
            print(f"following {args.job_id} (Ctrl-C stops following; the job keeps running)")
        job = _follow(api, client, args.job_id, args)
    if args.json:
        _print_json({"job": job.to_dict(), "evaluate": evaluate_command(job, base_url=args.base_url),
                     "training_cost_usd": training_cost(job)})
    return _finish(api, job, args, quiet=args.json)


def _cmd_cancel(args: argparse.Namespace) -> int:
    client, _ = _client_for(args)
    with _cassette(args.cassette, args.record_mode):
        job = cancel_job(client, args.job_id)
    _State(args.state_dir).update_job(job)
    if args.json:
        _print_json({"job": job.to_dict()})
    else:
        print(f"cancelled {job.id} (status: {job.status})")
    return 0


def _run(command: str, handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except JobError as exc:
            print(f"pytest-ft {command}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except _Interrupted:
            return 130
    return run


def _endpoint_options(p: argparse.ArgumentParser, *, follow: bool = False) -> None:
    p.add_argument("--base-url", help="the OpenAI-compatible API (default $OPENAI_BASE_URL, else OpenAI's); "
                                      "Azure OpenAI: https://RESOURCE.openai.azure.com/openai/v1")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="NAME",
                   help="environment variable holding the API key (default OPENAI_API_KEY)")
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of tables")
    p.add_argument("--cassette", metavar="PATH", help="record the API calls into this vcrpy cassette, or replay them")
    p.add_argument("--record-mode", default="once", choices=("once", "new_episodes", "none", "all"),
                   help="vcrpy record mode for --cassette (default once: replay if it exists, else record)")
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), metavar="DIR",
                   help=f"where the launched jobs are remembered (default {DEFAULT_STATE_DIR}/)")
    if follow:
        p.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL, metavar="SECONDS",
                       help=f"seconds between polls while following (default {DEFAULT_POLL_INTERVAL:g})")


def register_cli(subparsers: Any) -> None:
    """Add ``train`` and ``jobs`` (``list``, ``status``, ``events``, ``wait``, ``cancel``) to ``subparsers``."""
    p = subparsers.add_parser(
        "train", help="validate the data, upload it and launch (or reuse) a fine-tuning job",
        description="Validate the data, upload it and create a fine-tuning job; print its id. The same command "
                    "run again (same data, model and parameters) reuses the job instead of paying for another. "
                    "With --wait, follow it to its end and print the pytest command that evaluates the model.")
    p.add_argument("--model", required=True, help="the base model to fine-tune (e.g. gpt-4o-mini-2024-07-18)")
    p.add_argument("--train", required=True, metavar="FILE", help="the training JSONL")
    p.add_argument("--val", metavar="FILE", help="the validation JSONL")
    p.add_argument("--suffix", help="added to the fine-tuned model's name (up to 64 characters)")
    p.add_argument("--epochs", type=int, metavar="N", help="number of epochs (default: the API's choice)")
    p.add_argument("--batch-size", type=int, metavar="N", help="batch size (default: the API's choice)")
    p.add_argument("--lr-multiplier", type=float, metavar="X", help="learning rate multiplier")
    p.add_argument("--beta", type=float, metavar="X", help="DPO beta (with --method dpo)")
    p.add_argument("--method", choices=METHODS, default="supervised", help="fine-tuning method (default supervised)")
    p.add_argument("--seed", type=int, metavar="N", help="the job's seed, for reproducibility")
    p.add_argument("--wait", action="store_true", help="follow the job to its end")
    p.add_argument("--force", action="store_true", help="launch a new job even if one with this content exists")
    _endpoint_options(p, follow=True)
    p.set_defaults(func=_run("train", _cmd_train))

    jobs = subparsers.add_parser("jobs", help="list, inspect, follow and cancel fine-tuning jobs",
                                 description="List, inspect, follow and cancel fine-tuning jobs.")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="COMMAND", required=True)
    q = sub.add_parser("list", help="the newest jobs")
    q.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    _endpoint_options(q)
    q.set_defaults(func=_run("jobs list", _cmd_list))
    q = sub.add_parser("status", help="one job: status, model, hyperparameters, tokens, cost, checkpoints")
    q.add_argument("job_id", metavar="ID")
    q.add_argument("--prices", metavar="FILE", help="a YAML/JSON price file overriding the built-in prices")
    _endpoint_options(q)
    q.set_defaults(func=_run("jobs status", _cmd_status))
    q = sub.add_parser("events", help="a job's events, oldest first")
    q.add_argument("job_id", metavar="ID")
    q.add_argument("--limit", type=int, default=100, help="the latest N events (default 100)")
    _endpoint_options(q)
    q.set_defaults(func=_run("jobs events", _cmd_events))
    q = sub.add_parser("wait", help="follow a job to its end (Ctrl-C stops following, not the job)")
    q.add_argument("job_id", metavar="ID")
    _endpoint_options(q, follow=True)
    q.set_defaults(func=_run("jobs wait", _cmd_wait))
    q = sub.add_parser("cancel", help="cancel a job")
    q.add_argument("job_id", metavar="ID")
    _endpoint_options(q)
    q.set_defaults(func=_run("jobs cancel", _cmd_cancel))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pytest-ft train ...`` / ``pytest-ft jobs ...``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="pytest-ft")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_cli(sub)
    args = parser.parse_args(list(argv) if argv is not None else None)
    return int(args.func(args) or 0)


def known_job(content_hash: str, state_dir: str | os.PathLike = DEFAULT_STATE_DIR) -> dict | None:
    """The newest state-file entry for ``content_hash`` on any endpoint, without reaching the API."""
    try:
        jobs = _State(state_dir).load()["jobs"]
    except JobError:
        return None
    return next((e for e in reversed(jobs) if e.get("hash") == content_hash), None)


def record_job(job: JobInfo, state_dir: str | os.PathLike = DEFAULT_STATE_DIR) -> None:
    """Keep a followed job's end (status, model, trained tokens) in the state file."""
    _State(state_dir).update_job(job)
