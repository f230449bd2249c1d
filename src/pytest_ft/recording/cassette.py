"""Record and replay model calls with vcrpy, one cassette per case, safe under concurrency.

vcrpy's ``use_cassette`` patches the HTTP transport classes process-wide for one
cassette at a time, so hundreds of cases in flight together cannot each sit in their own
``use_cassette`` block. Instead the openai client gets its own httpx2 transport,
:class:`RecordingTransport`, which records and replays through vcrpy's own pieces
(``Cassette``, ``Request``, matchers, filters, serializer and persister) and picks the
cassette *per request* from a context variable that the runner sets for each case. A
case's cassette holds only that case's calls, so replaying stays O(1) per case however
large the suite grows.

What reaches disk is scrubbed first: request headers are dropped except a short
allow-list, response headers likewise (vcrpy's header filters only touch requests), URL
credentials are dropped, organization / project ids and every credential in use are masked
in both bodies (:mod:`pytest_ft.redact`), and the file is written through
:func:`pytest_ft.files.write_atomic`, which scrubs once more.

Recording is on by default, so its cost is the speed users get (#16). Per call it costs one
parse and one pretty-print of each body (:func:`_pretty_json`: ``json.dumps(indent=2)``'s text
without its pure-Python encoder), no deep copies, and per case one YAML document
(:mod:`.serializer`: the bytes ``yaml.dump`` with vcrpy's dumper writes, several times
faster; read back likewise), written on the event loop as the case ends: a thread of its own for the writing was
measured and lost (with the GIL, the writer's YAML competes with the requests for the same
core, and handing the lock back and forth doubled the system time; see ``bench/README.md``).
A case with no recording yet gets its vcrpy cassette when it first records, and a saved case's
task lets go of it, so memory holds the cases in flight, not every case of the run.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx2
import yaml
from vcr.cassette import Cassette
from vcr.errors import UnhandledHTTPRequestError
from vcr.filters import decode_response
from vcr.matchers import method, path
from vcr.persisters.filesystem import (
    CassetteDecodeError,
    CassetteNotFoundError,
    FilesystemPersister,
)
from vcr.record_mode import RecordMode
from vcr.request import Request as VcrRequest
from vcr.serialize import serialize

from ..files import write_atomic
from ..redact import redact_url, scrub
from .serializer import readable_yaml

REPLAYED_HEADER = "x-pytest-ft-replayed"
# How long the live call took (ms, to its last byte), kept with the recording so that a replay
# reports the latency the model had; a recording made before it existed has none.
LATENCY_HEADER = "x-pytest-ft-latency-ms"
RECORDED_EXTENSION = "pytest_ft_recorded"  # on a live response: the request it was recorded under
LATENCY_EXTENSION = "pytest_ft_latency_ms"  # on a live response: how long it took, as recorded

# Headers worth keeping in a recording; everything else (Authorization, api-key, cookies,
# OpenAI-Organization, OpenAI-Project, request ids, client fingerprints) is dropped.
KEPT_REQUEST_HEADERS = frozenset({"content-type"})
KEPT_RESPONSE_HEADERS = frozenset({"content-type", "openai-model", "openai-processing-ms", LATENCY_HEADER})

_ID_KEYS = frozenset({"organization", "organization_id", "project", "project_id", "user_id"})

current_cassette: contextvars.ContextVar["CaseCassette | None"] = contextvars.ContextVar(
    "pytest_ft_cassette", default=None)


class RecordingMissing(Exception):
    """Replay-only mode met a request that has no recording."""


def _scrub_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("REDACTED" if k in _ID_KEYS and isinstance(v, str) and v else _scrub_ids(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_ids(v) for v in value]
    return value


def _may_hold_ids(text: str) -> bool:
    """Whether JSON ``text`` can have a key of ``_ID_KEYS`` (spelt out, or hidden in an escape):
    most bodies have none, and copying them whole to find out is most of what scrubbing costs."""
    return "\\u" in text or '"organization' in text or '"project' in text or '"user_id' in text


def _readable_body(body: bytes | str | None) -> tuple[bytes | None, Any]:
    """Pretty, scrubbed JSON so a recording reads well in review; non-JSON is scrubbed as text.

    Returns the body and its parsed form (for the matcher), so it is parsed only once.
    """
    if not body:
        return (body if isinstance(body, bytes) or body is None else body.encode()), ("raw", body or b"")
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        value = json.loads(text)
        if _may_hold_ids(text):
            value = _scrub_ids(value)
        parsed = ("json", value)
        text = _pretty_json(value)
    except ValueError:
        parsed = None
    scrubbed = scrub(text)
    if parsed is None or scrubbed != text:
        parsed = None  # the matcher parses the scrubbed text when it needs to
    return scrubbed.encode("utf-8"), parsed


_encode_str = json.encoder.encode_basestring  # C, where there is a C json: json.dumps(ensure_ascii=False)'s
_INFINITY = float("inf")


def _pretty_json(value: Any) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``, character for character, for what
    ``json.loads`` returns: with ``indent`` the json module encodes in pure Python, which was
    most of the cost of filtering a body. Anything else goes to ``json.dumps`` itself."""
    out: list[str] = []
    try:
        _pretty(value, "\n", out)
    except _NotParsedJson:
        return json.dumps(value, indent=2, ensure_ascii=False)
    return "".join(out)


