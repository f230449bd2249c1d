"""httpcore's network layer on asyncio's own transports, for the runner's clients.

httpcore talks to sockets through a network backend (its documented extension point). The
default one on asyncio goes through anyio: every read and write opens a cancel scope that
asks asyncio for the current task several times, and before each request the pool asks
every idle connection whether its socket is readable with a ``getpeername`` and a
``select`` system call. At a hundred requests in flight that is a fifth of the event loop's
CPU. Here a connection is an :class:`asyncio.Protocol`: the loop hands it bytes as they
arrive, a read waits on one future with one timer, and "is it readable" is a look at what
the protocol already knows (bytes waiting, or the end of the stream).

Behaviour is httpcore's: its exceptions for timeouts and broken connections, TLS through
``loop.start_tls`` with the context and server name httpcore passes, socket options set on
the connected socket, ``ssl_object``, ``client_addr``, ``server_addr`` and ``socket`` as
extra info.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

_READ_LIMIT = 1 << 20  # bytes buffered before the socket is no longer read


class AsyncioStream(asyncio.Protocol, httpcore2.AsyncNetworkStream):
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._lost: BaseException | None = None
        self._waiter: asyncio.Future | None = None  # a read (or a write waiting to drain)
        self._reading_paused = False
        self._writing_paused = False

    # -- asyncio.Protocol: called by the loop --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _READ_LIMIT and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = exc
        self._writing_paused = False
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout: float | None, timeout_error: type[Exception]) -> None:
        waiter = self._waiter = self._loop.create_future()
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter, timeout_error)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if self._waiter is waiter:
                self._waiter = None

    # -- httpcore's AsyncNetworkStream -------------------------------------------------------

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while not self._buffer:
            if self._eof:
                if self._lost is not None:
                    raise httpcore2.ReadError(str(self._lost) or type(self._lost).__name__)
                return b""
            await self._wait(timeout, httpcore2.ReadTimeout)
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        if self._reading_paused and len(self._buffer) <= _READ_LIMIT // 2:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._eof or self._transport is None or self._transport.is_closing():
            raise httpcore2.WriteError(str(self._lost) if self._lost else "the connection is closed")
        self._transport.write(buffer)
        while self._writing_paused and not self._eof:
            await self._wait(timeout, httpcore2.WriteTimeout)
        if self._lost is not None:
            raise httpcore2.WriteError(str(self._lost))

    async def aclose(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore2.AsyncNetworkStream:
        try:
            transport = await self._loop.start_tls(self._transport, self, ssl_context,
                                                   server_hostname=server_hostname, ssl_handshake_timeout=timeout)
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore2.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore2.ConnectError(str(exc)) from exc
        self._transport = transport
        return self

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "is_readable":  # idle and readable: the server closed it, or sent what nobody asked for
            return self._eof or bool(self._buffer)
        if transport is None:
            return None
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


def _expire(waiter: asyncio.Future, error: type[Exception]) -> None:
    if not waiter.done():
        waiter.set_exception(error("timed out"))


class AsyncioBackend(httpcore2.AsyncNetworkBackend):
    """A network backend whose connections are :class:`AsyncioStream`."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await self._connect(loop.create_connection(
            lambda: AsyncioStream(loop), host, port,
            local_addr=(local_address, 0) if local_address else None), timeout, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        return await self._connect(loop.create_unix_connection(lambda: AsyncioStream(loop), path),
                                   timeout, socket_options)

    @staticmethod
    async def _connect(connecting, timeout: float | None, socket_options: Iterable[Any] | None) -> AsyncioStream:
        try:
            async with asyncio.timeout(timeout):
                transport, stream = await connecting
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(f"no connection within {timeout:g} s") from exc
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        sock: socket.socket | None = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def on_asyncio(transport: httpx2.AsyncHTTPTransport) -> httpx2.AsyncHTTPTransport:
    """``transport`` with its connections made by :class:`AsyncioBackend`.

    httpx's transport takes no network backend, so the one of its httpcore pool is replaced
    before the pool opens its first connection. A pool that is not httpcore's plain
    connection pool (a proxy's) keeps its own backend.
    """
    pool = getattr(transport, "_pool", None)
    if type(pool) is httpcore2.AsyncConnectionPool and hasattr(pool, "_network_backend"):
        pool._network_backend = AsyncioBackend()
    return transport


OPENAI_URL = "https://api.openai.com/v1"  # the openai client's own default


def client_base_url(base_url: str | None) -> str:
    """The base URL the openai client uses when given ``base_url``: it, else ``OPENAI_BASE_URL``,
    else OpenAI's."""
    return base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL


def environment_proxy(base_url: str | None) -> str | None:
    """The proxy the environment names for ``base_url`` (``HTTPS_PROXY``, ``HTTP_PROXY``,
    ``ALL_PROXY``, any case; none for a host ``NO_PROXY`` lists), or None.

    httpx reads these only when it makes its own transport; the runner makes its own (to
    record and replay), so it asks here, as the openai client's default one would have.
    """
    url = urllib.parse.urlsplit(client_base_url(base_url))
    proxies = urllib.request.getproxies_environment()
    if url.hostname and urllib.request.proxy_bypass_environment(url.hostname, proxies):
        return None
    return proxies.get(url.scheme) or proxies.get("all")
