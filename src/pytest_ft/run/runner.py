"""Run every case's requests concurrently, on a background event loop, with retries.

pytest runs items one after another in its main thread, and spends about a millisecond
on each. If each item sent its own requests, a 1,000-case suite would take 1,000 round
trips. Instead the plugin submits every selected case up front; this module works
through them on an asyncio loop in a background thread, holding up to ``concurrency``
requests in flight across all cases and models, while pytest's main thread reports each
item as soon as its result is ready. pytest's own work overlaps the network wait.

One retry mechanism: the openai client's own retries are off (``max_retries=0``) and
:meth:`Runner.complete` retries 408/409/429/5xx, timeouts and dropped connections with
exponential backoff, honouring ``Retry-After``, outside the concurrency slot so a
backing-off request does not block others.

Whatever goes wrong in a case (an API error, an answer that cannot be read, a recording
that cannot be written) becomes that case's error: :meth:`Runner.run_case` never raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

import httpx2

if TYPE_CHECKING:
    import openai

from .. import redact
from ..graders import Grade, GradeContext, GraderError, SyncGrader
from ..graders.prefer import prefer
from ..messages import answer_text, content_text, tool_calls
from ..recording.cassette import (
    LATENCY_EXTENSION,
    REPLAYED_HEADER,
    CaseCassette,
    CassetteUnreadable,
    RecordingMissing,
    RecordingTransport,
    current_cassette,
    recorded_latency,
)
from . import DEFAULT_CONCURRENCY, DEFAULT_RETRIES, DEFAULT_TIMEOUT
from .heap import fewer_full_collections
from .network import client_base_url, environment_proxy, on_asyncio
from .ratelimit import AdaptiveLimiter, retry_after, retry_delay

MAX_TOKENS_PER_CALL = 100_000_000  # beyond any context window: a count above it is a broken server
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
NO_KEY = "pytest-ft-no-api-key"


@dataclass(frozen=True)
class Endpoint:
    """Where a model lives: an OpenAI-compatible base URL and the variable holding its key."""

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"


@dataclass(frozen=True)
class ModelRef:
    role: str
    model: str
    endpoint: Endpoint = Endpoint()
    params: Mapping[str, Any] = field(default_factory=dict)
    system: str | None = None  # a variant's system prompt, in place of the case's
    examples: tuple = ()  # a variant's few-shot turns, before the case's conversation
    answers: Any = field(default=None, compare=False)  # frozen answers (data.frozen) that stand for live calls


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    requests: int = 0

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.requests += other.requests

    def to_dict(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cached_tokens": self.cached_tokens, "requests": self.requests}

    @classmethod
    def from_api(cls, usage: Any) -> "Usage":
        """The server's token counts; raises ValueError on counts no model can have used.

        A server that reports no usage (some local servers) counts zero tokens.
        """
        if usage is None:
            return cls(requests=1)
        details = usage.get("prompt_tokens_details") if isinstance(usage, Mapping) else None
        if not isinstance(usage, Mapping) or not isinstance(details or {}, Mapping):
            raise ValueError(f"usage is not an object: {str(usage)[:100]!r}")
        return cls(prompt_tokens=_token_count(usage, "prompt_tokens"),
                   completion_tokens=_token_count(usage, "completion_tokens"),
                   cached_tokens=_token_count(details or {}, "cached_tokens"), requests=1)


def _token_count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS_PER_CALL:
        raise ValueError(f"impossible token count {key}={str(value)[:40]!r}")
    return value


@dataclass
class Answer:
    text: str
    usage: Usage
    replayed: bool
    latency_ms: float | None = None  # the live call's, or the one kept with its recording
    tool_calls: list[dict] | None = None  # see messages.tool_calls
    model: str | None = None  # the model the response names

    @property
    def shown(self) -> str:
        """The answer as reports show it: text and tool calls."""
        return answer_text(self.text, self.tool_calls)


class ApiError(Exception):
    """A model call that failed for good; the message is the API's, with the model named.

    Servers echo what they were sent, credentials included: the message is scrubbed here,
    once, so no output path can show it raw.
    """

    def __init__(self, message: str):
        super().__init__(redact.scrub(message))


@dataclass
class ModelOutcome:
    role: str
    model: str
    output: str | None = None
    passed: bool = False
    score: float = 0.0
    reason: str = ""
    usage: Usage = field(default_factory=Usage)
    replayed: bool = False
    error: str | None = None
    samples: list[dict] = field(default_factory=list)  # each sample's answer when a case is sampled repeatedly
    latencies: list[float] = field(default_factory=list)  # ms, each call's whose latency is known
    unscored: bool = False  # answered, but nothing could say whether it passed
    agreement: dict | None = None  # {agreed, score, reason}: graded against the reference model's answer
    tool_calls: list[dict] | None = None  # the tool calls of the answer that stands for the model

    @property
    def flaky(self) -> bool:
        """Samples that disagree: different answers, or some passing and some not."""
        return len({s["output"] for s in self.samples}) > 1 or len({s["passed"] for s in self.samples}) > 1

    def to_dict(self) -> dict:
        entry = {"model": self.model, "output": self.output, "passed": self.passed, "score": self.score,
                 "reason": self.reason, **self.usage.to_dict(), "replayed": self.replayed, "error": self.error,
                 "latency_ms": round(statistics.median(self.latencies)) if self.latencies else None,
                 "unscored": self.unscored, "agreement": self.agreement}
        if self.tool_calls is not None:
            entry["tool_calls"] = self.tool_calls
        if len(self.samples) > 1:
            entry.update(samples=self.samples, flaky=self.flaky,
                         pass_rate=sum(s["passed"] for s in self.samples) / len(self.samples))
        return entry


@dataclass
class CaseResult:
    models: dict[str, ModelOutcome]
    judge_model: str | None = None
    judge_usage: Usage = field(default_factory=Usage)
    cassette: str | None = None
    error: str | None = None
    batch: bool = False  # answered through the Batch API (priced at batch rates)
    preference: dict | None = None  # graders.prefer.Preference, with the roles compared

    @property
    def errors(self) -> list[str]:
        found = [o.error for o in self.models.values() if o.error]
        return found + ([self.error] if self.error else [])


@dataclass
class CaseJob:
    """One case to run: its messages on each model, then grading (and the judge)."""

    case_id: str
    messages: list[dict]
    expected: Any
    grader: Any
    params: Mapping[str, Any]
    models: list[ModelRef]
    judge: ModelRef | None = None
    cassette: Path | None = None
    repeat: int = 1
    pass_if: str | int = "majority"
    reference: str | None = None  # the role of the model being replaced
    labelled: bool = True  # False: the reference's answer is the expected one
    agreement: Any = None  # the grader of agreement with the reference (None: the case's grader)
    prefer: dict | None = None  # a pairwise judgement: {roles, rubric, model, include_expected}


def register_endpoint(endpoint: Endpoint) -> None:
    """The key this endpoint reads and its URL's credentials are secrets from now on."""
    redact.register(os.environ.get(endpoint.api_key_env))
    redact.register_url(endpoint.base_url)


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """A request's tokens before sending it (~4 characters a token, plus the answer's cap)."""
    text = sum(len(str(m.get("content") or "")) for m in body.get("messages", ()))
    answer = body.get("max_completion_tokens") or body.get("max_tokens") or 256
    return text // 4 + 4 * len(body.get("messages", ())) + int(answer)


