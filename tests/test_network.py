"""The runner's network layer (run/network.py) against real sockets: plain and TLS, keep-alive
connections the server closes, timeouts, refused connections, bodies larger than any buffer."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import httpx2
import pytest
from http_server import LocalHTTPServer

from pytest_ft.run.network import AsyncioBackend, on_asyncio

BIG = 3 * 1024 * 1024  # three times the stream's read buffer
SECRET_PASSWORD = "proxy-" "pass-0123456789"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/slow":
            threading.Event().wait(2)
        body = b"x" * BIG if self.path == "/big" else f"{self.path} {self.client_address[1]}".encode()
        close = self.path == "/close"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if close:  # answers, then closes the connection the client keeps for its next request
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        self.wfile.write(body)
        if close:
            self.wfile.flush()
            self.close_connection = True

    def do_POST(self) -> None:
        size = int(self.headers["Content-Length"])
        received = 0
        while received < size:
            received += len(self.rfile.read(min(65536, size - received)))
        body = str(received).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    with LocalHTTPServer(Handler) as running:
        yield running


def client(**transport) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=on_asyncio(httpx2.AsyncHTTPTransport(**transport)), timeout=5)


def base(server) -> str:
    return f"http://127.0.0.1:{server.port}"


def test_the_transport_makes_its_connections_with_the_asyncio_backend():
    """httpx's transport takes no backend: if a new httpx2 moved its pool, this says so."""
    transport = on_asyncio(httpx2.AsyncHTTPTransport())
    assert isinstance(transport._pool._network_backend, AsyncioBackend)


def test_requests_reuse_a_connection_and_a_closed_one_is_replaced(server):
    async def main():
        async with client() as http:
            first = (await http.get(base(server) + "/a")).text
            second = (await http.get(base(server) + "/b")).text
            closing = (await http.get(base(server) + "/close")).text
            await asyncio.sleep(0.2)  # the server has closed it; the pool must see that before reusing it
            after = (await http.get(base(server) + "/c")).text
        return first, second, closing, after

    first, second, closing, after = asyncio.run(main())
    port = first.split()[1]
    assert second.split()[1] == port and closing.split()[1] == port  # one kept-alive connection
    assert after.startswith("/c ") and after.split()[1] != port  # a new one, not an error


def test_a_body_larger_than_every_buffer_arrives_whole_both_ways(server):
    async def main():
        async with client() as http:
            down = await http.get(base(server) + "/big")
            up = await http.post(base(server) + "/upload", content=b"y" * (2 * BIG))
        return down, up

    down, up = asyncio.run(main())
    assert down.content == b"x" * BIG
    assert up.text == str(2 * BIG)


def test_a_server_that_does_not_answer_in_time_is_a_read_timeout(server):
    async def main():
        async with httpx2.AsyncClient(transport=on_asyncio(httpx2.AsyncHTTPTransport()), timeout=0.3) as http:
            await http.get(base(server) + "/slow")

    with pytest.raises(httpx2.ReadTimeout):
        asyncio.run(main())


def test_a_refused_connection_is_a_connect_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed

    async def main():
        async with client() as http:
            await http.get(f"http://127.0.0.1:{port}/")

    with pytest.raises(httpx2.ConnectError):
        asyncio.run(main())


def test_a_server_that_closes_mid_answer_is_an_error_not_a_short_answer():
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()

    async def main():
        async with client() as http:
            await http.get(f"http://127.0.0.1:{listener.getsockname()[1]}/")

    try:
        with pytest.raises(httpx2.RemoteProtocolError):
            asyncio.run(main())
    finally:
        listener.close()


def test_socket_options_are_set_on_the_connection(server):
    async def main():
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port, timeout=5,
                                                    socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)])
        try:
            sock = stream.get_extra_info("socket")
            return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), stream.get_extra_info("server_addr"),
                    stream.get_extra_info("is_readable"))
        finally:
            await stream.aclose()

    keepalive, peer, readable = asyncio.run(main())
    assert keepalive == 1 and peer == ("127.0.0.1", server.port) and readable is False


