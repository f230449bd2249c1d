"""An OpenAI-compatible chat-completions server for the tests: real HTTP on 127.0.0.1.

Answers are deterministic and steered by markers in the last user message, so a test's
YAML says what each model will do:

* ``LABEL=X``  every model answers ``X``, except that a model whose name contains
  ``base`` answers ``WRONG`` when the message also holds ``BASEWRONG``, and a model whose
  name contains ``ft:`` answers ``WRONG`` when it holds ``TUNEDWRONG``.
* ``ECHO``     the answer is the user message itself.
* ``COUNT``    the answer is ``answer N``: the Nth time this model was asked this.
* ``CYCLE=A,B`` the Nth time a model is asked this, it answers the Nth item (cycling).
* ``FAULT=429xN`` / ``FAULT=500xN`` / ``FAULT=DROPxN`` / ``FAULT=BADJSONxN``: the first N
  requests for that (model, message) fail that way (429 with ``Retry-After: 0``; 500;
  the connection closed with no answer; a body that is not JSON). ``xN`` may be ``x99``.
* ``FAULT=400`` always answers 400 with an API error message.
* ``FAILFOR=x`` always answers 400 to a model whose name contains ``x``.
* ``WRONGFOR=x`` a model whose name contains ``x`` answers ``WRONG`` (the marker may repeat).
* ``SLOW=ms``  waits that long before answering.
* ``CACHED=n`` reports n cached prompt tokens.

The Batch API is there too (``/v1/files``, ``/v1/batches``, file contents): each status
poll moves a batch one step (validating, in_progress, finalizing, completed), or to
``failed`` / ``expired`` when ``server.batch_outcome`` says so; requests with ``FAULT=400``
land in the error file.

A model whose name contains ``judge`` answers a grading JSON: score 0.9 when its prompt
contains ``GOOD``, else 0.1. ``server.answers[model] = text`` forces one model's answer.
``server.delay_ms[x] = ms`` slows every answer of a model whose name contains ``x``;
``server.retired.add(model)`` makes a model answer 404 "does not exist", as a shut-down model does.
``server.replies[marker] = {x: reply}``: to a last user message containing ``marker``, a model whose
name contains ``x`` answers ``reply``: a text, or ``{"content": ..., "calls": [(name, arguments)]}``
with ``arguments`` a dict (sent as JSON) or a string (sent as it is: malformed JSON on purpose).
``server.judge_first = True`` makes a judge answer pairwise comparisons with whichever answer is
shown first (position bias) unless one answer contains ``BETTER`` and the other not.
Every request is kept in ``server.requests`` (path, headers, body), and ``max_in_flight``
says how many were served at once. ``leaky=True`` adds the identifying headers OpenAI
sends, and an organization id in the body, for the secret-scrub tests.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler

from http_server import LocalHTTPServer

LEAKY_HEADERS = {
    "openai-organization": "org-" "LeakyOrganization0123456789",
    "openai-project": "proj_" "LeakyProject0123456789abcdef",
    "set-cookie": "__cf_" "bm=LeakyCookie0123456789abcdefghij; path=/; HttpOnly",
    "x-request-id": "req_0123456789abcdef",
}


class FakeOpenAI(LocalHTTPServer):
    def __init__(self, *, leaky: bool = False):
        self.leaky = leaky
        self.answers: dict[str, str] = {}
        self.delay_ms: dict[str, int] = {}
        self.retired: set[str] = set()
        self.replies: dict[str, dict[str, object]] = {}
        self.judge_first = False
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._fault_counts: dict[str, int] = {}
        self._lock = threading.Lock()
        # the Batch API: uploaded files, batches, and how the next batch will end
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.batch_outcome = "completed"  # or "failed", "expired"
        super().__init__(self._handler())

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._fault_counts.clear()
            self.answers.clear()
            self.delay_ms.clear()
            self.retired.clear()
            self.replies.clear()
            self.judge_first = False
            self.max_in_flight = 0
            self.files.clear()
            self.batches.clear()
            self.batch_outcome = "completed"

    # -- the Batch API ----------------------------------------------------------------------

    def upload(self, content_type: str, raw: bytes) -> dict:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        fields = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                  for part in message.iter_parts()}
        file_id = f"file-{len(self.files) + 1:04d}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(fields["file"]), "created_at": 1700000000,
                               "filename": "input.jsonl", "purpose": fields["purpose"].decode(),
                               "status": "processed", "content": fields["file"]}
        return {k: v for k, v in self.files[file_id].items() if k != "content"}

    def create_batch(self, body: dict) -> dict:
        batch_id = f"batch_{len(self.batches) + 1:04d}"
        lines = self.files[body["input_file_id"]]["content"].decode().splitlines()
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
            "status": "validating", "output_file_id": None, "error_file_id": None, "created_at": 1700000000,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"), "_outcome": self.batch_outcome, "_polls": 0}
        return self._public(self.batches[batch_id])

    def _public(self, batch: dict) -> dict:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def retrieve_batch(self, batch_id: str) -> dict:
        """Each retrieve moves the batch one step: validating, in_progress, finalizing, the end."""
        batch = self.batches[batch_id]
        steps = {"completed": ["validating", "in_progress", "finalizing", "completed"],
                 "expired": ["validating", "in_progress", "expired"],
                 "failed": ["validating", "failed"]}[batch["_outcome"]]
        status = steps[min(batch["_polls"], len(steps) - 1)]
        batch["_polls"] += 1
        if status != batch["status"] and status in ("completed", "expired"):
            self._finish(batch, status)
        elif status == "failed":
            batch["errors"] = {"object": "list", "data": [{"code": "invalid_request", "line": 2, "param": "body.model",
                                                           "message": "Model 'nope' is not available for batch"}]}
        batch["status"] = status
        return self._public(batch)

    def _finish(self, batch: dict, status: str) -> None:
        outputs, errors = [], []
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]]["content"].decode().splitlines()]
        for number, line in enumerate(lines):
            body, custom_id = line["body"], line["custom_id"]
            if status == "expired" and number >= len(lines) // 2:
                errors.append({"id": f"batch_req_{number}", "custom_id": custom_id, "response": None,
                               "error": {"code": "batch_expired", "message": "This request could not be executed "
                                         "before the completion window expired."}})
                continue
            user = _last_user(body["messages"])
            if "FAULT=400" in user:
                errors.append({"id": f"batch_req_{number}", "custom_id": custom_id, "error": None, "response": {
                    "status_code": 400, "request_id": "req_x", "body": {"error": {
                        "message": f"The model `{body['model']}` does not exist", "type": "invalid_request_error",
                        "code": "model_not_found"}}}})
                continue
            outputs.append({"id": f"batch_req_{number}", "custom_id": custom_id, "error": None,
                            "response": {"status_code": 200, "request_id": "req_x",
                                         "body": self.completion(body["model"], body["messages"], user)}})
        for kind, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self.files) + 1:04d}"
                self.files[file_id] = {"id": file_id, "object": "file", "purpose": "batch_output",
                                       "content": "".join(json.dumps(r) + "\n" for r in rows).encode()}
                batch[kind] = file_id
        batch["request_counts"] = {"total": len(lines), "completed": len(outputs), "failed": len(errors)}

    def completion(self, model: str, messages: list[dict], user: str) -> dict:
        message = {"role": "assistant", "content": None, "refusal": None}
        reply = next((by_model[part] for marker, by_model in self.replies.items() if marker in user
                      for part in by_model if part in model), None)
        if isinstance(reply, dict):
            message["content"] = reply.get("content")
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {
                    "name": name, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}}
                for i, (name, arguments) in enumerate(reply.get("calls", []))] or None
        else:
            message["content"] = reply if isinstance(reply, str) else self.answer(model, messages)
        text = message["content"] or ""
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages) + 3 * len(messages)
        cached = re.search(r"CACHED=(\d+)", user)
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                         "message": message}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                      "total_tokens": prompt_tokens + len(text.split()),
                      "prompt_tokens_details": {"cached_tokens": int(cached.group(1)) if cached else 0}},
        }

    def chat_requests(self, model: str | None = None) -> list[dict]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")
                and (model is None or r["body"].get("model") == model)]

    # -- behaviour ---------------------------------------------------------------------------

    def _fault(self, key: str, user: str) -> str | None:
        match = re.search(r"FAULT=(429|500|DROP|BADJSON|400)(?:x(\d+))?", user)
        if not match:
            return None
        kind, times = match.group(1), int(match.group(2) or 1)
        if kind == "400":
            return kind
        with self._lock:
            seen = self._fault_counts.get(key, 0)
            self._fault_counts[key] = seen + 1
        return kind if seen < times else None

    def _pairwise(self, prompt: str) -> str:
        """A judge comparing answers A and B: it prefers the one holding BETTER; when neither or both
        do, it picks A if ``judge_first`` (a position bias), else says tie."""
        a = prompt.split("<answer_A>", 1)[1].split("</answer_A>", 1)[0]
        b = prompt.split("<answer_B>", 1)[1].split("</answer_B>", 1)[0]
        if "UNREADABLE" in a + b:
            return "I cannot decide, sorry."
        if ("BETTER" in a) != ("BETTER" in b):
            choice = "A" if "BETTER" in a else "B"
        else:
            choice = "A" if self.judge_first else "tie"
        return json.dumps({"choice": choice, "reason": "compared"})

    def answer(self, model: str, messages: list[dict]) -> str:
        if model in self.answers:
            return self.answers[model]
        user = _last_user(messages)
        if "judge" in model and "<answer_A>" in str(messages[-1].get("content")):
            return self._pairwise(str(messages[-1]["content"]))
        if "judge" in model:
            prompt = json.dumps(messages)
            score = 0.9 if "GOOD" in prompt else 0.1
            return json.dumps({"score": score, "reason": "looks good" if score > 0.5 else "looks wrong"})
        if "ECHO" in user:
            return user
        cycle = re.search(r"CYCLE=(\S+)", user)
        if cycle:
            with self._lock:
                key = "cycle\0" + model + "\0" + user
                self._fault_counts[key] = self._fault_counts.get(key, 0) + 1
                options = cycle.group(1).split(",")
                return options[(self._fault_counts[key] - 1) % len(options)]
        if "COUNT" in user:
            with self._lock:
                key = "count\0" + model + "\0" + user
                self._fault_counts[key] = self._fault_counts.get(key, 0) + 1
                return f"answer {self._fault_counts[key]}"
        label = re.search(r"LABEL=(\S+)", user)
        answer = label.group(1) if label else "OK"
        if not model.startswith("ft:") and "judge" not in model and "BASEWRONG" in user:
            answer = "WRONG"
        if model.startswith("ft:") and "TUNEDWRONG" in user:
            answer = "WRONG"
        if any(part in model for part in re.findall(r"WRONGFOR=(\S+)", user)):
            answer = "WRONG"
        return answer

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle(self):
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client that gave up (a timeout test) is not the server's problem

            def _send(self, code: int, obj=None, raw: bytes | None = None, headers=None):
                body = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in {**(LEAKY_HEADERS if server.leaky else {}), **(headers or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": {}})
                batch = re.fullmatch(r"/v1/batches/(batch_\d+)", self.path)
                content = re.fullmatch(r"/v1/files/(file-\d+)/content", self.path)
                if batch and batch.group(1) in server.batches:
                    self._send(200, server.retrieve_batch(batch.group(1)))
                elif content and content.group(1) in server.files:
                    self._send(200, raw=server.files[content.group(1)]["content"])
                elif self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": []})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v1/files":
                    with server._lock:
                        server.requests.append({"path": self.path, "headers": dict(self.headers), "body": {}})
                        uploaded = server.upload(self.headers["Content-Type"], raw)
                    self._send(200, uploaded)
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                if self.path == "/v1/batches":
                    with server._lock:
                        server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                        self._send(200, server.create_batch(body))
                    return
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._chat(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _chat(self, body: dict):
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                    return
                model, messages = body.get("model", ""), body.get("messages", [])
                user = _last_user(messages)
                slow = re.search(r"SLOW=(\d+)", user)
                if slow:
                    time.sleep(int(slow.group(1)) / 1000)
                delay = max((ms for part, ms in server.delay_ms.items() if part in model), default=0)
                if delay:
                    time.sleep(delay / 1000)
                if model in server.retired:
                    self._send(404, {"error": {"message": f"The model `{model}` does not exist or you do not have "
                                                          f"access to it.", "type": "invalid_request_error",
                                               "code": "model_not_found"}})
                    return
                fault = server._fault(model + "\0" + user, user)
                only = re.search(r"FAILFOR=(\S+)", user)
                if only and only.group(1) in model:
                    fault = "400"
                if fault == "429":
                    self._send(429, {"error": {"message": "Rate limit reached for requests", "type": "requests",
                                               "code": "rate_limit_exceeded"}}, headers={"Retry-After": "0"})
                    return
                if fault == "500":
                    self._send(500, {"error": {"message": "The server had an error", "type": "server_error"}})
                    return
                if fault == "400":
                    self._send(400, {"error": {"message": f"The model `{model}` does not exist",
                                               "type": "invalid_request_error", "code": "model_not_found"}})
                    return
                if fault == "DROP":
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                if fault == "BADJSON":
                    self._send(200, raw=b"<html>502 Bad Gateway</html>")
                    return
                response = server.completion(model, messages, user)
                if server.leaky:
                    response["organization_id"] = "org-" "LeakyOrganization0123456789"
                self._send(200, response)

        return Handler


def _last_user(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""