def describe_api_error(exc: BaseException, ref: ModelRef, timeout: float | None = None) -> str:
    import openai

    where = f"{ref.role} model {ref.model!r}"
    if isinstance(exc, TimeoutError):
        return f"{where}: request timed out (no complete answer within {timeout:g} s; see --ft-timeout)"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        message = str(body.get("message") or exc.message)
        if isinstance(exc.body, str) and exc.body.strip():  # a plain-text answer: it is the message
            text = " ".join(exc.body.split())
            message = text if len(text) <= 300 else text[:299] + "…"
        if body.get("code") or body.get("type"):
            message += f" ({body.get('code') or body.get('type')})"
        if exc.status_code == 401 and not os.environ.get(ref.endpoint.api_key_env):
            message += f" ({ref.endpoint.api_key_env} is not set)"
        return f"{where}: HTTP {exc.status_code}: {message}"
    if isinstance(exc, openai.APITimeoutError):
        return f"{where}: request timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        return f"{where}: cannot reach {redact.redact_url(ref.endpoint.base_url or 'the OpenAI API')} ({detail})"
    return f"{where}: {type(exc).__name__}: {exc}"


class _ClientShards:
    """One endpoint's clients, each with a small connection pool; a request takes the least busy.

    httpcore scans every connection of its pool each time it assigns a request, so one pool of
    128 connections spends more CPU per request than the request itself costs. Pools of at
    most ``POOL_SIZE`` keep that scan short; with the runner's global limit, the least busy
    pool always has a free connection.
    """

    POOL_SIZE = 16

    def __init__(self, make_client, concurrency: int):
        count = math.ceil(concurrency / self.POOL_SIZE)
        self.clients = [make_client(math.ceil(concurrency / count)) for _ in range(count)]
        self.busy = [0] * count

    @contextlib.asynccontextmanager
    async def least_busy(self):
        index = min(range(len(self.busy)), key=self.busy.__getitem__)
        self.busy[index] += 1
        try:
            yield self.clients[index]
        finally:
            self.busy[index] -= 1


