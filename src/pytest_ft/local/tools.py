"""Function calling on the local backend: tools into the prompt, tool calls out of the answer.

Gemma 3 (and most small models' chat templates) have no notion of tools, so the local backend
writes them into the conversation as text, in the Hermes format that Qwen 2.5 uses and vLLM's
``hermes`` tool parser reads. The same text is rendered for inference and for training (see
:func:`pytest_ft.local.models.chat_turns`), so a fine-tune learns exactly what is parsed back.

**The tools** (a request's ``tools``, or a training line's) become a block at the end of the
system prompt (a system message is added when there is none), one tool per line, each as
compact-spaced JSON ``{"type": "function", "function": {"name", "description", "parameters"}}``
(only the keys given, in this order; ``parameters`` exactly as given, key order kept)::

    <the system prompt, if any>

    # Tools

    You may call one or more functions to assist with the user query.

    You are provided with function signatures within <tools></tools> XML tags:
    <tools>
    {"type": "function", "function": {"name": "get_weather", "parameters": {...}}}
    </tools>

    For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
    <tool_call>
    {"name": <function-name>, "arguments": <args-json-object>}
    </tool_call>

**An assistant turn with ``tool_calls``** is its text content (if any), a newline, then one
block per call, the blocks joined by a newline; ``arguments`` is written verbatim (the string
of the OpenAI format, stripped; ``{}`` when empty)::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

**Tool results** (``role: tool``, and the legacy ``role: function``) become a user turn, each
result as ``<tool_response>\\n{content}\\n</tool_response>``; consecutive results share one
user turn, joined by a newline. ``tool_call_id`` is required (as OpenAI requires it) but not
rendered: results answer the calls in order. A legacy assistant ``function_call`` is one call.

**Parsing** (:func:`parse_tool_calls`), only when tools were offered and ``tool_choice`` is not
``none``:

* a block runs from ``<tool_call>`` to the next ``</tool_call>``, or to the end of the text
  (an answer cut by ``max_tokens``, or by the ``</tool_call>`` stop, see below);
* a block whose body is a JSON object with a non-empty string ``name`` is a call. Its
  ``arguments`` is the text of the body's ``arguments`` member exactly as generated (not
  re-serialised; a JSON string value is taken as the arguments string itself; ``parameters``
  is read when ``arguments`` is absent; ``{}`` when both are);
* a block whose body is not valid JSON is still a call when its name can be recovered (a
  ``"name": "..."`` member): its ``arguments`` is then the raw text after ``"arguments":`` up
  to the end of the block (less the object's closing brace), or the whole (invalid) body
  when there is none or it is empty — never ``""``, which pytest-ft's reader takes for
  ``{}``. An evaluator's ``json.loads(arguments)`` then fails, which is how it sees a
  malformed call (unless only the envelope was broken and the arguments are whole JSON);
* anything else (no recoverable name, or not an object) stays in the content, verbatim, as
  vLLM leaves unparsable output;
* the name is not checked against the tools offered: calling an unknown function is the
  model's mistake for the evaluation to see;
* ``content`` is the text outside the calls, stripped, or null when nothing is left; an answer
  with no call keeps its text unchanged. ``finish_reason`` is ``tool_calls`` when there is a
  call, unless generation ran out of ``max_tokens`` (``length``).

**tool_choice**: ``auto`` (the default with tools) renders the tools and parses calls;
``none`` renders no tools and parses nothing (earlier tool turns are still rendered).
``required`` and a named function cannot be enforced by a grammar here (there is no
constrained decoding); instead the answer is *prefilled* (:func:`prefill`): ``required``
starts the assistant turn with ``<tool_call>\\n``, a named function with
``<tool_call>\\n{"name": "<name>", "arguments":`` — exactly the start of the text the model is
trained to write, so the call and its name are forced but not the arguments' validity. The
prefill is part of the prompt (counted in ``prompt_tokens``) and of the answer's text.

**parallel_tool_calls: false** adds ``</tool_call>`` as a stop string (generation ends after
the first call) and keeps only the first call. The prompt is the same either way (so a
training line's ``parallel_tool_calls`` changes nothing).

**Call ids** are deterministic: ``call_`` + 24 hex digits of a SHA-256 over the prompt's
tokens, the choice index, the call's index, its name and arguments (:func:`call_id`). The same
request answered the same way gets the same ids, so a follow-up request that quotes them
(``tool_calls[].id``, ``tool_call_id``) has the same body on every run and matches its
recording; the prompt in the hash keeps ids apart across the turns of a conversation.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Mapping, Sequence

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
TOOL_RESPONSE_OPEN = "<tool_response>"
TOOL_RESPONSE_CLOSE = "</tool_response>"

MAX_TOOLS = 128                 # OpenAI's limit
MAX_TOOLS_JSON = 256 * 1024     # characters of the tools as JSON (Gemma 3 270M's context is 32K tokens)
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")   # OpenAI's rule for function names

TOOLS_HEADER = (
    "# Tools\n\n"
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>\n"
)
TOOLS_FOOTER = (
    "\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n"
    "<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>"
)


class ToolFormatError(ValueError):
    """Tools, tool calls or tool messages that cannot be rendered."""


# --------------------------------------------------------------------------------------------
# rendering


def tool_specs(tools: Any, functions: Any = None) -> list[dict[str, Any]]:
    """The tools as rendered: ``[{"type": "function", "function": {"name", "description"?,
    "parameters"?}}]``. ``functions`` is the legacy list of bare functions. Raises
    :class:`ToolFormatError` on anything malformed."""
    out: list[dict[str, Any]] = []
    for key, items in (("tools", tools), ("functions", functions)):
        if items is None:
            continue
        if not isinstance(items, list):
            raise ToolFormatError(f"'{key}' must be a list")
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            if key == "tools":
                if not isinstance(item, Mapping) or item.get("type", "function") != "function":
                    raise ToolFormatError(f"{where} must be an object of type 'function'")
                fn = item.get("function")
                where += ".function"
            else:
                fn = item
            if not isinstance(fn, Mapping):
                raise ToolFormatError(f"{where} must be an object")
            name = fn.get("name")
            if not isinstance(name, str) or not name:
                raise ToolFormatError(f"{where}.name must be a non-empty string")
            spec: dict[str, Any] = {"name": name}
            if isinstance(fn.get("description"), str):
                spec["description"] = fn["description"]
            if fn.get("parameters") is not None:
                spec["parameters"] = fn["parameters"]
            out.append({"type": "function", "function": spec})
    return out


def tools_block(specs: Sequence[Mapping[str, Any]]) -> str:
    """The system prompt's tools block (see the module docstring)."""
    try:
        lines = [json.dumps(spec, ensure_ascii=False) for spec in specs]
    except (TypeError, ValueError, RecursionError) as exc:
        raise ToolFormatError(f"the tools cannot be written as JSON: {exc}") from None
    return TOOLS_HEADER + "\n".join(lines) + TOOLS_FOOTER


