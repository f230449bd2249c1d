"""A hostile OpenAI-compatible server for the hardening tests: real HTTP on 127.0.0.1.

It echoes every credential it is sent, and answers garbage on request. What it does is
steered by a marker in the last user message:

* ``ECHO401`` / ``ECHO400`` / ``ECHO500``: an OpenAI-style JSON error whose message repeats
  the request's ``Authorization``, ``OpenAI-Organization`` and ``OpenAI-Project`` headers;
  ``ECHO401TEXT``: the same as a plain-text 401.
* ``ECHOANSWER``: a 200 whose answer repeats those headers.
* ``USAGE=<json>``: a 200 whose ``usage`` is that JSON value.
* ``NOTJSON``: a 200 HTML login page; ``BROKENJSON``: a 200 ``application/json`` body ``{not json``.
* ``TRICKLE``: a 200 whose body arrives one byte every 0.5 s.
* anything else: a normal answer, ``OK``.

Every answer also carries a cookie and the organization and project ids as headers, as
OpenAI's do. ``requests`` keeps what was asked.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

from http_server import LocalHTTPServer

ECHOED = ("authorization", "openai-organization", "openai-project")


class HostileServer(LocalHTTPServer):
    def __init__(self) -> None:
        self.requests: list[dict] = []
        super().__init__(self._handler())

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, code: int, body: bytes, content_type: str = "application/json", trickle: bool = False):
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                # One request per connection: with --ft-retries=0 in the tests, a kept-alive connection
                # the server drops between requests would be an error of its own.
                self.send_header("Connection", "close")
                self.close_connection = True
                self.send_header("Set-Cookie", f"session={self.headers.get('authorization', '')}; HttpOnly")
                for name in ("openai-organization", "openai-project"):
                    self.send_header(name, self.headers.get(name, ""))
                self.end_headers()
                if not trickle:
                    self.wfile.write(body)
                    return
                try:
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.5)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                user = next((str(m.get("content")) for m in reversed(body.get("messages", []))
                             if m.get("role") == "user"), "")
                echo = " ".join(f"{name}: {self.headers.get(name)}" for name in ECHOED)
                for status in (401, 400, 500):
                    if f"ECHO{status}TEXT" in user:
                        return self.send(status, f"Unauthorized: {echo}".encode(), "text/plain")
                    if f"ECHO{status}" in user:
                        error = {"error": {"message": f"bad request from {echo}", "type": "invalid_request_error"}}
                        return self.send(status, json.dumps(error).encode())
                if "NOTJSON" in user:
                    return self.send(200, b"<html><body>Please log in</body></html>", "text/html")
                if "BROKENJSON" in user:
                    return self.send(200, b"{not json")
                usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
                if "USAGE=" in user:
                    usage = json.loads(user.split("USAGE=", 1)[1])
                answer = f"you sent {echo}" if "ECHOANSWER" in user else "OK"
                response = {"id": "chatcmpl-h", "object": "chat.completion", "created": 1700000000,
                            "model": body.get("model"), "usage": usage,
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": answer}}]}
                self.send(200, json.dumps(response).encode(), trickle="TRICKLE" in user)

        return Handler
