"""OpenAI's chat fine-tuning format: the keys, roles and values each example may hold.

The checks and error kinds follow OpenAI's cookbook notebook "Chat_finetuning_data_prep"
(``data_type``, ``missing_messages_list``, ``message_missing_key``, ``message_unrecognized_key``,
``unrecognized_role``, ``missing_content``, ``example_missing_assistant_message``), plus kinds of
our own (:data:`pytest_ft.data.ERROR_KINDS` lists them all). Each check reports through
``add`` (an error) and ``warn`` (a warning) callbacks, so that one parsed line is walked once.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

ROLES = ("system", "user", "assistant", "tool", "function")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "function_call", "tool_call_id", "refusal")
# "metadata" is pytest-ft's, not OpenAI's: an object of provenance (a case id, a frozen answer's
# model and date) that a suite's cases_file reads.
CHAT_KEYS = ("messages", "tools", "parallel_tool_calls", "functions", "metadata")
DPO_KEYS = ("input", "preferred_output", "non_preferred_output")
DPO_INPUT_KEYS = ("messages", "tools", "parallel_tool_calls")


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


_Add = Callable[[str, str], None]


def _check_content(msg: Mapping[str, Any], role: Any, where: str, has_call: bool, add: _Add,
                   warn: _Add) -> None:
    content = msg["content"]
    if content is None:
        if not has_call:
            add("missing_content", f"{where}: content is null")
        return
    if isinstance(content, str):
        if not content.strip():
            if role == "assistant":
                if not has_call:
                    warn("empty_assistant_answer", f"{where}: the assistant's content is empty")
            else:
                add("missing_content", f"{where}: content is empty")
        return
    if isinstance(content, list):
        if not content:
            if role == "assistant" and not has_call:
                warn("empty_assistant_answer", f"{where}: the assistant's content is an empty list")
            elif role != "assistant":
                add("missing_content", f"{where}: content is an empty list")
            return
        has_text = False
        for i, part in enumerate(content, 1):
            if not isinstance(part, dict):
                add("invalid_content_part", f"{where}: content part {i} is {_type_name(part)}, not an object")
                continue
            ptype = part.get("type")
            if ptype == "text":
                if not isinstance(part.get("text"), str):
                    add("invalid_content_part", f"{where}: content part {i} (text) has no 'text' string")
                elif part["text"].strip():
                    has_text = True
            elif ptype == "image_url" and role == "user":
                image = part.get("image_url")
                if not (isinstance(image, dict) and isinstance(image.get("url"), str) and image["url"]):
                    add("invalid_content_part", f"{where}: content part {i} (image_url) has no 'url'")
                else:
                    has_text = True
            else:
                allowed = "'text' or 'image_url'" if role == "user" else "'text'"
                add("invalid_content_part", f"{where}: content part {i} has type {ptype!r}; "
                                            f"a {role} message takes {allowed} parts")
        if not has_text and role == "assistant" and not has_call:
            warn("empty_assistant_answer", f"{where}: the assistant's content has no text")
        return
    add("missing_content", f"{where}: content is {_type_name(content)}, not a string or a list of text parts")


def _check_tool_calls(msg: Mapping[str, Any], role: Any, where: str, add: _Add) -> bool:
    """Check tool_calls / function_call; True when the message carries a well-formed call."""
    has_call = False
    if "tool_calls" in msg:
        calls = msg["tool_calls"]
        if role != "assistant":
            add("invalid_tool_calls", f"{where}: tool_calls is only allowed on assistant messages")
        elif not isinstance(calls, list) or not calls:
            add("invalid_tool_calls", f"{where}: tool_calls must be a non-empty list")
        else:
            ok = True
            for i, call in enumerate(calls, 1):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(call, dict) or call.get("type", "function") != "function" \
                        or not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                        or not isinstance(fn.get("arguments"), str):
                    add("invalid_tool_calls", f"{where}: tool call {i} needs type 'function' and a function "
                                              f"with string 'name' and 'arguments'")
                    ok = False
                elif "id" in call and not isinstance(call["id"], str):
                    add("invalid_tool_calls", f"{where}: tool call {i} has a non-string id")
                    ok = False
            has_call = ok
    if "function_call" in msg:
        fc = msg["function_call"]
        if role != "assistant":
            add("invalid_tool_calls", f"{where}: function_call is only allowed on assistant messages")
        elif not isinstance(fc, dict) or not isinstance(fc.get("name"), str) \
                or not isinstance(fc.get("arguments"), str):
            add("invalid_tool_calls", f"{where}: function_call needs string 'name' and 'arguments'")
        else:
            has_call = True
    return has_call


def _check_message(msg: Any, where: str, add: _Add, warn: _Add) -> str | None:
    if not isinstance(msg, dict):
        add("data_type", f"{where} is {_type_name(msg)}, not an object")
        return None
    role = msg.get("role")
    if "role" not in msg:
        add("message_missing_key", f"{where} has no 'role'")
    elif role not in ROLES:
        add("unrecognized_role", f"{where}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
    unknown = [k for k in msg if k not in MESSAGE_KEYS]
    if unknown:
        add("message_unrecognized_key", f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                                        f"{', '.join(repr(k) for k in unknown)}")
    _check_tool_calls(msg, role, where, add)
    # an assistant turn may be a call instead of text (a malformed call is reported on its own)
    has_call = role == "assistant" and bool(msg.get("tool_calls") or msg.get("function_call"))
    if "content" in msg:
        _check_content(msg, role, where, has_call, add, warn)
    elif not has_call:
        add("message_missing_key", f"{where} has no 'content'")
    if "weight" in msg:
        weight = msg["weight"]
        if role != "assistant":
            add("invalid_weight", f"{where}: weight is only allowed on assistant messages")
        elif type(weight) is not int or weight not in (0, 1):
            add("invalid_weight", f"{where}: weight must be 0 or 1, got {json.dumps(weight)}")
    if "name" in msg and not isinstance(msg["name"], str):
        add("invalid_name", f"{where}: name must be a string, got {_type_name(msg['name'])}")
    if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
        add("message_missing_key", f"{where}: a tool message needs a 'tool_call_id' string")
    if role == "function" and not isinstance(msg.get("name"), str):
        add("message_missing_key", f"{where}: a function message needs a 'name'")
    return role if isinstance(role, str) else None


def _check_tools(container: Mapping[str, Any], prefix: str, add: _Add) -> None:
    if "tools" in container:
        tools_ = container["tools"]
        if not isinstance(tools_, list):
            add("invalid_tools", f"{prefix}tools must be a list, got {_type_name(tools_)}")
        else:
            for i, tool in enumerate(tools_, 1):
                fn = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict) \
                        or not isinstance(fn.get("name"), str):
                    add("invalid_tools", f"{prefix}tool {i} needs type 'function' and a function with a 'name'")
    if "functions" in container:
        fns = container["functions"]
        if not isinstance(fns, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in fns):
            add("invalid_tools", f"{prefix}functions must be a list of objects with a 'name'")
    if "parallel_tool_calls" in container and not isinstance(container["parallel_tool_calls"], bool):
        add("invalid_tools", f"{prefix}parallel_tool_calls must be true or false")


def _check_messages_list(messages: Any, owner: str, add: _Add, warn: _Add) -> list[str | None] | None:
    if messages is None:
        add("missing_messages_list", f"no '{owner}' list")
        return None
    if not isinstance(messages, list):
        add("missing_messages_list", f"'{owner}' is {_type_name(messages)}, not a list")
        return None
    if not messages:
        add("missing_messages_list", f"'{owner}' is empty")
        return None
    return [_check_message(m, f"message {i}", add, warn) for i, m in enumerate(messages, 1)]


def example_type(obj: Any) -> str | None:
    """The line's type by its keys: "chat" (messages), "dpo" (a preference key), or None."""
    if isinstance(obj, dict):
        if "messages" in obj:
            return "chat"
        if any(k in obj for k in DPO_KEYS):
            return "dpo"
    return None