def format_call(name: str, arguments: str) -> str:
    """One call as the assistant writes it."""
    arguments = arguments.strip() or "{}"
    name = json.dumps(name, ensure_ascii=False)
    return f'{TOOL_CALL_OPEN}\n{{"name": {name}, "arguments": {arguments}}}\n{TOOL_CALL_CLOSE}'


def format_calls(calls: Any, where: str) -> str:
    """An assistant message's ``tool_calls`` as text (checked: ``where`` names them in errors)."""
    if not isinstance(calls, list) or not calls:
        raise ToolFormatError(f"{where} must be a non-empty list")
    parts = []
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(call, Mapping) or call.get("type", "function") != "function" or not isinstance(fn, Mapping):
            raise ToolFormatError(f"{where}[{i}] must be an object of type 'function' with a 'function' object")
        if "id" in call and call["id"] is not None and not isinstance(call["id"], str):
            raise ToolFormatError(f"{where}[{i}].id must be a string")
        parts.append(_format_function(fn, f"{where}[{i}].function"))
    return "\n".join(parts)


def _format_function(fn: Mapping[str, Any], where: str) -> str:
    name, arguments = fn.get("name"), fn.get("arguments", "")
    if not isinstance(name, str) or not name:
        raise ToolFormatError(f"{where}.name must be a non-empty string")
    if not isinstance(arguments, str):
        raise ToolFormatError(f"{where}.arguments must be a string (JSON text)")
    return format_call(name, arguments)


