"""One vcrpy cassette for a whole ``pytest-ft train`` / ``jobs`` command, recorded or replayed.

A recorded command replays with the server gone (a demo, a CI check). Requests and responses
are filtered as the evaluation's cassettes are (:mod:`pytest_ft.recording.cassette`); besides
that, an uploaded dataset is kept as its size and sha256, never its bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from typing import Any, Iterator

_BOUNDARY = re.compile(rb"--([^\r\n]+)\r\n")


@contextlib.contextmanager
def recording(path: str | None, mode: str) -> Iterator[None]:
    """Record (or replay) every HTTP call made inside it in the cassette ``path``; nothing without one."""
    if not path:
        yield
        return
    import vcr

    from ..recording.cassette import filter_request, filter_response
    from ..recording.serializer import readable_yaml

    def before_record_request(request: Any) -> Any:
        return _digest_uploads(filter_request(request))

    recorder = vcr.VCR()
    recorder.register_serializer("pytest_ft_yaml", readable_yaml)
    recorder.register_matcher("ft_body", _body_matcher)
    with recorder.use_cassette(path, serializer="pytest_ft_yaml", record_mode=mode,
                               match_on=["method", "path", "query", "ft_body"],
                               before_record_request=before_record_request, before_record_response=filter_response):
        yield


def _digest_uploads(request: Any) -> Any:
    """An uploaded file is recorded as its sha256 and size, not its bytes: datasets stay out of cassettes."""
    if getattr(request, "_ft_uploads_digested", False):
        return request
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    match = _BOUNDARY.match(body)
    if match:
        delimiter = b"--" + match.group(1)
        parts = body.split(delimiter)
        out = []
        for part in parts:
            head, sep, content = part.partition(b"\r\n\r\n")
            if sep and b"filename=" in head and not content.startswith(b"<file: "):  # (vcrpy filters twice)
                content = content[:-2] if content.endswith(b"\r\n") else content
                digest = hashlib.sha256(content).hexdigest()
                part = head + sep + f"<file: {len(content)} bytes, sha256 {digest}>".encode() + b"\r\n"
            out.append(part)
        request.body = b"--BOUNDARY".join(out)
    request._ft_uploads_digested = True
    return request


def _normal_body(request: Any) -> Any:
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    try:
        return ("json", json.loads(body))
    except ValueError:
        pass
    match = _BOUNDARY.match(body)
    if match:  # multipart: the boundary is random
        return ("multipart", body.replace(match.group(1), b"BOUNDARY"))
    return ("raw", body)


def _body_matcher(r1: Any, r2: Any) -> None:
    if _normal_body(r1) != _normal_body(r2):
        raise AssertionError("request bodies differ")
