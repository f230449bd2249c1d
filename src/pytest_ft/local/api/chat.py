"""``POST /v1/chat/completions``: the base model or one of its adapters answers, whole or streamed.

Function calling: ``tools``, ``tool_choice`` and ``parallel_tool_calls`` (checked by
:class:`Tooling`), ``tool`` messages and assistant ``tool_calls`` in the conversation. The tools
are written into the prompt and the calls parsed out of the answer as
:mod:`pytest_ft.local.tools` describes.
"""

import asyncio
import json
import secrets
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .. import tools as fmt
from ..errors import bad_request
from ..models import DEFAULT_MAX_TOKENS, GenerationRequest, ModelError
from . import Server
from .params import Params, Says, integer, json_body, number, parse

MAX_N = 8

router = APIRouter()


class Target(Params):
    """What to answer. Checked apart from :class:`Sampling`: an unknown model is a 404 before a
    bad sampling parameter is a 400."""

    model: Annotated[str, Field(min_length=1), Says("Missing required parameter: 'model'.")]
    messages: Annotated[list[Any], Field(min_length=1),
                        Says("Missing required parameter: 'messages' (a non-empty list).")]


class Sampling(Params):
    """How to answer; a request's first invalid field, in this order, is the one its 400 names."""

    temperature: number(0, 2) = 1.0
    top_p: number(0, 1) = 1.0
    n: integer(1, MAX_N) = 1
    seed: integer(-(2**63), 2**63 - 1) = None
    # max_tokens is the deprecated name: read only when max_completion_tokens is not given.
    max_tokens: integer(1, 1 << 20) = Field(None, validation_alias=AliasChoices("max_completion_tokens",
                                                                                 "max_tokens"))
    stop: Annotated[str | Annotated[list[str], Field(max_length=4)],
                    Says("Invalid 'stop': a string or a list of up to 4 strings.")] = []
    stream: Annotated[bool, BeforeValidator(bool)] = False   # any JSON value, taken by its truth
    stream_options: Annotated[dict[str, Any], Says("Invalid 'stream_options': expected an object.")] = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    def requests(self, prompt: list[int], max_tokens: int, adapter: str | None,
                 extra_stop: tuple[str, ...] = ()) -> list[GenerationRequest]:
        """The engine's request for each of the ``n`` choices (choice ``i`` samples with ``seed + i``)."""
        temperature = 0.0 if self.top_p == 0 else self.temperature
        stops = [s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s] + list(extra_stop)
        return [GenerationRequest(list(prompt), max_tokens, temperature, self.top_p, stops, adapter,
                                  None if self.seed is None else self.seed + i) for i in range(self.n)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)


def _function_name(value: str) -> str:
    if not fmt.NAME_RE.match(value):
        raise ValueError("string does not match pattern. Expected a string that matches the pattern "
                         "'^[a-zA-Z0-9_-]{1,64}$'")
    return value


def _tools_size(value: Any) -> Any:
    if isinstance(value, list):
        try:
            size = len(json.dumps(value, ensure_ascii=False))
        except (TypeError, ValueError, RecursionError):
            raise ValueError("the tools cannot be written as JSON (nested too deeply)") from None
        if size > fmt.MAX_TOOLS_JSON:
            raise ValueError(f"the tools take {size} characters as JSON; at most {fmt.MAX_TOOLS_JSON} fit "
                             f"in a prompt")
    return value


FunctionName = Annotated[str, AfterValidator(_function_name)]


