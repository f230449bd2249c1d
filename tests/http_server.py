"""What every test server shares: real HTTP on 127.0.0.1, a free port, a thread that serves."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # read when the socket starts listening; a run's requests arrive together


class LocalHTTPServer:
    """Serves ``handler`` in a thread while used as a context manager; ``url`` ends in ``/v1``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self._server = _Server(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
