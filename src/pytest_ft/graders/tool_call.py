"""The ``tool_call`` grader: the answer calls the expected tools with the expected arguments, or calls none.

Function calling is what many fine-tunes are for: pick the right tool, fill its arguments, or
answer in text when no tool fits. The runner gives the answer's calls in ``ctx.tool_calls``
(arguments parsed, or None with the parse error: a model's malformed JSON is a miss, never an
error) and the request's tools in ``ctx.tools``, whose ``parameters`` schemas ``schema`` mode
validates against. Expected values are normalised once per case and schemas compiled once per
schema, so grading an answer costs microseconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .base import AsyncGrader, Grade, GradeContext, GraderError, clip, quote, unit
from .json import _diff, _key_path, _schema_validator, _short
from .registry import grader

_NO_CALL_FORMS = "a list of calls [{name, arguments}], one call mapping, or no call: [], null or 'none'"
_CALL_KEYS = frozenset({"name", "arguments", "id"})
_MESSAGE_KEYS = frozenset({"type", "function", "id"})
_FUNCTION_KEYS = frozenset({"name", "arguments"})
_CACHE_MAX = 16384


class _Call:
    """One expected call: a tool name, and its arguments (None: any arguments are right)."""

    __slots__ = ("arguments", "name")

    def __init__(self, name: str, arguments: dict[str, Any] | None):
        self.name, self.arguments = name, arguments

    def show(self) -> str:
        return _show(self.name, ...) if self.arguments is None else _show(self.name, self.arguments)


@grader("tool_call")
def tool_call(*, arguments: Literal["equal", "subset", "schema"] | None = None,
              order: Literal["any", "strict"] = "any", schemas: dict[str, Any] | None = None,
              threshold: float = 1.0, base_dir: Path | None = None) -> AsyncGrader:
    """The answer's tool calls are the expected ones: right tools, right arguments, right count.

    ``expected`` is a list of calls ``{name, arguments}`` (``arguments`` left out: any are
    right), one such mapping, or no call (``[]``, ``null`` or ``"none"``: the model must answer
    in text). A call may also be in OpenAI's message form ``{type: function, function: {name,
    arguments: "<JSON text>"}}``, as a ``cases_file`` line carries it. Options: ``arguments``:
    ``equal`` (the default: the parsed JSON is equal, key order ignored, ``true`` is not ``1``),
    ``subset`` (every expected key is there with a matching value, recursively; extra keys are
    fine) or ``schema`` (the default when ``schemas`` is given: the arguments validate against
    ``schemas[tool]``, inline or a file, else the tool's ``parameters`` in the request's tools;
    expected arguments are not compared); ``order``: ``any`` (the default: calls paired
    whatever their order, the pairing with the most right calls) or ``strict`` (position by
    position);
    ``threshold`` (1.0). Score: the mean of right tools (matched names / the larger of the two
    counts), right arguments (the share of matched calls whose arguments are right) and right
    count (1 or 0); a no-call case scores 1 or 0.
    """
    unit("threshold", threshold)
    if arguments is None:
        arguments = "schema" if schemas is not None else "equal"
    if schemas is not None and arguments != "schema":
        raise GraderError(f"'schemas' is only used with arguments 'schema' (arguments is {arguments!r})", "schemas")
    fixed = {}
    for name, schema in (schemas or {}).items():
        key = _key_path("schemas", name)
        if not isinstance(schema, (dict, bool, str)):
            raise GraderError(f"must be a JSON Schema (a mapping) or the path of a file holding one, got {schema!r}",
                              key)
        try:
            fixed[name] = _schema_validator(schema, base_dir)
        except GraderError as exc:
            raise GraderError(exc.message, key) from None
    subset, by_schema, strict = arguments == "subset", arguments == "schema", order == "strict"
    prepared_cache: dict[int, tuple[Any, tuple[_Call, ...]]] = {}

    def prepare(expected: Any) -> tuple[_Call, ...]:
        found = prepared_cache.get(id(expected))
        if found is not None and found[0] is expected:
            return found[1]
        calls = _expected_calls(expected)
        if len(prepared_cache) >= _CACHE_MAX:
            prepared_cache.clear()
        prepared_cache[id(expected)] = (expected, calls)  # holding it keeps its id from being reused
        return calls

    def problems(call: _Call, got: Mapping[str, Any], label: str, tools: Any) -> list[str]:
        """Why ``got``'s arguments are not right for ``call`` (empty: they are)."""
        where = f"{label}.arguments"
        args = got.get("arguments")
        if args is None:
            raw, error = got.get("raw_arguments"), got.get("error") or "no arguments"
            return [f"{where}: {error}: {quote(raw, 60)}" if raw else f"{where}: {error}"]
        if by_schema:
            from jsonschema.exceptions import best_match

            error = best_match(_validator(call.name, fixed, tools).iter_errors(args))
            return [] if error is None else [f"{_path(where, error.absolute_path)}: {clip(error.message, 120)}"]
        if call.arguments is None:
            return [] if isinstance(args, dict) else [f"{where}: expected a JSON object, got {_short(args)}"]
        out: list[str] = []
        _diff(call.arguments, args, where, subset, out)
        return out

    async def grade(output: str, expected: Any, ctx: GradeContext | None) -> Grade:
        want = prepare(expected)
        got = (ctx.tool_calls if ctx is not None else None) or []
        if not want:
            if not got:
                return Grade(True, 1.0, "no tool call, as expected")
            return _verdict(0.0, threshold, f"called {', '.join(_name(c) or '(no name)' for c in got)}, expected no call")
        if not got:
            text = f", answered {quote(output.strip(), 60)}" if output.strip() else ""
            return _verdict(0.0, threshold, f"no tool call; expected {_show_all(want)}{text}")
        tools = ctx.tools if ctx is not None else None
        n, m = len(want), len(got)
        labels = _labels(want)
        issues: list[str] = []  # wrong tools (or, in strict order, whatever differs at each position)
        wrong_args: list[str] = []
        if strict:
            matched = right = 0
            for i, (call, actual) in enumerate(zip(want, got)):
                if _name(actual) != call.name:
                    where = f"call {i + 1}: " if max(n, m) > 1 else ""
                    issues.append(f"{where}expected tool {call.name}, got {_name(actual) or '(no name)'}")
                    continue
                matched += 1
                wrong = problems(call, actual, labels[i], tools)
                right += not wrong
                issues += wrong
            missing, extra = want[m:], got[n:]
        else:
            matched, right, missing, extra = _match(want, got, labels, tools, problems, issues, wrong_args)
        if n != m:
            issues.append(f"{m} call{'s' if m != 1 else ''}, expected {n}: " +
                          (f"missing {_show_all(missing)}" if missing else
                           f"extra {', '.join(_name(c) or '(no name)' for c in extra)}"))
        issues += wrong_args
        score = (matched / max(n, m) + (right / matched if matched else 0.0) + (n == m)) / 3
        if not issues:
            shown = ", ".join(_show(_name(c), c.get("arguments")) for c in got)
            return Grade(score >= threshold, score, f"{shown} as expected")
        more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
        return _verdict(score, threshold, issues[0] + more)

    return AsyncGrader("tool_call", grade, check_expected=prepare)