class FunctionSpec(_Strict):
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class _Named(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: _Named


class Tooling(Params):
    """Function calling: the tools offered, which of them the answer may call, and how many."""

    tools: Annotated[list[ToolSpec], BeforeValidator(_tools_size), Field(max_length=fmt.MAX_TOOLS),
                     Says("Invalid '{path}': {problem}.", nested=True)] = None
    tool_choice: Annotated[Literal["none", "auto", "required"] | NamedToolChoice,
                           Says("Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
                                '{{"type": "function", "function": {{"name": "..."}}}}.')] = None
    parallel_tool_calls: Annotated[bool, Says("Invalid 'parallel_tool_calls': expected a boolean.")] = True

    def check(self) -> None:
        """The checks across fields: a tool_choice that needs tools, a named function offered."""
        if self.tool_choice in (None, "none", "auto"):
            return
        if not self.tools:
            raise bad_request("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                              "are specified.", param="tool_choice")
        if isinstance(self.tool_choice, NamedToolChoice):
            name = self.tool_choice.function.name
            if name not in {t.function.name for t in self.tools}:
                raise bad_request(f"Invalid 'tool_choice': the function {name!r} is not among the tools.",
                                  param="tool_choice")

    @property
    def active(self) -> bool:
        """Tools are rendered and calls parsed."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def prefill(self) -> str:
        if not self.active or self.tool_choice in (None, "auto"):
            return ""
        choice = self.tool_choice
        return fmt.prefill(choice if isinstance(choice, str) else choice.model_dump())

    @property
    def stops(self) -> tuple[str, ...]:
        return (fmt.TOOL_CALL_CLOSE,) if self.active and not self.parallel_tool_calls else ()


def _message(g: Any, prefill: str, tooling: Tooling, prompt: list[int], index: int) -> tuple[dict[str, Any], str]:
    """A choice's message and finish reason."""
    text = prefill + g.text
    if not tooling.active:
        return {"role": "assistant", "content": text, "refusal": None}, g.finish_reason
    content, calls = fmt.parse_tool_calls(text, parallel=tooling.parallel_tool_calls)
    if not calls:
        return {"role": "assistant", "content": text, "refusal": None}, g.finish_reason
    return ({"role": "assistant", "content": content, "refusal": None,
             "tool_calls": fmt.openai_tool_calls(calls, prompt, index)},
            "length" if g.finish_reason == "length" else "tool_calls")


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, server: Server):
    body = await json_body(request)
    target = parse(Target, body)
    adapter = server.jobs.adapter_for(target.model)
    sampling = parse(Sampling, body)
    tooling = parse(Tooling, body)
    tooling.check()
    lm = server.lm
    tools = body.get("tools") if tooling.active else None   # as given: rendered as training renders a line's
    try:
        prompt = await run_in_threadpool(lm.prompt_ids, target.messages, tools, tooling.prefill)
    except ModelError as exc:
        raise bad_request(str(exc), param="messages") from None
    room = lm.max_context - len(prompt)
    max_tokens = sampling.max_tokens
    if room < 1 or (max_tokens is not None and max_tokens > room):
        raise bad_request(f"This model's maximum context length is {lm.max_context} tokens. However, you "
                          f"requested {len(prompt) + (max_tokens or 1)} tokens ({len(prompt)} in the "
                          f"messages, {max_tokens or 1} in the completion).", param="messages",
                          code="context_length_exceeded")
    futures = [asyncio.wrap_future(server.engine.submit(r))
               for r in sampling.requests(prompt, min(max_tokens or DEFAULT_MAX_TOKENS, room), adapter,
                                          tooling.stops)]
    try:
        results = await asyncio.gather(*futures)
    except asyncio.CancelledError:
        for f in futures:
            f.cancel()
        raise
    except ModelError as exc:
        raise bad_request(str(exc)) from None
    completion_tokens = sum(g.completion_tokens for g in results)
    usage = {"prompt_tokens": len(prompt), "completion_tokens": completion_tokens,
             "total_tokens": len(prompt) + completion_tokens,
             "prompt_tokens_details": {"cached_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0}}
    completion_id, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())

    def header(kind: str) -> dict[str, Any]:
        return {"id": completion_id, "object": kind, "created": created, "model": target.model,
                "system_fingerprint": None}

    answers = [_message(g, tooling.prefill, tooling, prompt, i) for i, g in enumerate(results)]
    if not sampling.stream:
        return {**header("chat.completion"), "service_tier": None,
                "choices": [{"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                            for i, (message, finish) in enumerate(answers)],
                "usage": usage}
    return StreamingResponse(_events(header("chat.completion.chunk"), answers,
                                     usage if sampling.include_usage else None),
                             media_type="text/event-stream")


def _events(head: dict[str, Any], answers: list[tuple[dict[str, Any], str]], usage: dict[str, Any] | None):
    """The answer as server-sent events: each choice whole in one chunk (its tool calls as one
    delta each, with their ``index``), then its finish reason; the usage last when the client
    asked for it (``usage`` not None)."""

    def chunk(choices: list[dict[str, Any]], with_usage: Any = None) -> str:
        obj = {**head, "choices": choices}
        if usage is not None:
            obj["usage"] = with_usage
        return f"data: {json.dumps(obj)}\n\n"

    for i, (message, finish) in enumerate(answers):
        delta: dict[str, Any] = {"role": "assistant", "content": message["content"]}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": k, **call} for k, call in enumerate(message["tool_calls"])]
        yield chunk([{"index": i, "delta": delta, "logprobs": None, "finish_reason": None}])
        yield chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish}])
    if usage is not None:
        yield chunk([], usage)
    yield "data: [DONE]\n\n"