def format_function_call(fc: Any, where: str) -> str:
    """A legacy ``function_call`` as text."""
    if not isinstance(fc, Mapping):
        raise ToolFormatError(f"{where} must be an object")
    return _format_function(fc, where)


def format_result(content: str) -> str:
    """One tool result as the user turn carries it."""
    return f"{TOOL_RESPONSE_OPEN}\n{content}\n{TOOL_RESPONSE_CLOSE}"


def prefill(tool_choice: Any) -> str:
    """The forced start of the answer for ``tool_choice`` (see the module docstring)."""
    if tool_choice == "required":
        return TOOL_CALL_OPEN + "\n"
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return f'{TOOL_CALL_OPEN}\n{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments":'
    return ""


# --------------------------------------------------------------------------------------------
# parsing

_BLOCK = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)(?:" + re.escape(TOOL_CALL_CLOSE) + r"|\Z)", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ARGS = re.compile(r'"(?:arguments|parameters)"\s*:\s*', re.DOTALL)
_WS = " \t\n\r"


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _raw_members(body: str) -> dict[str, tuple[Any, str]]:
    """The top-level members of a JSON object text: key -> (value, the value's text)."""
    decoder = json.JSONDecoder()
    out: dict[str, tuple[Any, str]] = {}
    i = _skip_ws(body, 0) + 1   # past "{"
    while True:
        i = _skip_ws(body, i)
        if i >= len(body) or body[i] == "}":
            return out
        key, i = decoder.raw_decode(body, i)
        i = _skip_ws(body, i) + 1   # past ":"
        i = _skip_ws(body, i)
        value, end = decoder.raw_decode(body, i)
        out[key] = (value, body[i:end])
        i = _skip_ws(body, end)
        if i < len(body) and body[i] == ",":
            i += 1


def _parse_block(body: str) -> tuple[str, str] | None:
    """(name, arguments) of one block's body, or None when it is not a call."""
    body = body.strip()
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        obj = None
    else:
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
            return None
        try:
            members = _raw_members(body)
        except (ValueError, RecursionError, IndexError):
            members = {}
        for key in ("arguments", "parameters"):
            if key in members:
                value, text = members[key]
                return obj["name"], value if isinstance(value, str) else text
        return obj["name"], "{}"
    # not JSON: a call when its name can be recovered
    match = _NAME.search(body)
    if not match:
        return None
    try:
        name = json.loads(f'"{match.group(1)}"')
    except ValueError:
        name = match.group(1)
    if not name:
        return None
    args = _ARGS.search(body, match.end()) or _ARGS.search(body)
    if not args:
        return name, body   # not JSON, so no reader takes it for arguments ("" would read as {})
    raw = body[args.end():].strip()
    if raw.endswith("}") and raw.count("}") > raw.count("{"):
        raw = raw[:-1].rstrip()
    return name, raw or body


def parse_tool_calls(text: str, *, parallel: bool = True) -> tuple[str | None, list[dict[str, str]]]:
    """(content, calls) of a generated text; each call ``{"name", "arguments"}``. With no call the
    content is ``text`` unchanged; with calls it is the rest, stripped, or None. ``parallel``
    False keeps the first call only."""
    calls: list[dict[str, str]] = []
    rest: list[str] = []
    pos = 0
    for match in _BLOCK.finditer(text):
        call = _parse_block(match.group(1))
        if call is None:
            continue
        rest.append(text[pos:match.start()])
        pos = match.end()
        if parallel or not calls:
            calls.append({"name": call[0], "arguments": call[1]})
    if not calls:
        return text, []
    rest.append(text[pos:])
    content = "".join(rest).strip()
    return content or None, calls


def call_id(prompt: Sequence[int], choice: int, index: int, name: str, arguments: str) -> str:
    """A call's deterministic id (see the module docstring)."""
    h = hashlib.sha256()
    h.update(",".join(map(str, prompt)).encode())
    h.update(json.dumps([choice, index, name, arguments], ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return "call_" + h.hexdigest()[:24]


def openai_tool_calls(calls: Sequence[Mapping[str, str]], prompt: Sequence[int], choice: int) -> list[dict[str, Any]]:
    """Parsed calls in the OpenAI response shape."""
    return [{"id": call_id(prompt, choice, k, c["name"], c["arguments"]), "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"]}} for k, c in enumerate(calls)]
