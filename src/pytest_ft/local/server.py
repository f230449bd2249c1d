"""``pytest-ft serve``: fine-tune and serve an open model behind the OpenAI API, on this machine.

    pip install 'pytest-ft[local]'
    pytest-ft serve                                  # Gemma 3 270M on http://127.0.0.1:8000/v1
    export OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=unused

An OpenAI-compatible server (FastAPI on uvicorn) for one base model and the LoRA adapters
trained from it (the routes: :mod:`pytest_ft.local.api`); a job's model is served as
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

This module imports FastAPI, uvicorn, torch and transformers only when a server is built (the
command itself is :mod:`pytest_ft.cli.serve`), so ``pytest-ft --help`` works without the
``[local]`` extra.
"""

import ipaddress
import os
import socket
import sys
import threading
import time
from typing import Any, Callable

API_KEY_ENV = "PYTEST_FT_SERVE_API_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 100


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
    """Refuse a reachable address without a key: the API runs the model and trains on this machine."""
    if not is_loopback(host) and not api_key:
        raise ConfigError(f"refusing to listen on {host} without an API key: anyone who can reach it could "
                          f"use the model and train on this machine. Set {API_KEY_ENV} (or --api-key), or "
                          f"bind {DEFAULT_HOST}.")


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
        from .app import create_app
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
        self.started = int(time.time())   # the base model's "created" in /v1/models
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
