"""``POST /v1/chat/completions``: the base model or one of its adapters answers, whole or streamed."""

import asyncio
import json
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import AliasChoices, BeforeValidator, Field
from starlette.concurrency import run_in_threadpool

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

    def requests(self, prompt: list[int], max_tokens: int, adapter: str | None) -> list[GenerationRequest]:
        """The engine's request for each of the ``n`` choices (choice ``i`` samples with ``seed + i``)."""
        temperature = 0.0 if self.top_p == 0 else self.temperature
        stops = [s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s]
        return [GenerationRequest(list(prompt), max_tokens, temperature, self.top_p, stops, adapter,
                                  None if self.seed is None else self.seed + i) for i in range(self.n)]


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, server: Server):
    body = await json_body(request)
    target = parse(Target, body)
    adapter = server.jobs.adapter_for(target.model)
    sampling = parse(Sampling, body)
    lm = server.lm
    try:
        prompt = await run_in_threadpool(lm.prompt_ids, target.messages)
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
               for r in sampling.requests(prompt, min(max_tokens or DEFAULT_MAX_TOKENS, room), adapter)]
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

    if not sampling.stream:
        return {**header("chat.completion"), "service_tier": None,
                "choices": [{"index": i, "message": {"role": "assistant", "content": g.text, "refusal": None},
                             "logprobs": None, "finish_reason": g.finish_reason}
                            for i, g in enumerate(results)],
                "usage": usage}
    return StreamingResponse(_events(header("chat.completion.chunk"), results,
                                     usage if sampling.include_usage else None),
                             media_type="text/event-stream")


def _events(head: dict[str, Any], results: list[Any], usage: dict[str, Any] | None):
    """The answer as server-sent events: each choice whole in one chunk, then its finish reason;
    the usage last when the client asked for it (``usage`` not None)."""

    def chunk(choices: list[dict[str, Any]], with_usage: Any = None) -> str:
        obj = {**head, "choices": choices}
        if usage is not None:
            obj["usage"] = with_usage
        return f"data: {json.dumps(obj)}\n\n"

    for i, g in enumerate(results):
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": g.text}, "logprobs": None,
                      "finish_reason": None}])
        yield chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": g.finish_reason}])
    if usage is not None:
        yield chunk([], usage)
    yield "data: [DONE]\n\n"