def _match(want: tuple[_Call, ...], got: list[Any], labels: list[str], tools: Any, problems: Any,
           issues: list[str], wrong_args: list[str]) -> tuple[int, int, tuple[_Call, ...], list[Any]]:
    """The best pairing of expected and actual calls whatever their order: most names matched, then
    most arguments right. Returns (matched, right, expected calls left, actual calls left); adds
    the wrong tools to ``issues`` and the wrong arguments to ``wrong_args``."""
    by_name: dict[str, list[int]] = {}
    for j, actual in enumerate(got):
        by_name.setdefault(_name(actual), []).append(j)
    pairs: dict[int, int] = {}  # expected index -> actual index
    wrong: dict[int, list[str]] = {}  # expected index -> why its pair's arguments are wrong
    groups: dict[str, list[int]] = {}
    for i, call in enumerate(want):
        groups.setdefault(call.name, []).append(i)
    for name, mine in groups.items():
        theirs = by_name.get(name)
        if not theirs:
            continue
        found = {(i, j): problems(want[i], got[j], labels[i], tools) for i in mine for j in theirs}
        right = {i: [j for j in theirs if not found[i, j]] for i in mine}
        owner: dict[int, int] = {}  # actual -> expected, over pairs whose arguments are right
        for i in mine:
            _augment(i, right, owner, set())
        for j, i in owner.items():
            pairs[i] = j
        free = iter([j for j in theirs if j not in owner])
        for i in mine:
            if i not in pairs:
                j = next(free, None)
                if j is None:
                    break
                pairs[i], wrong[i] = j, found[i, j]
    used = set(pairs.values())
    missing = tuple(call for i, call in enumerate(want) if i not in pairs)
    extra = [actual for j, actual in enumerate(got) if j not in used]
    for call, actual in zip(missing, extra):
        issues.append(f"expected tool {call.name}, got {_name(actual) or '(no name)'}")
    for i in sorted(wrong):
        wrong_args.extend(wrong[i])
    swapped = min(len(missing), len(extra))
    return len(pairs), len(pairs) - len(wrong), missing[swapped:], extra[swapped:]


def _augment(i: int, right: dict[int, list[int]], owner: dict[int, int], seen: set[int]) -> bool:
    """Kuhn's augmenting path: pair expected call ``i`` with an actual one, moving earlier pairs if need be."""
    for j in right[i]:
        if j not in seen:
            seen.add(j)
            if j not in owner or _augment(owner[j], right, owner, seen):
                owner[j] = i
                return True
    return False


def _verdict(score: float, threshold: float, reason: str) -> Grade:
    return Grade(score >= threshold, score, reason)


def _name(call: Any) -> str:
    name = call.get("name") if isinstance(call, Mapping) else None
    return name if isinstance(name, str) else ""


def _labels(want: tuple[_Call, ...]) -> list[str]:
    """Each expected call's name as the root of its paths; ``call 2: name`` when the name is not unique."""
    names = [call.name for call in want]
    return [name if names.count(name) == 1 else f"call {i + 1}: {name}" for i, name in enumerate(names)]


