"""An OpenAI fine-tuning API emulation for the tests: real HTTP on 127.0.0.1.

It answers with the real API's response shapes, for the endpoints ``pytest-ft train`` and
``pytest-ft jobs`` use:

* ``POST /v1/files`` (multipart: ``file``, ``purpose``), ``GET /v1/files``, ``GET /v1/files/{id}``
* ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs`` (newest first, ``limit``, ``after``,
  ``metadata[k]=v`` filter), ``GET /v1/fine_tuning/jobs/{id}``, ``GET .../events`` (newest first,
  ``after`` pages to older events), ``GET .../checkpoints``, ``POST .../cancel``
* ``GET /v1/models``: a few base models (owned by ``system``/``openai``), the fine-tuned model of
  every succeeded job (owned by the organization), and ``extra_models``

A job advances one stage each time it is retrieved: ``validating_files`` → ``queued`` →
``running`` (``steps_per_poll`` training steps per retrieval, each with a
``Step i/N: training loss=x`` event) → ``succeeded`` (``fine_tuned_model``
``ft:<base>:org:<suffix>:<id>``, ``trained_tokens``, checkpoints), or ``failed`` (with
``error``) when ``fail`` is set, or ``cancelled`` after ``POST .../cancel``.

Knobs the tests set (``reset()`` restores them):

* ``steps_per_poll`` / ``total_steps``: how fast a job trains;
* ``hold``: a running job makes no progress (to interrupt or cancel it);
* ``fail``: ``{"code", "message", "param"}``: jobs fail while validating their files;
* ``auth_fail``: every request answers 401 (invalid API key); a string is the error's message;
* ``not_fine_tunable``: base models whose job creation answers 400 (``param: model``);
* ``file_not_ready``: the next N job creations answer 400 "file ... is not ready";
* ``rate_limit``: the next N requests answer 429 with ``Retry-After`` (``retry_after``);
* ``lose_create_answer``: the next N job creations create the job but answer 500;
* ``status_alias``: rename statuses (``{"queued": "pending"}``, Azure style), and
  ``extra_job_fields``: fields the SDK does not know, added to every job object;
* ``page_size``: the most items a list page holds, whatever ``limit`` asks (to make pages);
* ``broken_json``: the next N requests answer 200 with a body that is not JSON;
* ``extra_models``: model objects ``GET /v1/models`` lists besides the built-in ones.

``add_succeeded_job(base, suffix)`` puts a job that already succeeded on the account, without
uploading or training (for listing fine-tuned models).

Every request is kept in ``requests`` (method, path, query, headers, body bytes). With
``chat`` set to a ``FakeOpenAI``, chat completions are answered here as that server would,
so one endpoint both fine-tunes and serves (as OpenAI does).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from http_server import LocalHTTPServer

ORG = "org-" "EmulatedOrganization0123"
BASE_MODELS = (("gpt-4o-mini-2024-07-18", "system"), ("gpt-4o-mini", "system"), ("gpt-4.1-2025-04-14", "system"),
               ("gpt-5-nano", "system"), ("babbage-002", "system"), ("whisper-1", "openai-internal"),
               ("dall-e-3", "openai"))


class FakeFineTuning(LocalHTTPServer):
    def __init__(self):
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.reset()
        super().__init__(self._handler())

    def reset(self) -> None:
        with self._lock:
            self.requests: list[dict] = []
            self.files: dict[str, dict] = {}
            self.file_bytes: dict[str, bytes] = {}
            self.jobs: dict[str, dict] = {}
            self.events: dict[str, list[dict]] = {}
            self.checkpoints: dict[str, list[dict]] = {}
            self._progress: dict[str, int] = {}
            self.steps_per_poll = 5
            self.total_steps = 10
            self.hold = False
            self.fail: dict | None = None
            self.auth_fail = False
            self.not_fine_tunable: set[str] = {"gpt-4-0613", "gpt-4"}
            self.file_not_ready = 0
            self.rate_limit = 0
            self.lose_create_answer = 0
            self.retry_after = "0"
            self.status_alias: dict[str, str] = {}
            self.extra_job_fields: dict = {}
            self.page_size: int | None = None
            self.broken_json = 0
            self.extra_models: list[dict] = []
            self.chat = None

    # -- helpers for assertions --------------------------------------------------------------

    def calls(self, method: str, path_suffix: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"].rstrip("/").endswith(path_suffix)]

    @property
    def job_creations(self) -> int:
        """Jobs actually created (a 4xx/429 answer creates nothing)."""
        return len(self.jobs)

    # -- model -------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}abcdef"

    def _new_job(self, model: str, training: str, body: dict) -> dict:
        """A job as ``POST /fine_tuning/jobs`` creates it (``validating_files``), kept with its events."""
        method = body.get("method") or {"type": "supervised"}
        mtype = method.get("type", "supervised")
        given = (method.get(mtype) or {}).get("hyperparameters") or body.get("hyperparameters") or {}
        hp = {"n_epochs": given.get("n_epochs", 3), "batch_size": given.get("batch_size", 1),
              "learning_rate_multiplier": given.get("learning_rate_multiplier", 1.8)}
        job_id = self._new_id("ftjob-")
        job = {"object": "fine_tuning.job", "id": job_id, "model": model, "created_at": int(time.time()),
               "finished_at": None, "fine_tuned_model": None, "organization_id": ORG,
               "result_files": [], "status": "validating_files", "validation_file": body.get("validation_file"),
               "training_file": training, "hyperparameters": hp, "trained_tokens": None, "error": None,
               "user_provided_suffix": body.get("suffix"), "suffix": body.get("suffix"),
               "seed": body.get("seed", 42), "estimated_finish": None, "integrations": [],
               "metadata": body.get("metadata"),
               "method": {"type": mtype, mtype: {"hyperparameters": hp}}}
        self.jobs[job_id] = job
        self.events[job_id] = []
        self.checkpoints[job_id] = []
        self._event(job_id, f"Created fine-tuning job: {job_id}")
        self._event(job_id, f"Validating training file: {training}")
        return job

    def add_succeeded_job(self, base: str, suffix: str | None = None, *, created_at: int | None = None) -> dict:
        """A job on ``base`` that already succeeded, its model ``ft:<base>:org:<suffix>:<id>`` listed."""
        with self._lock:
            job = self._new_job(base, self._new_id("file-"), {"suffix": suffix})
            if created_at is not None:
                job["created_at"] = created_at
            self._succeed(job)
            return job

    def models(self) -> list[dict]:
        """What ``GET /v1/models`` lists."""
        base = [{"id": model, "object": "model", "created": 1721172741, "owned_by": owner}
                for model, owner in BASE_MODELS]
        tuned = [{"id": j["fine_tuned_model"], "object": "model", "created": j["finished_at"], "owned_by": ORG}
                 for j in self.jobs.values() if j["status"] == "succeeded" and j.get("fine_tuned_model")]
        return base + tuned + list(self.extra_models)

    def _event(self, job_id: str, message: str, level: str = "info", data: dict | None = None) -> None:
        event = {"object": "fine_tuning.job.event", "id": self._new_id("ftevent-"),
                 "created_at": int(time.time()), "level": level, "message": message,
                 "data": data or {}, "type": "metrics" if data else "message"}
        self.events[job_id].append(event)

    def _public(self, job: dict) -> dict:
        out = dict(job)
        out["status"] = self.status_alias.get(job["status"], job["status"])
        out.update(self.extra_job_fields)
        return out

    def _advance(self, job: dict) -> None:
        job_id, status = job["id"], job["status"]
        if status == "validating_files":
            if self.fail:
                job.update(status="failed", finished_at=int(time.time()), error=dict(self.fail))
                self._event(job_id, self.fail["message"], level="error")
                return
            job["status"] = "queued"
            self._event(job_id, "Files validated, moving job to queued state")
        elif status == "queued":
            job["status"] = "running"
            job["estimated_finish"] = int(time.time()) + 60
            self._event(job_id, "Fine-tuning job started")
        elif status == "running":
            if self.hold:
                return
            done = self._progress.get(job_id, 0)
            for step in range(done + 1, min(done + self.steps_per_poll, self.total_steps) + 1):
                loss = round(2.0 / step, 4)
                self._event(job_id, f"Step {step}/{self.total_steps}: training loss={loss}", data={
                    "step": step, "total_steps": self.total_steps, "train_loss": loss})
                self._progress[job_id] = step
            if self._progress.get(job_id, 0) >= self.total_steps:
                self._succeed(job)

    def _succeed(self, job: dict) -> None:
        job_id = job["id"]
        suffix = job.get("suffix") or ""
        model = f"ft:{job['model']}:org:{suffix}:{job_id[-8:]}"
        epochs = job["hyperparameters"]["n_epochs"]
        n_epochs = epochs if isinstance(epochs, int) else 3
        tokens = len(self.file_bytes.get(job["training_file"], b"")) // 4 * n_epochs
        job.update(status="succeeded", fine_tuned_model=model, trained_tokens=tokens,
                   finished_at=int(time.time()), result_files=[self._new_id("file-")])
        for step in (self.total_steps // 2, self.total_steps):
            self.checkpoints[job_id].insert(0, {
                "object": "fine_tuning.job.checkpoint", "id": self._new_id("ftckpt_"),
                "created_at": int(time.time()), "fine_tuning_job_id": job_id, "step_number": step,
                "fine_tuned_model_checkpoint": f"{model}:ckpt-step-{step}",
                "metrics": {"step": step, "train_loss": round(2.0 / max(step, 1), 4),
                            "train_mean_token_accuracy": 0.9}})
        self._event(job_id, f"New fine-tuned model created: {model}")
        self._event(job_id, "The job has successfully completed")

    # -- HTTP --------------------------------------------------------------------------------

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()  # headers and body go out as two writes: no Nagle delay between them
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, code: int, obj, headers=None):
                self._send_raw(code, json.dumps(obj).encode(), headers)

            def _send_raw(self, code: int, body: bytes, headers=None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, code: int, message: str, type_: str = "invalid_request_error", *,
                       code_name: str | None = None, param: str | None = None, headers=None):
                self._send(code, {"error": {"message": message, "type": type_, "param": param,
                                            "code": code_name}}, headers)

            def _route(self, method: str):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                parts = [p for p in url.path.split("/") if p]
                if parts[:1] == ["v1"]:
                    parts = parts[1:]
                with server._lock:
                    server.requests.append({"method": method, "path": url.path, "query": query,
                                            "headers": dict(self.headers), "body": raw})
                    if server.auth_fail:
                        message = server.auth_fail if isinstance(server.auth_fail, str) else (
                            "Incorrect API key provided: sk-test-*****mnop. You can find your API key at "
                            "https://platform.openai.com/account/api-keys.")
                        return self._error(401, message, code_name="invalid_api_key")
                    if server.rate_limit > 0:
                        server.rate_limit -= 1
                        return self._error(429, "Rate limit reached for requests", "requests",
                                           code_name="rate_limit_exceeded", headers={"Retry-After": server.retry_after})
                    if server.broken_json > 0:
                        server.broken_json -= 1
                        return self._send_raw(200, b'{"object": "list", "data": [{"id": "ft:gpt-4o-mini')
                    return self._dispatch(method, parts, query, raw)

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def _dispatch(self, method, parts, query, raw):
                if parts == ["chat", "completions"] and server.chat is not None and method == "POST":
                    body = json.loads(raw)  # models answer as the chat test server's would
                    user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
                    return self._send(200, server.chat.completion(body["model"], body["messages"], user))
                if parts == ["files"]:
                    return self._upload(raw) if method == "POST" else self._send(200, {
                        "object": "list", "data": list(reversed(server.files.values())), "has_more": False})
                if parts == ["models"] and method == "GET":
                    return self._send(200, {"object": "list", "data": server.models()})
                if len(parts) == 2 and parts[0] == "files" and method == "GET":
                    f = server.files.get(parts[1])
                    return self._send(200, f) if f else self._error(404, f"No such File object: {parts[1]}")
                if parts[:2] != ["fine_tuning", "jobs"]:
                    return self._error(404, f"Invalid URL ({method} {self.path})")
                rest = parts[2:]
                if not rest:
                    return self._create(raw) if method == "POST" else self._list(query)
                job = server.jobs.get(rest[0])
                if job is None:
                    return self._error(404, f"Could not find fine tune: {rest[0]}", code_name="fine_tune_not_found")
                if rest[1:] == [] and method == "GET":
                    server._advance(job)
                    return self._send(200, server._public(job))
                if rest[1:] == ["events"] and method == "GET":
                    return self._page(list(reversed(server.events[job["id"]])), query)
                if rest[1:] == ["checkpoints"] and method == "GET":
                    return self._page(server.checkpoints[job["id"]], query)
                if rest[1:] == ["cancel"] and method == "POST":
                    if job["status"] in ("succeeded", "failed", "cancelled"):
                        return self._error(400, f"Job {job['id']} has already completed with status "
                                                f"{job['status']} and cannot be cancelled.")
                    job.update(status="cancelled", finished_at=int(time.time()))
                    server._event(job["id"], "Fine-tuning job cancelled")
                    return self._send(200, server._public(job))
                return self._error(404, f"Invalid URL ({method} {self.path})")

            def _page(self, items: list[dict], query: dict):
                after = query.get("after")
                if after:
                    ids = [i["id"] for i in items]
                    items = items[ids.index(after) + 1:] if after in ids else []
                limit = min(int(query.get("limit") or 20), server.page_size or 10_000)
                self._send(200, {"object": "list", "data": items[:limit], "has_more": len(items) > limit,
                                 **({"first_id": items[0]["id"], "last_id": items[:limit][-1]["id"]} if items else {})})

            def _list(self, query: dict):
                wanted = {k[len("metadata["):-1]: v for k, v in query.items() if k.startswith("metadata[")}
                jobs = [server._public(j) for j in reversed(server.jobs.values())
                        if all((j.get("metadata") or {}).get(k) == v for k, v in wanted.items())]
                self._page(jobs, query)

            def _upload(self, raw: bytes):
                fields = _multipart(self.headers.get("Content-Type", ""), raw)
                if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"fine-tune":
                    return self._error(400, "Missing file or purpose 'fine-tune'")
                name, content = fields["file"]
                file_id = server._new_id("file-")
                obj = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                       "filename": name or "upload.jsonl", "purpose": "fine-tune", "status": "processed",
                       "status_details": None, "expires_at": None}
                server.files[file_id] = obj
                server.file_bytes[file_id] = content
                self._send(200, obj)

            def _create(self, raw: bytes):
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._error(400, "We could not parse the JSON body of your request.")
                model, training = body.get("model"), body.get("training_file")
                if not model or not training:
                    return self._error(400, "Missing required parameter: 'model' or 'training_file'.")
                if model in server.not_fine_tunable:
                    return self._error(400, f"Model {model} is not available for fine-tuning or does not exist.",
                                       code_name="model_not_available", param="model")
                for param in ("training_file", "validation_file"):
                    if body.get(param) and body[param] not in server.files:
                        return self._error(400, f"Invalid file ID: {body[param]}", param=param)
                if server.file_not_ready > 0:
                    server.file_not_ready -= 1
                    return self._error(400, f"File '{training}' is not ready. Please wait until the file is "
                                            f"processed.", code_name="file_not_ready", param="training_file")
                job = server._new_job(model, training, body)
                if server.lose_create_answer > 0:
                    server.lose_create_answer -= 1
                    return self._error(500, "The server had an error while processing your request.", "server_error")
                self._send(200, server._public(job))

        return Handler


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """name -> (filename, bytes) for each part of a multipart/form-data body."""
    boundary = content_type.partition("boundary=")[2].strip('"').encode()
    out: dict[str, tuple[str | None, bytes]] = {}
    if not boundary:
        return out
    for part in raw.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, body = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        disposition = next((line for line in head.decode("latin-1").split("\r\n")
                            if line.lower().startswith("content-disposition")), "")
        attrs = dict(a.strip().split("=", 1) for a in disposition.split(";")[1:] if "=" in a)
        name = attrs.get("name", "").strip('"')
        filename = attrs.get("filename", "").strip('"') or None
        out[name] = (filename, body[:-2] if body.endswith(b"\r\n") else body)
    return out