class _NotParsedJson(Exception):
    pass


def _pretty(value: Any, newline: str, out: list[str]) -> None:
    """``value`` onto ``out``; ``newline`` is a line break and the indentation of ``value``'s line."""
    kind = type(value)
    if kind is str:
        out.append(_encode_str(value))
    elif kind is dict:
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        lead = "{" + inner
        for key, item in value.items():
            if type(key) is not str:
                raise _NotParsedJson
            out.append(f"{lead}{_encode_str(key)}: ")
            _pretty(item, inner, out)
            lead = "," + inner
        out.append(newline + "}")
    elif kind is list:
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        lead = "[" + inner
        for item in value:
            out.append(lead)
            _pretty(item, inner, out)
            lead = "," + inner
        out.append(newline + "]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is float:  # as json.encoder's floatstr (allow_nan)
        if value != value:
            out.append("NaN")
        elif value == _INFINITY:
            out.append("Infinity")
        elif value == -_INFINITY:
            out.append("-Infinity")
        else:
            out.append(float.__repr__(value))
    else:
        raise _NotParsedJson


def filter_request(request: VcrRequest) -> VcrRequest:
    """vcrpy ``before_record_request``: keep only harmless headers, scrub the body.

    vcrpy applies it on every lookup, so a request is filtered once and marked.
    """
    if getattr(request, "_ft_filtered", False):
        return request
    for name in list(request.headers):
        if name.lower() not in KEPT_REQUEST_HEADERS:
            del request.headers[name]
    request.uri = redact_url(request.uri)
    request.body, parsed = _readable_body(request.body)
    if parsed is not None:
        request._ft_parsed = parsed
    request._ft_filtered = True
    return request


def filter_response(response: dict) -> dict | None:
    """vcrpy ``before_record_response``: only successes are kept, decoded and scrubbed.

    An error (429, 500…) is never recorded: replaying it would make a transient fault
    permanent, and the runner retries it anyway.
    """
    if response["status"]["code"] >= 400:
        return None
    if any(name.lower() == "content-encoding" for name in response["headers"]):
        response = decode_response(response)  # vcrpy's, on a copy of its own
    # A new dict: the response handed in is left as it was (vcrpy deep-copies it first; the
    # recording transport builds it for this call alone and keeps no other reference).
    return {**response,
            "headers": {k: v for k, v in response["headers"].items() if k.lower() in KEPT_RESPONSE_HEADERS},
            "body": {**response["body"], "string": _readable_body(response["body"]["string"])[0]}}


def _parsed_body(request: VcrRequest) -> Any:
    cached = getattr(request, "_ft_parsed", None)
    if cached is None:
        body = request.body or b""
        try:
            cached = ("json", json.loads(body))
        except ValueError:
            cached = ("raw", body)
        request._ft_parsed = cached
    return cached


def json_body(r1: VcrRequest, r2: VcrRequest) -> None:
    """vcrpy matcher: bodies equal as JSON (key order and whitespace ignored)."""
    if _parsed_body(r1) != _parsed_body(r2):
        raise AssertionError("request bodies differ")


MATCH_ON = (method, path, json_body)


def vcr_record_mode(mode: str) -> RecordMode:
    # "once" here means: replay what is recorded, record what is missing (and drop what no
    # longer matches). Per case that is vcrpy's new_episodes plus drop_unused_requests.
    return {"once": RecordMode.NEW_EPISODES, "new_episodes": RecordMode.NEW_EPISODES,
            "none": RecordMode.NONE, "all": RecordMode.ALL}[mode]


class _Cassette(Cassette):
    """vcrpy's Cassette, loading recordings as they were saved.

    vcrpy's ``_load`` passes every stored interaction through the record filters again
    (with a deep copy of each response), which is most of the cost of replaying. What is on
    disk was filtered when it was recorded, so it is taken as it is. A cassette that cannot
    be read is an error naming the file, where vcrpy would treat it as empty and record over it.
    """

    def _load(self) -> None:
        try:
            requests, responses, *metadata = self._persister.load_cassette(self._path, serializer=self._serializer)
        except CassetteNotFoundError:
            return
        except (CassetteDecodeError, ValueError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise CassetteUnreadable(f"cannot read the recording {self._path}: {exc}") from exc
        for request, response in zip(requests, responses):
            request._ft_filtered = True
            self.data.append((request, response))
            self._old_interactions.append((request, response))
        self._loaded_count = len(self.data)
        self.dirty = False
        self.rewound = True
        self._metadata = metadata[0] if metadata else {}

    def append(self, request: VcrRequest, response: dict) -> None:
        """vcrpy's ``append`` without its deep copy of every response (and its log line):
        :func:`filter_response` builds the dict it keeps and never changes the one it is given."""
        request = self._before_record_request(request)
        if not request:
            return
        response = self._before_record_response(response)
        if response is None:
            return
        if not self.rewound:  # nothing loaded, so nothing is matched against it: the parsed body
            request._ft_parsed = None  # would only weigh on memory and the garbage collector
        self.data.append((request, response))
        self.dirty = True


def _cassette_options(path: str | os.PathLike, mode: str) -> dict:
    return dict(path=str(path), serializer=readable_yaml, persister=AtomicPersister,
                record_mode=vcr_record_mode(mode), match_on=MATCH_ON,
                before_record_request=filter_request, before_record_response=filter_response,
                drop_unused_requests=(mode == "once"))


class AtomicPersister(FilesystemPersister):
    """vcrpy's filesystem persister, writing safely: xdist workers create a suite's folder at
    the same time (vcrpy's check-then-mkdir races), and a run killed mid-write must not leave
    half a recording, so each cassette is written to a temporary file and renamed into place."""

    @staticmethod
    def save_cassette(cassette_path, cassette_dict, serializer) -> None:
        write_atomic(cassette_path, serialize(cassette_dict, serializer))


class CassetteUnreadable(Exception):
    """A recording that exists but cannot be parsed; never overwritten."""


class CaseCassette:
    """The cassette of one case, plus what the runner needs to say about it.

    A case whose file does not exist yet (a first run: every case of the suite) gets its
    vcrpy cassette when it records its first answer, not when it is opened: the runner opens
    every case's cassette as it submits the case, and 100,000 empty vcrpy cassettes (a dozen
    containers each) waiting for a slot cost memory and garbage-collection time for nothing.
    """

    def __init__(self, cassette: Cassette | None = None, case: str = "", *,
                 path: str | os.PathLike | None = None, mode: str = "once"):
        self._cassette = cassette
        self.case = case
        self.recorded = 0
        self.replayed = 0
        self._path = str(path) if path is not None else cassette._path
        self._mode = mode

    def __repr__(self) -> str:
        return f"CaseCassette(case={self.case!r}, path={self._path!r}, recorded={self.recorded}, replayed={self.replayed})"

    @classmethod
    def open(cls, path: Path, mode: str, case: str) -> "CaseCassette":
        if not os.path.isfile(path):  # what vcrpy's persister takes for "no recording yet"
            return cls(None, case, path=path, mode=mode)
        return cls(_Cassette.load(**_cassette_options(path, mode)), case, mode=mode)

    @property
    def cassette(self) -> Cassette:
        if self._cassette is None:  # as vcrpy's load of a missing file leaves it: empty
            self._cassette = _Cassette(**_cassette_options(self._path, self._mode))
        return self._cassette

    @property
    def path(self) -> str:
        return self._path

    def play(self, request: VcrRequest) -> dict | None:
        """The recorded response to ``request`` (marked played), or None.

        As vcrpy's ``can_play_response_for`` then ``play_response``, matching the request
        against the recordings once instead of twice."""
        cassette = self._cassette
        if cassette is None or not cassette.rewound or cassette.record_mode == RecordMode.ALL:
            return None  # no file was loaded (vcrpy never plays what it recorded in this run), or re-recording
        try:
            response = cassette.play_response(request)
        except UnhandledHTTPRequestError:
            return None
        self.replayed += 1
        return response

    def play_json(self, url: str, body: dict) -> dict | None:
        """Replay a JSON POST without building its HTTP request: the lookup is the same match
        (method, path, parsed body) on the same cassette, minus the client's work to encode it.
        A body that would have been scrubbed does not match here and takes the client path."""
        if self._cassette is None:
            return None
        request = VcrRequest("POST", url, b"", {})
        request._ft_filtered, request._ft_parsed = True, ("json", body)
        return self.play(request)

    def discard(self, response: httpx2.Response) -> None:
        """Forget the interaction just recorded for ``response``: its answer could not be read."""
        if self._cassette is None:
            return
        request = response.extensions.get(RECORDED_EXTENSION)
        kept = [(r, a) for r, a in self.cassette.data if r is not request]
        self.recorded -= len(self.cassette.data) - len(kept)
        self.cassette.data[:] = kept

    def save(self, *, complete: bool) -> None:
        """Write the cassette if it changed. An incomplete case keeps what it did not replay;
        a case with nothing to record leaves no file."""
        self._leave_context()
        if self._cassette is None:
            return
        if not complete:
            self.cassette.drop_unused_requests = False
        if self.cassette.data or self.cassette._old_interactions:
            self.cassette._save()

    def _leave_context(self) -> None:
        """Saving ends the calls of this task (a case, a fixture call): it stops pointing at the
        cassette. A finished asyncio task keeps its context, and the future the runner hands
        pytest keeps the task (``run_coroutine_threadsafe``'s cancel callback): without this,
        every recording of the run, requests, answers and parsed bodies, stayed in memory to
        the end (and every full garbage collection walked through them)."""
        if current_cassette.get() is self:
            current_cassette.set(None)


class RecordingTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that replays from, or records into, the current case's cassette.

    Without a current cassette (recording disabled) it is a plain pass-through.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport):
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        case_cassette = current_cassette.get()
        if case_cassette is None:
            return await self.inner.handle_async_request(request)
        body = await request.aread()
        # Only the headers a recording keeps: filter_request would drop the others (vcrpy's
        # headers are a Python case-insensitive dict, slow to fill and to empty again).
        vcr_request = VcrRequest(request.method, str(request.url), body,
                                 {k: v for k, v in request.headers.items() if k.lower() in KEPT_REQUEST_HEADERS})
        recorded = case_cassette.play(vcr_request)
        if recorded is not None:
            headers = [(k, v) for k, values in recorded["headers"].items() for v in values]
            headers.append((REPLAYED_HEADER, "1"))
            return httpx2.Response(recorded["status"]["code"], headers=headers,
                                   stream=httpx2.ByteStream(recorded["body"]["string"]))
        cassette = case_cassette.cassette
        if cassette.write_protected:
            raise RecordingMissing(f"case {case_cassette.case!r}: no recording of this request in "
                                   f"{case_cassette.path} (record mode 'none' replays only; "
                                   f"record it with --ft-record-mode=once)")
        started = time.perf_counter()
        response = await self.inner.handle_async_request(request)
        try:  # the raw (possibly compressed) bytes: the client decodes them, the filter for disk
            content = b"".join([chunk async for chunk in response.stream])
        finally:
            await response.stream.aclose()
        items = response.headers.multi_items()
        headers: dict[str, list[str]] = {}
        for name, value in items:
            headers.setdefault(name, []).append(value)
        latency = round((time.perf_counter() - started) * 1000)
        headers[LATENCY_HEADER] = [str(latency)]
        cassette.append(vcr_request, {
            "status": {"code": response.status_code, "message": response.reason_phrase},
            "headers": headers, "body": {"string": content}})
        if response.status_code < 400:
            case_cassette.recorded += 1
        return httpx2.Response(response.status_code, headers=items,
                               stream=httpx2.ByteStream(content),
                               extensions={**response.extensions, RECORDED_EXTENSION: vcr_request,
                                           LATENCY_EXTENSION: float(latency)})

    async def aclose(self) -> None:
        await self.inner.aclose()


def cassette_path(cassette_dir: Path, suite: str, case_id: str) -> Path:
    return cassette_dir.joinpath(_safe_name(suite), f"{_safe_name(case_id)}.yaml")


MAX_NAME = 200  # file systems allow 255 bytes a name; ".yaml" and a temporary file's affixes come on top
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_name(name: str) -> str:
    cleaned = _UNSAFE.sub("_", name).strip("._") or "_"
    if len(cleaned) > MAX_NAME:  # a long parametrized test name: cut, and keep it apart by a hash of the whole
        cleaned = f"{cleaned[:MAX_NAME - 13]}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"
    return cleaned


def recorded_latency(headers: Any) -> float | None:
    """The latency kept with a recorded response (its headers as recorded, or as replayed)."""
    value = headers.get(LATENCY_HEADER) if headers is not None else None
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        latency = float(value)
    except (TypeError, ValueError):
        return None
    return latency if 0 <= latency < 1e9 else None