def check_example(obj: Any, add: _Add, warn: _Add) -> str | None:
    """Check one parsed line; returns its type ("chat" / "dpo") or None when it is neither."""
    if not isinstance(obj, dict):
        add("data_type", f"the line is {_type_name(obj)}, not a JSON object")
        return None
    kind = example_type(obj)
    if kind == "dpo":
        unknown = [k for k in obj if k not in DPO_KEYS]
        if unknown:
            add("unrecognized_key", f"unknown top-level key{'s' if len(unknown) > 1 else ''} "
                                    f"{', '.join(repr(k) for k in unknown)} in a preference example")
        inp = obj.get("input")
        roles: list[str | None] = []
        if not isinstance(inp, dict):
            add("missing_messages_list", "a preference example needs an 'input' object with a 'messages' list")
        else:
            bad = [k for k in inp if k not in DPO_INPUT_KEYS]
            if bad:
                add("unrecognized_key", f"unknown key{'s' if len(bad) > 1 else ''} "
                                        f"{', '.join(repr(k) for k in bad)} in 'input'")
            roles = _check_messages_list(inp.get("messages"), "input.messages", add, warn) or []
            _check_tools(inp, "input.", add)
        outputs = []
        for key in ("preferred_output", "non_preferred_output"):
            out = obj.get(key)
            if not isinstance(out, list) or not out:
                add("dpo_missing_output", f"'{key}' must be a non-empty list of assistant messages")
                continue
            outputs.append(out)
            for i, msg in enumerate(out, 1):
                role = _check_message(msg, f"{key} message {i}", add, warn)
                if isinstance(msg, dict) and "role" in msg and role != "assistant":
                    add("dpo_output_not_assistant", f"{key} message {i} has role {msg.get('role')!r}, "
                                                    f"not 'assistant'")
        if len(outputs) == 2 and outputs[0] == outputs[1]:
            warn("dpo_identical_outputs", "preferred_output and non_preferred_output are identical")
        if roles:
            if "system" not in roles:
                warn("missing_system_message", "no system message")
            if "user" not in roles:
                warn("missing_user_message", "no user message")
        return "dpo"
    unknown = [k for k in obj if k not in CHAT_KEYS]
    if unknown and kind == "chat":
        add("unrecognized_key", f"unknown top-level key{'s' if len(unknown) > 1 else ''} "
                                f"{', '.join(repr(k) for k in unknown)} (allowed: {', '.join(CHAT_KEYS)})")
    if "metadata" in obj and not isinstance(obj["metadata"], dict):
        add("data_type", f"'metadata' is {_type_name(obj['metadata'])}, not an object")
    roles = _check_messages_list(obj.get("messages"), "messages", add, warn)
    if roles is None:
        return kind
    _check_tools(obj, "", add)
    if "assistant" not in roles:
        add("example_missing_assistant_message", "no assistant message")
    if "system" not in roles:
        warn("missing_system_message", "no system message")
    if "user" not in roles:
        warn("missing_user_message", "no user message")
    return "chat"