class Runner:
    """Owns the event loop thread, the clients (one per endpoint) and the concurrency limit."""

    def __init__(self, *, concurrency: int = DEFAULT_CONCURRENCY, timeout: float = DEFAULT_TIMEOUT,
                 max_retries: int = DEFAULT_RETRIES, record_mode: str | None = "once",
                 tokens_per_minute: int | None = None):
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max_retries
        self.record_mode = record_mode
        self._clients: dict[Endpoint, _ClientShards] = {}
        self._chat_urls: dict[Endpoint, str] = {}
        self._loop = asyncio.new_event_loop()
        self.tokens_per_minute = tokens_per_minute
        self.limiter: AdaptiveLimiter | None = None  # made on the loop, where it waits
        self.cases_done = 0
        self.tokens = 0
        self.requests_sent = 0  # over the network (attempts): none yet means the runner only replays
        self._thread = threading.Thread(target=self._loop.run_forever, name="pytest-ft-runner", daemon=True)
        self._thread.start()
        self._futures: set[concurrent.futures.Future] = set()
        self._restore_gc = fewer_full_collections()

    # -- public, called from pytest's thread -------------------------------------------------

    def submit(self, job: CaseJob) -> concurrent.futures.Future:
        return self.spawn(self.run_case(job))

    def submit_batch(self, run) -> concurrent.futures.Future:
        """Run a :class:`~pytest_ft.batch.BatchRun` on the loop; its future gives results by case id."""
        return self.spawn(run.run())

    def spawn(self, coroutine) -> concurrent.futures.Future:
        """Run ``coroutine`` on the loop; :meth:`close` (Ctrl-C) cancels it if it is still running."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    @contextlib.contextmanager
    def paused(self):
        """Hold the loop while pytest's thread hands it many cases at once: else it starts on
        the first while the others are handed over, and the two threads trade the interpreter
        lock at every step of both."""
        resume = threading.Event()
        try:  # (set, whatever happens: a loop left waiting would never close)
            self._loop.call_soon_threadsafe(resume.wait)
            yield
        finally:
            resume.set()

    def complete_sync(self, ref: ModelRef, messages: list[dict], params: Mapping[str, Any],
                      case_cassette: CaseCassette | None = None) -> Answer:
        """One call from pytest's thread (the ``ft_complete`` fixture), saved as soon as it returns."""
        async def call() -> Answer:
            current_cassette.set(case_cassette)
            try:
                return await self.complete(ref, messages, params)
            finally:
                if case_cassette is not None:
                    case_cassette.save(complete=False)

        try:
            return asyncio.run_coroutine_threadsafe(call(), self._loop).result()
        except ApiError as exc:
            raise ApiError(str(exc)) from None

    def close(self) -> None:
        for future in list(self._futures):
            future.cancel()
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._aclose(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self._loop.close()
        self._restore_gc()

    # -- on the loop -------------------------------------------------------------------------

    async def _aclose(self) -> None:
        for shards in self._clients.values():
            for client in shards.clients:
                await client.close()
        self._clients.clear()

    def _shards(self, endpoint: Endpoint) -> "_ClientShards":
        shards = self._clients.get(endpoint)
        if shards is None:
            import openai  # here, not at the top: pytest runs without suites never pay for importing it

            register_endpoint(endpoint)

            proxy = environment_proxy(endpoint.base_url)
            redact.register_url(proxy)  # a proxy's URL may carry its user's password

            def make_client(connections: int) -> openai.AsyncOpenAI:
                limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
                transport = RecordingTransport(on_asyncio(httpx2.AsyncHTTPTransport(limits=limits, proxy=proxy)))
                return openai.AsyncOpenAI(
                    api_key=os.environ.get(endpoint.api_key_env) or NO_KEY,
                    base_url=endpoint.base_url or None,
                    max_retries=0, timeout=self.timeout,
                    http_client=httpx2.AsyncClient(transport=transport, timeout=self.timeout),
                )

            shards = self._clients[endpoint] = _ClientShards(make_client, self.concurrency)
        return shards

    def _chat_url(self, endpoint: Endpoint) -> str:
        """Where ``endpoint``'s client sends chat completions, resolved as the openai client
        resolves its base URL — known without making the client: a run that only replays never
        imports openai (a third of a second). Were it to differ from the client's, a replay
        would still match, through the client."""
        url = self._chat_urls.get(endpoint)
        if url is None:
            register_endpoint(endpoint)
            base = client_base_url(endpoint.base_url).rstrip("/")
            url = self._chat_urls[endpoint] = f"{base}/chat/completions"
        return url

    def open_cassette(self, path: Path | None, case: str) -> CaseCassette | None:
        if path is None or self.record_mode is None:
            return None
        return CaseCassette.open(path, self.record_mode, case)

    async def complete(self, ref: ModelRef, messages: list[dict], params: Mapping[str, Any]) -> Answer:
        """One chat completion, retried on transient failures; raises :class:`ApiError`."""
        body = chat_body(ref, messages, params)
        return self.recorded_answer(ref, body) or await self.call(ref, body)

    async def call(self, ref: ModelRef, body: dict) -> Answer:
        """``body`` sent to ``ref``'s endpoint (and recorded, in a case that records)."""
        case_cassette = current_cassette.get()
        # The client's documented raw-request path: auth, base URL, headers and error
        # mapping as usual, without building typed models we would not use.
        response = await self.request(
            ref, lambda client: client.post("/chat/completions", body=body, cast_to=httpx2.Response),
            tokens=estimate_tokens(body) if self.tokens_per_minute else 0)
        try:
            try:
                data = response.json()
            except ValueError:
                raise ApiError(f"{ref.role} model {ref.model!r}: the response is not JSON: "
                               f"{response.text[:200]!r}") from None
            replayed = REPLAYED_HEADER in response.headers
            latency = recorded_latency(response.headers) if replayed else response.extensions.get(LATENCY_EXTENSION)
            return self._answer(ref, data, replayed=replayed, latency_ms=latency)
        except ApiError:
            if case_cassette is not None:
                case_cassette.discard(response)  # never replay an answer that could not be read
            raise

    def recorded_answer(self, ref: ModelRef, body: dict) -> Answer | None:
        """The answer to ``body`` the current case's recording holds (now played), or None."""
        case_cassette = current_cassette.get()
        if case_cassette is None:
            return None
        recorded = case_cassette.play_json(self._chat_url(ref.endpoint), body)
        if recorded is None:
            return None
        try:
            data = json.loads(recorded["body"]["string"])
        except (ValueError, TypeError, KeyError) as exc:
            raise ApiError(f"{ref.role} model {ref.model!r}: the recording {case_cassette.path} holds an "
                           f"answer that is not JSON ({exc}); re-record it with --ft-record-mode=all") from None
        return self._answer(ref, data, replayed=True, latency_ms=recorded_latency(recorded["headers"]))

    async def call_answer(self, ref: ModelRef, job: CaseJob) -> Answer:
        """``ref``'s answer to the case by a call: where :meth:`answer_at_once` has none."""
        return await self.call(ref, chat_body(ref, job.messages, job.params))

    def answer_at_once(self, ref: ModelRef, job: CaseJob) -> Answer | None:
        """``ref``'s answer to the case when it takes no call — its frozen answer, or the one
        recorded — else None."""
        if ref.answers is None:
            return self.recorded_answer(ref, chat_body(ref, job.messages, job.params))
        frozen = ref.answers.by_prompt(job.messages) or ref.answers.by_id(job.case_id)
        if frozen is None:
            raise ApiError(f"{ref.role} model {ref.model!r}: no frozen answer to case {job.case_id!r} in "
                           f"{ref.answers.path} (its prompt and id are not there)")
        usage = Usage(prompt_tokens=frozen.usage.get("prompt_tokens", 0),
                      completion_tokens=frozen.usage.get("completion_tokens", 0),
                      cached_tokens=frozen.usage.get("cached_tokens", 0), requests=1)
        return Answer(text=frozen.text, usage=usage, replayed=True, latency_ms=frozen.latency_ms,
                      tool_calls=frozen.tool_calls, model=frozen.model)

    async def request(self, ref: ModelRef, send, *, tokens: int = 0) -> httpx2.Response:
        """``send(client)`` on one of ``ref``'s endpoint clients, within the concurrency limit,
        retried on 408/409/429/5xx, timeouts and dropped connections; raises :class:`ApiError`."""
        import openai

        if self.limiter is None:
            self.limiter = AdaptiveLimiter(self.concurrency, tokens_per_minute=self.tokens_per_minute)
        shards = self._shards(ref.endpoint)
        attempt = 0
        while True:
            generation = await self.limiter.acquire(tokens)
            self.requests_sent += 1
            outcome: dict[str, Any] = {"ok": False}
            try:
                async with shards.least_busy() as client, asyncio.timeout(self.timeout):
                    started = time.perf_counter()
                    response = await send(client)
                    # What the recording keeps, when there is one, so a replay reports the same.
                    response.extensions.setdefault(LATENCY_EXTENSION, (time.perf_counter() - started) * 1000)
                outcome.update(ok=True, headers=response.headers)
                return response
            except openai.APIStatusError as exc:
                outcome.update(headers=exc.response.headers, rate_limited=exc.status_code == 429)
                if exc.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise ApiError(describe_api_error(exc, ref)) from exc
                delay = retry_delay(attempt, exc.response)
                if exc.status_code == 429:  # what the server asked for, not our own backoff
                    outcome["retry_after"] = retry_after(exc.response.headers)
            except RecordingMissing as exc:
                raise ApiError(f"{ref.role} model {ref.model!r}: {exc}") from None
            except (openai.APIConnectionError, TimeoutError) as exc:
                # TimeoutError: the answer did not arrive whole within the timeout (the client's own
                # timeout bounds each read, so a server trickling bytes would never trip it).
                if attempt >= self.max_retries:
                    raise ApiError(describe_api_error(exc, ref, self.timeout)) from exc
                delay = retry_delay(attempt, None)
            finally:
                self.limiter.release(generation=generation, next_tokens=tokens, **outcome)
            attempt += 1
            await asyncio.sleep(delay)

    @staticmethod
    def _answer(ref: ModelRef, data: Any, replayed: bool, latency_ms: float | None = None) -> Answer:
        try:
            message = data["choices"][0]["message"]
            text = content_text(message.get("content"))
            calls = tool_calls(message)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ApiError(f"{ref.role} model {ref.model!r}: unexpected response shape "
                           f"(no choices[0].message): {str(data)[:200]}") from exc
        try:
            usage = Usage.from_api(data.get("usage"))
        except ValueError as exc:
            raise ApiError(f"{ref.role} model {ref.model!r}: the server reported impossible usage: {exc}") from None
        if calls:
            for call in calls:
                call["raw_arguments"] = redact.scrub(call["raw_arguments"])
        return Answer(text=redact.scrub(text), usage=usage, replayed=replayed, latency_ms=latency_ms,
                      tool_calls=calls, model=data.get("model") if isinstance(data.get("model"), str) else None)

    async def run_case(self, job: CaseJob) -> CaseResult:
        """The case's result; whatever fails is in it, as the error of a model or of the case."""
        result = new_result(job, cassette=str(job.cassette) if job.cassette and self.record_mode else None)
        case_cassette = None
        try:
            case_cassette = self.open_cassette(job.cassette, job.case_id)
            current_cassette.set(case_cassette)  # this task's context: every request below uses it
            answers = await settle([ref for ref in job.models for _ in range(job.repeat)],
                                   lambda ref: self.answer_at_once(ref, job), lambda ref: self.call_answer(ref, job))
            for number, ref in enumerate(job.models):
                record_answers(result.models[ref.role], answers[number * job.repeat:(number + 1) * job.repeat])
            judge = self._judge_for(job, result)
            await grade_case(job, result, judge)
            if job.prefer:
                result.preference = await preference(job, result, judge)
        except asyncio.CancelledError:  # Ctrl-C, SIGTERM: the answers that came are paid for, keep them
            if case_cassette is not None:
                with contextlib.suppress(OSError):
                    case_cassette.save(complete=False)
            raise
        except CassetteUnreadable as exc:
            result.error = redact.scrub(str(exc))
        except ApiError as exc:
            result.error = str(exc)
        except Exception as exc:
            result.error = describe_failure(exc)
        finally:
            self.cases_done += 1
            self.tokens += sum(o.usage.prompt_tokens + o.usage.completion_tokens for o in result.models.values())
            self.tokens += result.judge_usage.prompt_tokens + result.judge_usage.completion_tokens
        if case_cassette is not None:
            try:
                case_cassette.save(complete=not result.errors)
            except OSError as exc:
                result.error = result.error or redact.scrub(
                    f"cannot write the recording {case_cassette.path}: {exc.strerror or exc}")
        return result

    @property
    def pending(self) -> int:
        """Cases (and other work) submitted and not finished."""
        return len(self._futures)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for everything submitted to finish; whether it has."""
        if not self._futures:
            return True
        return not concurrent.futures.wait(list(self._futures), timeout=timeout)[1]

    def progress(self, total: int) -> str:
        """One line on how the run goes: for a terminal while pytest waits on a case."""
        in_flight = self.limiter.in_flight if self.limiter else 0
        limit = f" (limit {self.limiter.limit} after 429s)" if self.limiter and self.limiter.backoffs else ""
        return (f"{self.cases_done}/{total} cases done · {in_flight} requests in flight{limit} · "
                f"{self.tokens:,} tokens")

    def _judge_for(self, job: CaseJob, result: CaseResult):
        if job.judge is None:
            return None

        async def judge(messages: list[dict], model: str | None = None) -> str:
            answer = await self.complete(judge_ref(job, model), messages, JUDGE_PARAMS)
            result.judge_usage.add(answer.usage)
            if model:
                result.judge_model = model
            return answer.text

        return judge


JUDGE_PARAMS = {"temperature": 0}


def chat_body(ref: ModelRef, messages: list[dict], params: Mapping[str, Any]) -> dict:
    if ref.system is not None or ref.examples:
        lead = [m for m in messages if m.get("role") in ("system", "developer")][:1]
        rest = [m for m in messages if m not in lead]
        if ref.system is not None:
            lead = [{"role": "system", "content": ref.system}]
        messages = [*lead, *ref.examples, *rest]
    return {"model": ref.model, "messages": messages, **params, **ref.params}


def judge_ref(job: CaseJob, model: str | None) -> ModelRef:
    """The judge, or the model a grader names for itself on the judge's endpoint."""
    return job.judge if not model else ModelRef("judge", model, job.judge.endpoint, job.judge.params)


def new_result(job: CaseJob, **fields: Any) -> CaseResult:
    return CaseResult(models={ref.role: ModelOutcome(role=ref.role, model=ref.model) for ref in job.models},
                      judge_model=job.judge.model if job.judge else None, **fields)


def describe_failure(exc: BaseException) -> str:
    """One line for a failure that is not the API's: what it was, scrubbed."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 300 else text[:299] + "…"
    return redact.scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def record_answers(outcome: ModelOutcome, answers: list[Answer | BaseException]) -> None:
    """A model's answers to a case (one per sample), or the error that took their place."""
    for answer in answers:
        if isinstance(answer, ApiError):
            outcome.error = outcome.error or str(answer)
        elif isinstance(answer, Exception):
            outcome.error = outcome.error or f"{outcome.role} model {outcome.model!r}: {describe_failure(answer)}"
        elif isinstance(answer, BaseException):
            raise answer
    if outcome.error:
        return
    for answer in answers:
        outcome.usage.add(answer.usage)
    shown = [a.shown for a in answers]
    stands = max(range(len(answers)), key=lambda i: shown.count(shown[i]))  # the most frequent answer
    outcome.output, outcome.tool_calls = shown[stands], answers[stands].tool_calls
    outcome.replayed = all(a.replayed for a in answers)
    outcome.latencies = [a.latency_ms for a in answers if a.latency_ms is not None]
    outcome.samples = [{"output": a.shown, "text": a.text, "tool_calls": a.tool_calls} for a in answers]


async def preference(job: CaseJob, result: CaseResult, judge) -> dict | None:
    """Which of two models' answers the judge prefers, asked in both orders; None when either
    model has no answer to compare. A judge that fails for good is the case's error."""
    first, second = (result.models.get(role) for role in job.prefer["roles"])
    if first is None or second is None or first.error or second.error:
        return None
    expected = job.expected if job.prefer["include_expected"] and job.labelled else None
    try:
        verdict = await prefer(judge, job.messages, first.output, second.output, rubric=job.prefer["rubric"],
                               expected=expected, model=job.prefer["model"])
    except ApiError as exc:
        raise ApiError(f"judge (prefer): {exc}") from None
    return {"roles": list(job.prefer["roles"]), **verdict.to_dict()}


def passes(rule: str | int, passed: int, samples: int) -> bool:
    """Whether ``passed`` of ``samples`` samples pass the case under ``rule``."""
    if rule == "all":
        return passed == samples
    if rule == "any":
        return passed >= 1
    if rule == "majority":
        return passed * 2 > samples
    return passed >= int(rule)


async def grade_case(job: CaseJob, result: CaseResult, judge) -> None:
    """Grade every sample of every model that answered, and each model's agreement with the
    reference; graders (and judge calls) run concurrently.

    Without a labelled answer the reference's answer is the expected one: the reference itself
    is then unscored, and nothing is scored when the reference did not answer.
    """
    answered = [o for o in result.models.values() if o.error is None and o.output is not None]
    tools = job.params.get("tools")
    reference = result.models.get(job.reference) if job.reference else None
    standard = None
    if reference in answered:
        stands = next(s for s in reference.samples if s["output"] == reference.output)
        standard = stands["text"]
        if stands["tool_calls"]:  # a tool-call answer is its calls
            standard = [{"name": c["name"], "arguments": c["arguments"]} for c in stands["tool_calls"]]
    expected = job.expected if job.labelled else standard
    # (outcome, its sample or None for agreement, grader, expected, whether expected is the reference's answer)
    work: list[tuple[ModelOutcome, dict | None, Any, Any, bool]] = []
    for outcome in answered:
        if not job.labelled and (outcome is reference or standard is None):
            outcome.unscored = True
            outcome.reason = ("the reference: its answer is the expected one" if outcome is reference else
                              "not graded: no expected answer, and the reference model did not answer")
            continue
        work.extend((outcome, sample, job.grader, expected, not job.labelled) for sample in outcome.samples)
        if standard is not None and outcome is not reference and (job.labelled or job.agreement is not None):
            work.append((outcome, None, job.agreement or job.grader, standard, True))

    def graded(outcome: ModelOutcome, sample: dict | None) -> dict:
        """The sample a grader reads: the one given, or for agreement the answer that stands."""
        return sample or next((s for s in outcome.samples if s["output"] == outcome.output), outcome.samples[0])

    def grade_at_once(item) -> Grade | None:  # a grader that needs no I/O reads the text alone
        outcome, sample, grader, expected, from_reference = item
        if not isinstance(grader, SyncGrader):
            return None
        _check_expected(grader, expected, from_reference)
        return grader.grade(graded(outcome, sample)["text"], expected)

    async def grade(item) -> Grade:  # any other also gets the conversation, the judge, the tool calls
        outcome, sample, grader, expected, from_reference = item
        _check_expected(grader, expected, from_reference)
        chosen = graded(outcome, sample)
        context = GradeContext(messages=job.messages, judge=judge, tool_calls=chosen["tool_calls"], tools=tools)
        return await grader(chosen["text"], expected, context)

    grades = await settle(work, grade_at_once, grade)
    for (outcome, sample, *_), grade in zip(work, grades):
        if isinstance(grade, ApiError):
            outcome.error = outcome.error or f"judge: {grade}"
        elif isinstance(grade, Unscorable):
            if sample is None:
                outcome.agreement = {"agreed": None, "score": None, "reason": f"unscored: {grade}"}
            else:
                sample.update(passed=False, score=0.0, reason=f"unscored: {grade}", unscored=True)
        elif isinstance(grade, Exception):
            outcome.error = outcome.error or f"grader failed: {describe_failure(grade)}"
        elif isinstance(grade, BaseException):
            raise grade
        elif sample is None:
            outcome.agreement = {"agreed": None if grade.unscored else bool(grade.passed),
                                 "score": None if grade.unscored else float(grade.score), "reason": grade.reason}
        else:
            sample.update(passed=bool(grade.passed), score=float(grade.score), reason=grade.reason)
            if grade.unscored:
                sample["unscored"] = True
    for outcome in answered:
        if outcome.error or outcome.unscored:
            continue
        samples = outcome.samples
        scored = [s for s in samples if not s.get("unscored")]
        if not scored:
            outcome.unscored, outcome.reason = True, samples[0]["reason"]
        elif len(samples) == 1:
            outcome.passed, outcome.score, outcome.reason = samples[0]["passed"], samples[0]["score"], samples[0]["reason"]
        else:  # the samples a grader could not score are left out of the rule
            passed = sum(s["passed"] for s in scored)
            outcome.passed = passes(job.pass_if, passed, len(scored))
            outcome.score = sum(s["score"] for s in scored) / len(scored)
            rule = f"at least {job.pass_if}" if isinstance(job.pass_if, int) else job.pass_if
            left_out = f", {len(samples) - len(scored)} unscored" if len(scored) < len(samples) else ""
            outcome.reason = f"{passed}/{len(scored)} samples passed{left_out} (rule: {rule})" + \
                ("; answers disagree" if outcome.flaky else "")
        if not job.labelled and outcome is not reference and outcome.agreement is None:
            # The expected answer is the reference's: being right is agreeing.
            outcome.agreement = {"agreed": outcome.passed, "score": outcome.score, "reason": outcome.reason}


class Unscorable(Exception):
    """The reference's answer is not something the grader can take as an expected answer."""


def _check_expected(grader, expected: Any, check: bool) -> None:
    if check:
        try:
            grader.check_expected(expected)
        except GraderError as exc:
            raise Unscorable(f"the reference's answer cannot be graded against: {exc}") from None


async def settle(items: list, at_once: Callable[[Any], Any], later: Callable[[Any], Awaitable[Any]]) -> list:
    """Each item's result, or the exception that took its place, in order (as
    ``asyncio.gather(..., return_exceptions=True)``): ``at_once(item)``, or where that is None,
    ``await later(item)`` — those awaited together. What needs no I/O (a replayed answer, a
    grader that computes) then costs no task: a replayed case's answers and grades took four."""
    results: list = []
    for item in items:
        try:
            results.append(at_once(item))
        except Exception as exc:
            results.append(exc)
    waiting = [i for i, result in enumerate(results) if result is None]
    if waiting:
        done = await asyncio.gather(*(later(items[i]) for i in waiting), return_exceptions=True)
        for i, result in zip(waiting, done):
            results[i] = result
    return results
