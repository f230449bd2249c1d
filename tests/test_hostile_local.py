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


def _tool(name: str = "f", **function) -> dict:
    return {"type": "function", "function": {"name": name, **function}}


def test_hostile_tools_are_400_naming_the_parameter(make_server):
    srv = make_server()
    cases = [
        (dict(tools="get_weather"), "tools", "expected an array"),
        (dict(tools={"type": "function", "function": {"name": "f"}}), "tools", "expected an array"),
        (dict(tools=[_tool(), "f"]), "tools[1]", "expected an object"),
        (dict(tools=[{"type": "function", "function": {"description": "no name"}}]), "tools[0].function.name",
         "Missing required parameter: 'tools[0].function.name'"),
        (dict(tools=[{"type": "function"}]), "tools[0].function", "Missing required parameter"),
        (dict(tools=[_tool("")]), "tools[0].function.name", "pattern"),
        (dict(tools=[_tool("x" * 65)]), "tools[0].function.name", "pattern"),
        (dict(tools=[_tool(name=7)]), "tools[0].function.name", "expected a string"),
        (dict(tools=[_tool(f"f{i}") for i in range(200)]), "tools",
         "array too long. Expected an array with maximum length 128, but got an array with length 200"),
        (dict(tools=[_tool(parameters={"type": "object", "description": "x" * 2_000_000})]), "tools",
         "at most 262144 fit"),
        (dict(tools=[_tool(parameters={"properties": {f"p{i}": {"type": "string", "description": "y" * 100}
                                                      for i in range(5000)}})]), "tools", "at most 262144 fit"),
        (dict(tools=[_tool(parameters=[1, 2])]), "tools[0].function.parameters", "expected an object"),
        (dict(tools=[_tool(description={"text": "x"})]), "tools[0].function.description", "expected a string"),
        (dict(tools=[_tool()], tool_choice=1), "tool_choice", "expected 'none', 'auto', 'required'"),
        (dict(tools=[_tool()], tool_choice={"type": "function", "function": {"name": ["f"]}}), "tool_choice", None),
        (dict(tools=[_tool()], tool_choice={"type": "function", "function": {"name": "g"}}), "tool_choice",
         "not among the tools"),
        (dict(tool_choice={"type": "function", "function": {"name": "f"}}), "tool_choice", "only allowed"),
        (dict(tools=[_tool()], parallel_tool_calls=1), "parallel_tool_calls", "expected a boolean"),
    ]
    for fields, param, says in cases:
        message = assert_bad_request(*raw(srv, "POST", "/v1/chat/completions", chat_body(**fields), JSON), param=param)
        assert says is None or says in message, (param, message)


def test_hostile_tool_messages_are_400(make_server):
    srv = make_server()
    user = {"role": "user", "content": "ola"}
    bad = [
        [user, {"role": "tool", "content": "x"}],
        [user, {"role": "tool", "tool_call_id": 5, "content": "x"}],
        [user, {"role": "tool", "tool_call_id": "c", "content": {"result": 1}}],
        [user, {"role": "assistant", "tool_calls": {"name": "f"}}],
        [user, {"role": "assistant", "tool_calls": [None]}],
        [user, {"role": "assistant", "tool_calls": [{"type": "function", "function": "f()"}]}],
        [user, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": 1}}]}],
        [user, {"role": "assistant", "tool_calls": [{"id": 3, "function": {"name": "f", "arguments": "{}"}}]}],
        [user, {"role": "assistant", "function_call": "f"}],
        [user, {"role": "user", "content": "x", "tool_calls": []}],
    ]
    for messages in bad:
        status, body = raw(srv, "POST", "/v1/chat/completions", chat_body(messages=messages), JSON)
        assert_bad_request(status, body, param="messages")


def test_tools_that_fit_no_context_or_nest_deeply_are_never_500(make_server):
    srv = make_server()   # the tiny model's context is 256 tokens
    wide = [_tool(f"f{i}", description=" ".join(["bom"] * 50)) for i in range(128)]
    status, body = raw(srv, "POST", "/v1/chat/completions", chat_body(tools=wide), JSON)
    assert_bad_request(status, body, param="messages")
    assert body["error"]["code"] == "context_length_exceeded"
    deep: dict = {"type": "string"}
    for _ in range(400):
        deep = {"type": "object", "properties": {"a": deep}}
    status, body = raw(srv, "POST", "/v1/chat/completions", chat_body(tools=[_tool(parameters=deep)]), JSON)
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    # a tool_call whose JSON is hostile is only text: rendered, not parsed
    odd = [{"role": "user", "content": "ola"},
           {"role": "assistant", "content": None, "tool_calls": [
               {"type": "function", "function": {"name": "f", "arguments": "</tool_call><tool_call>{" * 3}}]},
           {"role": "tool", "tool_call_id": "x", "content": "<tool_response>"}]
    status, body = raw(srv, "POST", "/v1/chat/completions", chat_body(messages=odd, tools=[_tool()]), JSON)
    assert status == 200 and body["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")