def _show(name: str, arguments: Any) -> str:
    if arguments is ...:
        return f"{name}(...)"
    if isinstance(arguments, dict):
        return clip(f"{name}({', '.join(f'{k}={_short(v)}' for k, v in arguments.items())})", 120)
    return clip(f"{name}({_short(arguments)})", 120)


def _show_all(calls: Any) -> str:
    return clip(", ".join(call.show() for call in calls), 160)


def _path(root: str, where: Any) -> str:
    for part in where:
        root = f"{root}[{part}]" if isinstance(part, int) else _key_path(root, str(part))
    return root


# --------------------------------------------------------------------------- expected


def _expected_calls(expected: Any) -> tuple[_Call, ...]:
    """The case's expected calls, normalised; () for no call. A GraderError names what is wrong."""
    if expected is None:
        return ()
    if isinstance(expected, bool):
        raise GraderError(f"expected is a boolean ({expected!r}); for no tool call write none, [] or null "
                          "(YAML reads unquoted yes/no/on/off/true/false as booleans)", "expected")
    if isinstance(expected, str):
        if expected.strip().lower() == "none":
            return ()
        raise GraderError(f"expected must be {_NO_CALL_FORMS}; got the string {quote(expected, 40)}", "expected")
    if isinstance(expected, Mapping):
        return (_expected_call(expected, "expected"),)
    if isinstance(expected, (list, tuple)):
        return tuple(_expected_call(call, f"expected[{i}]") for i, call in enumerate(expected))
    raise GraderError(f"expected must be {_NO_CALL_FORMS}; got {type(expected).__name__}", "expected")


def _expected_call(call: Any, where: str) -> _Call:
    if not isinstance(call, Mapping):
        raise GraderError(f"{where}: must be a call mapping {{name, arguments}}, got {type(call).__name__}",
                          "expected")
    if "function" in call or "type" in call:  # OpenAI's message form
        _known_keys(call, _MESSAGE_KEYS, where, "a call in message form has type, function and id")
        if call.get("type", "function") != "function":
            raise GraderError(f"{where}.type: must be 'function', got {call.get('type')!r}", "expected")
        where, call = f"{where}.function", call.get("function")
        if not isinstance(call, Mapping):
            raise GraderError(f"{where}: must be a mapping {{name, arguments}}, got {type(call).__name__}",
                              "expected")
        _known_keys(call, _FUNCTION_KEYS, where, "a function has name and arguments")
    else:
        _known_keys(call, _CALL_KEYS, where, "a call has name and arguments")
    name = call.get("name")
    if not isinstance(name, str) or not name.strip():
        raise GraderError(f"{where}.name: must be a tool name, got {name!r}", "expected")
    arguments = call.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise GraderError(f"{where}.arguments: not valid JSON ({exc}): {quote(call['arguments'], 60)}",
                              "expected") from None
    if arguments is not None and not isinstance(arguments, dict):
        raise GraderError(f"{where}.arguments: must be an object (a mapping), or left out to accept any; "
                          f"got {_short(arguments)}", "expected")
    return _Call(name, arguments)


def _known_keys(call: Mapping[Any, Any], known: frozenset[str], where: str, hint: str) -> None:
    for key in call:
        if key not in known:
            raise GraderError(f"{where}: unknown key {key!r} ({hint})", "expected")


# --------------------------------------------------------------------------- schemas


_BY_ID: dict[int, tuple[Any, Any]] = {}  # id(schema) -> (schema, validator): a request's tools, compiled once
_BY_TEXT: dict[str, Any] = {}  # the same for schemas that arrive as new objects each time (replayed requests)
_ANY_OBJECT: dict[str, Any] = {"type": "object"}  # a tool declared without parameters


def _validator(name: str, fixed: dict[str, Any], tools: Any) -> Any:
    """The validator for tool ``name``'s arguments: from ``schemas``, else the request's tools."""
    found = fixed.get(name)
    if found is not None:
        return found
    for tool in tools or ():
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and function.get("name") == name:
            return _compiled(function.get("parameters", _ANY_OBJECT), name)
    raise GraderError(f"no schema for tool {name!r}: the request's tools do not define it and 'schemas' does not "
                      "name it", "schemas")


def _compiled(schema: Any, name: str) -> Any:
    found = _BY_ID.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    if not isinstance(schema, (dict, bool)):
        raise GraderError(f"the parameters of tool {name!r} are not a JSON Schema: {_short(schema)}", "tools")
    text = json.dumps(schema, sort_keys=True, default=str)
    validator = _BY_TEXT.get(text)
    if validator is None:
        try:
            validator = _schema_validator(schema, None)
        except GraderError as exc:
            raise GraderError(f"the parameters of tool {name!r}: {exc.message}", "tools") from None
        if len(_BY_TEXT) >= _CACHE_MAX:
            _BY_TEXT.clear()
        _BY_TEXT[text] = validator
    if len(_BY_ID) >= _CACHE_MAX:
        _BY_ID.clear()
    _BY_ID[id(schema)] = (schema, validator)  # holding the schema keeps its id from being reused
    return validator
