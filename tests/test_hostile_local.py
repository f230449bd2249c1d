"""``pytest-ft serve`` on hostile requests: each must be a 400 in the OpenAI error shape, not a 500.

Uses the real server with the tiny random model of test_local_server (skipped without the
``[local]`` extra), driven over real HTTP.
"""

from __future__ import annotations

import json

import pytest
from test_local_server import _dataset, _jsonl, client, heavy, make_server, raw, upload  # noqa: F401

JSON = {"Content-Type": "application/json"}
DEPTH = 100_000


def assert_bad_request(status: int, body, param: str | None = None) -> str:
    """Assert an OpenAI-style 400; returns its message."""
    assert status == 400, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == param
    return body["error"]["message"]


def chat_body(**fields) -> bytes:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "ola"}], "max_tokens": 2, **fields}
    return json.dumps(body).encode()


@pytest.mark.parametrize("body", [b"[" * DEPTH + b"]" * DEPTH, b'{"a":' * DEPTH + b"1" + b"}" * DEPTH],
                         ids=["lists", "objects"])
def test_deeply_nested_json_body_is_400(make_server, body):
    srv = make_server()
    for path in ("/v1/chat/completions", "/v1/fine_tuning/jobs"):
        message = assert_bad_request(*raw(srv, "POST", path, body, JSON))
        assert "could not parse the JSON body" in message
    assert raw(srv, "POST", "/v1/chat/completions", chat_body(), JSON)[0] == 200


def test_stream_options_must_be_an_object(make_server):
    srv = make_server()
    for stream in (True, False):
        for options in ("x", [1], 1, True):
            status, body = raw(srv, "POST", "/v1/chat/completions", chat_body(stream=stream, stream_options=options),
                               JSON)
            assert_bad_request(status, body, param="stream_options")
    status, text = raw(srv, "POST", "/v1/chat/completions",
                       chat_body(stream=True, stream_options={"include_usage": True}), JSON)
    assert status == 200 and '"usage": {"prompt_tokens"' in text and text.endswith("data: [DONE]\n\n")


def test_lone_surrogate_in_a_request_is_400(make_server):
    srv = make_server()
    c = client(srv)
    train = upload(c, _dataset())
    escaped = b'"\\ud800"'
    encoded = b'"\xed\xa0\x80"'  # the surrogate's UTF-8-style bytes: json.loads(bytes) lets them through
    requests = [
        ("/v1/chat/completions", b'{"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": '
                                 + escaped + b"}]}"),
        ("/v1/chat/completions", b'{"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": '
                                 + encoded + b"}]}"),
        ("/v1/chat/completions", b'{"model": ' + escaped + b', "messages": [{"role": "user", "content": "ola"}]}'),
        ("/v1/fine_tuning/jobs", b'{"model": "tiny", "training_file": "' + train.id.encode()
                                 + b'", "metadata": {"k": ' + escaped + b"}}"),
    ]
    for path, body in requests:
        message = assert_bad_request(*raw(srv, "POST", path, body, JSON))
        assert "U+D800" in message, body
    assert c.fine_tuning.jobs.list().data == []   # the job was refused, not created then failed to answer


def test_upload_with_a_lone_surrogate_line_is_400_naming_the_line(make_server):
    import openai

    srv = make_server()
    c = client(srv)
    lines = _jsonl(_dataset()).splitlines()
    lines.insert(3, b'{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "x"}]}')
    with pytest.raises(openai.BadRequestError) as info:
        upload(c, b"\n".join(lines) + b"\n")
    err = info.value.body
    assert err["code"] == "invalid_file_format" and err["param"] == "file"
    assert "line 4" in err["message"] and "encoding_error" in err["message"]
    assert c.files.list().data == []