def test_https_through_start_tls_checks_the_certificate():
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    server = LocalHTTPServer(Handler)
    server._server.socket = server_context.wrap_socket(server._server.socket, server_side=True)
    with server:
        async def get(context):
            async with client(verify=context) as http:
                response = await http.get(f"https://localhost:{server.port}/secure")
                stream = response.extensions["network_stream"]
                return response.text, stream.get_extra_info("ssl_object")

        text, tls = asyncio.run(get(trusting))
        assert text.startswith("/secure ") and tls is not None and tls.version().startswith("TLS")
        with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(get(ssl.create_default_context()))  # an authority it does not trust


class ProxyHandler(BaseHTTPRequestHandler):
    """A forward proxy that answers for every model itself: it records the absolute URL asked for."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str]] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(f"{self.path} {self.headers.get('Proxy-Authorization', '')}".strip())
        body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "A"}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def run_one(base_url: str):
    from pytest_ft.graders import build_grader
    from pytest_ft.run.runner import CaseJob, Endpoint, ModelRef, Runner

    runner = Runner(concurrency=2, record_mode=None, max_retries=0, timeout=5)
    try:
        job = CaseJob(case_id="c", messages=[{"role": "user", "content": "x"}], expected="A",
                      grader=build_grader("exact"), params={}, models=[ModelRef("tuned", "m", Endpoint(base_url))])
        return runner.submit(job).result(timeout=30)
    finally:
        runner.close()


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_the_runner_goes_through_the_proxy_the_environment_names(no_proxy_env):
    """The runner makes its own transport (to record), and httpx then reads no proxy variable
    by itself: users behind a company proxy must still reach their models."""
    ProxyHandler.seen = []
    with LocalHTTPServer(ProxyHandler) as proxy:
        no_proxy_env.setenv("HTTP_PROXY", f"http://alice:{SECRET_PASSWORD}@127.0.0.1:{proxy.port}")
        result = run_one("http://models.invalid/v1")
        assert result.error is None and result.models["tuned"].passed, result.errors
        assert ProxyHandler.seen[0].startswith("http://models.invalid/v1/chat/completions Basic ")

        no_proxy_env.setenv("NO_PROXY", "models.invalid")  # that host is reached directly: it does not resolve
        result = run_one("http://models.invalid/v1")
        assert len(ProxyHandler.seen) == 1
        assert "cannot reach http://models.invalid/v1" in result.errors[0]


def test_a_proxy_s_password_never_shows_in_an_error(no_proxy_env):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # a proxy that is down
    no_proxy_env.setenv("https_proxy", f"http://alice:{SECRET_PASSWORD}@127.0.0.1:{port}")
    result = run_one("https://models.invalid/v1")
    assert result.errors and SECRET_PASSWORD not in " ".join(result.errors)


def test_environment_proxy_follows_the_variables_httpx_reads(no_proxy_env):
    from pytest_ft.run.network import environment_proxy

    assert environment_proxy("https://api.example.com/v1") is None
    no_proxy_env.setenv("HTTPS_PROXY", "http://proxy:3128")
    no_proxy_env.setenv("ALL_PROXY", "http://all:3128")
    assert environment_proxy("https://api.example.com/v1") == "http://proxy:3128"
    assert environment_proxy(None) == "http://proxy:3128"  # the openai client's default URL is https
    assert environment_proxy("http://vllm.internal:8000/v1") == "http://all:3128"
    no_proxy_env.setenv("NO_PROXY", "vllm.internal,.corp")
    assert environment_proxy("http://vllm.internal:8000/v1") is None
    assert environment_proxy("https://models.corp/v1") is None
    assert environment_proxy("https://api.example.com/v1") == "http://proxy:3128"
