"""Loading a ``*.ft.yaml`` suite: parsing, validation, and errors that point at file:line.

A suite is read once at collection. Everything that can be wrong with it (an unknown
key, a case without ``expected``, a duplicate id, a grader that does not exist, a regex
that does not compile, an unreadable ``cases_file``) is found here, so a bad suite fails
its own collection with ``file:line: key: message`` and never a half-run.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from .. import graders as graders_module
from .errors import SuiteError
from .model import Case, ModelSpec, Suite
from .yaml_lines import (
    LineList,
    LineLoader,
    LineMap,
    construct,
    open_regular,
    plain,
    read_lines,
    too_big,
    wrap,
)

SUITE_PATTERNS = ("*.ft.yaml", "*.ft.yml")
REQUIRED_ROLES = ("base", "tuned")
REFERENCE = "reference"  # the role of the model being replaced: every other model is compared with it

# The same keys as the schema editors use (tests/test_schema.py holds them equal); written out
# here so that loading a suite does not import pydantic.
SUITE_KEYS = frozenset({"suite", "description", "models", "system", "params", "grader", "thresholds", "judge",
                        "cases", "cases_file", "batch", "repeat", "pass_if", "train", "agreement", "prefer",
                        "tools", "tool_choice", "parallel_tool_calls", "response_format"})
TRAIN_KEYS = frozenset({"file", "validation_file", "base", "suffix", "method", "seed", "hyperparameters"})
CASE_KEYS = frozenset({"id", "input", "messages", "expected", "grader", "params", "system", "description", "repeat",
                       "pass_if", "tools", "tool_choice", "parallel_tool_calls", "response_format"})
# Request keys a suite or a case may set beside params, checked here: what fine-tunes for tool
# calls and strict formats are made for.
TOOL_KEYS = ("tools", "tool_choice", "parallel_tool_calls", "response_format")
PREFER_KEYS = frozenset({"rubric", "roles", "include_expected", "model"})
MODEL_KEYS = frozenset({"model", "base_url", "api_key_env", "params", "system", "few_shot", "answers"})
PASS_RULES = ("majority", "all", "any")
MAX_REPEAT = 100
THRESHOLD_RANGES = {"accuracy": (0, 1), "min_gain": (-1, 1), "max_cost_usd": (0, math.inf),
                    "max_regressions": (0, math.inf), "max_p_value": (0, 1), "min_agreement": (0, 1),
                    "max_latency_p95_ms": (0, math.inf), "min_win_rate": (0, 1), "max_unscored": (0, math.inf)}
MESSAGE_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
# Request keys a suite may not set, and why: the runner sends one whole (non-streamed) answer
# per request, reads choices[0], and names the model and the conversation itself.
RESERVED_PARAMS = {"model": "pytest-ft sets it", "messages": "pytest-ft sets it",
                   "stream": "pytest-ft reads whole answers", "stream_options": "pytest-ft reads whole answers",
                   "n": "pytest-ft grades one answer per request (use repeat: for more samples)"}
MAX_NAME_CHARS = 200
MAX_SUITE_BYTES = 64 * 2**20
MAX_CASES_FILE_BYTES = 2**30
_UNSAFE_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f-\x9f\u2028\u2029]|::")


def is_suite_file(path: Path) -> bool:
    return any(path.match(pattern) for pattern in SUITE_PATTERNS)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raise :class:`SuiteError` on the first problem."""
    path = Path(path)
    try:
        with open_regular(path, MAX_SUITE_BYTES) as handle:
            raw = handle.read(MAX_SUITE_BYTES + 1)  # the file may have grown since it was opened
        if len(raw) > MAX_SUITE_BYTES:
            raise OSError(too_big(MAX_SUITE_BYTES))
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(path, None, None, f"cannot read suite: {exc}") from exc
    try:
        loader = LineLoader(text)
        loader.suite_path = str(path)
        try:
            data = construct(loader, path)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        # The context (say, where an unclosed "[" opened) is where to fix; the problem mark
        # is only where the parser gave up, often the end of the file.
        mark = exc.context_mark or exc.problem_mark
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.context_mark:
            message += f" ({exc.context} started here)"
        raise SuiteError(path, mark.line + 1 if mark else None, None, message) from exc
    except yaml.YAMLError as exc:
        raise SuiteError(path, None, None, f"YAML error: {exc}") from exc
    return parse_suite(data, path)


def parse_suite(data: Any, path: Path) -> Suite:
    if not isinstance(data, dict):
        raise SuiteError(path, getattr(data, "line", 1), None, "a suite must be a mapping with a 'cases' list")
    root = data if isinstance(data, LineMap) else wrap(data)
    _reject_unknown(root, SUITE_KEYS, path, "")

    def err(key: str, message: str, node: Any = root) -> SuiteError:
        line = node.line_of(key.split(".")[-1]) if isinstance(node, LineMap) else getattr(node, "line", None)
        return SuiteError(path, line, key, message)

    name = path.name.split(".ft.")[0]
    if "suite" in root:
        try:
            name = check_name(root["suite"])
        except ValueError as exc:
            raise err("suite", str(exc)) from None
    system = root.get("system")
    if system is not None and not isinstance(system, str):
        raise err("system", "must be a string")
    params = _params(root, path)
    train = _parse_train(root, path)
    models = _parse_models(root, path, train)
    judge = _parse_model(root["judge"], path, "judge", root.line_of("judge")) if root.get("judge") else None
    thresholds = _parse_thresholds(root, path)
    batch = root.get("batch", False)
    if not isinstance(batch, bool):
        raise err("batch", "must be true or false")
    repeat, pass_if = parse_repeat(root, path, "")

    default_grader_spec = root.get("grader", "exact")
    try:
        default_grader = graders_module.build_grader(default_grader_spec, base_dir=path.parent)
    except graders_module.GraderError as exc:
        raise SuiteError(path, root.line_of("grader"), _join("grader", exc.key), str(exc)) from exc

    agreement = None
    if root.get("agreement") is not None:
        try:
            agreement = graders_module.build_grader(root["agreement"], base_dir=path.parent)
        except graders_module.GraderError as exc:
            raise SuiteError(path, root.line_of("agreement"), _join("agreement", exc.key), str(exc)) from exc
        if REFERENCE not in models or models[REFERENCE] is None:
            raise err("agreement", f"grades agreement with the reference model: name one in models.{REFERENCE}")

    prefer = _parse_prefer(root, path)
    if ("cases" in root) == ("cases_file" in root):
        raise err("cases", "give exactly one of 'cases' (a list) or 'cases_file' (a chat JSONL file)")
    unlabelled = models.get(REFERENCE) is not None  # the reference's answer may stand for 'expected'
    if "cases" in root:
        raw_cases = root["cases"]
        if not isinstance(raw_cases, list) or not raw_cases:
            raise err("cases", "must be a non-empty list of cases")
        cases = [_parse_case(raw, i, path, system, params, default_grader, default_grader_spec,
                             raw_cases.item_lines[i] if isinstance(raw_cases, LineList) else None, unlabelled)
                 for i, raw in enumerate(raw_cases)]
    else:
        cases = _cases_from_jsonl(root, path, system, params, default_grader, default_grader_spec, unlabelled,
                                  tool_grader="grader" not in root)

    seen: dict[str, int] = {}
    for case in cases:
        if case.id in seen:
            raise SuiteError(path, case.line, "id", f"duplicate case id {case.id!r} (first at line {seen[case.id]})")
        seen[case.id] = case.line
    return Suite(name=name, path=path, models=models, system=system, params=params, thresholds=thresholds,
                 cases=cases, judge=judge, description=str(root.get("description", "")), batch=batch,
                 repeat=repeat, pass_if=pass_if, train=train, agreement=agreement, prefer=prefer,
                 agreement_spec=plain(root["agreement"]) if agreement is not None else None)


def _parse_prefer(root: LineMap, path: Path) -> dict | None:
    """``prefer:``: a judge compares two models' answers, in both orders (see ``graders.prefer``)."""
    raw = root.get("prefer")
    if raw is None:
        return None
    if raw is True:
        raw = wrap({})
    if not isinstance(raw, LineMap):
        raise SuiteError(path, root.line_of("prefer"), "prefer", "must be true or a mapping with rubric, roles, "
                                                                 "include_expected, model")
    _reject_unknown(raw, PREFER_KEYS, path, "prefer.")
    roles = raw.get("roles", ["tuned", "base"])
    if not (isinstance(roles, list) and len(roles) == 2 and all(isinstance(r, str) for r in roles)
            and roles[0] != roles[1]):
        raise SuiteError(path, raw.line_of("roles"), "prefer.roles", "must be two different roles, e.g. [tuned, base]")
    for key in ("rubric", "model"):
        if raw.get(key) is not None and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise SuiteError(path, raw.line_of(key), f"prefer.{key}", "must be a non-empty string")
    if not isinstance(raw.get("include_expected", True), bool):
        raise SuiteError(path, raw.line_of("include_expected"), "prefer.include_expected", "must be true or false")
    return {"roles": list(roles), "rubric": raw.get("rubric"), "model": raw.get("model"),
            "include_expected": raw.get("include_expected", True), "line": root.line_of("prefer")}


def parse_repeat(node: LineMap, path: Path, prefix: str) -> tuple[int | None, str | int | None]:
    """``repeat: N`` samples each model N times; ``pass_if`` says how many samples must pass."""
    repeat = node.get("repeat")
    if repeat is not None and (isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT):
        raise SuiteError(path, node.line_of("repeat"), f"{prefix}repeat", f"must be a whole number from 1 to {MAX_REPEAT}")
    pass_if = node.get("pass_if")
    if pass_if is not None:
        valid = pass_if in PASS_RULES or (isinstance(pass_if, int) and not isinstance(pass_if, bool) and pass_if >= 1)
        if not valid:
            raise SuiteError(path, node.line_of("pass_if"), f"{prefix}pass_if",
                             f"must be one of {', '.join(PASS_RULES)} or a number of samples (at least k)")
        if isinstance(pass_if, int) and repeat is not None and pass_if > repeat:
            raise SuiteError(path, node.line_of("pass_if"), f"{prefix}pass_if",
                             f"{pass_if} passing samples out of repeat: {repeat} can never happen")
    return repeat, pass_if


def check_name(value: Any) -> str:
    """The one rule for case ids and suite names: they name pytest items (split on ``::``) and files."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ValueError("must be a non-empty string")
    name = str(value).strip()
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"{name[:40]!r}...: longer than {MAX_NAME_CHARS} characters")
    if name.startswith(".") or _UNSAFE_NAME_CHARS.search(name):
        raise ValueError(f"{name!r}: may not start with '.' or hold '::', slashes or control characters")
    return name


def _join(prefix: str, key: str | None) -> str:
    if not key:
        return prefix
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


def _reject_unknown(node: LineMap, allowed: set[str], path: Path, prefix: str) -> None:
    for key in node:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            raise SuiteError(path, node.line_of(key), f"{prefix}{key}", f"unknown key (allowed: {hint})")


def _mapping(node: LineMap, key: str, path: Path, prefix: str = "") -> dict:
    value = node.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SuiteError(path, node.line_of(key), f"{prefix}{key}", "must be a mapping")
    return dict(value)


def _params(node: LineMap, path: Path, prefix: str = "", inherited: dict | None = None) -> dict:
    """``params`` and the tool keys of a suite, a case or a model; checked merged with what they
    inherit (a case's ``tool_choice`` may name a tool of the suite's)."""
    params = _mapping(node, "params", path, prefix)
    for key in params:
        if key in RESERVED_PARAMS:
            line = node["params"].line_of(key) if isinstance(node["params"], LineMap) else node.line_of("params")
            raise SuiteError(path, line, f"{prefix}params.{key}", f"reserved: {RESERVED_PARAMS[key]}")
    for key in TOOL_KEYS:
        if key in node:
            params[key] = plain(node[key])
    try:
        check_tool_params({**(inherited or {}), **params})
    except ValueError as exc:
        key = str(exc).split(":", 1)[0]
        where = key.split(".")[0].split("[")[0]
        line = node.line_of(where) if where in node else node.line_of("params") if "params" in node else node.line
        raise SuiteError(path, line, f"{prefix}{key}", str(exc).split(": ", 1)[1]) from None
    return params


def check_tool_params(params: dict) -> None:
    """The shapes of ``tools``, ``tool_choice``, ``parallel_tool_calls`` and ``response_format``:
    a ValueError ``"key: message"`` for the first that is wrong. A model would reject them with
    a 400 on every case; a suite is told before any call."""
    tools = params.get("tools")
    names = set()
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            raise ValueError("tools: must be a non-empty list of {type: function, function: {name, parameters}}")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
                raise ValueError(f"tools[{i}]: must be {{type: function, function: {{name, parameters}}}}")
            name = function.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
                raise ValueError(f"tools[{i}].function.name: must be 1-64 letters, digits, _ or -")
            if name in names:
                raise ValueError(f"tools[{i}].function.name: {name!r} is given twice")
            names.add(name)
            if not isinstance(function.get("parameters", {}), dict):
                raise ValueError(f"tools[{i}].function.parameters: must be a JSON Schema object")
    choice = params.get("tool_choice")
    if choice is not None:
        named = choice.get("function", {}).get("name") if isinstance(choice, dict) and \
            isinstance(choice.get("function"), dict) else None
        if choice not in ("auto", "none", "required") and not (isinstance(named, str) and named):
            raise ValueError("tool_choice: must be auto, none, required or {type: function, function: {name}}")
        if named and named not in names:
            raise ValueError(f"tool_choice: names {named!r}, which is not among the tools")
        if tools is None:
            raise ValueError("tool_choice: needs tools")
    if "parallel_tool_calls" in params and not isinstance(params["parallel_tool_calls"], bool):
        raise ValueError("parallel_tool_calls: must be true or false")
    response_format = params.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            raise ValueError("response_format: must be {type: text | json_object | json_schema}")
        if kind == "json_schema":
            schema = response_format.get("json_schema")
            if not isinstance(schema, dict) or not isinstance(schema.get("name"), str) or \
                    not isinstance(schema.get("schema", {}), dict):
                raise ValueError("response_format.json_schema: must be {name, schema, strict?}")


def _parse_train(root: LineMap, path: Path) -> dict | None:
    """``train:``: the data the tuned model is fine-tuned on (the model then comes from its job)."""
    raw = root.get("train")
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = wrap({"file": raw})
    if not isinstance(raw, LineMap):
        raise SuiteError(path, root.line_of("train"), "train", "must be a JSONL path or a mapping with 'file'")
    _reject_unknown(raw, TRAIN_KEYS, path, "train.")
    if not isinstance(raw.get("file"), str):
        raise SuiteError(path, raw.line_of("file"), "train.file", "must be the path of a chat JSONL training file")
    train = plain(raw)
    for key in ("file", "validation_file"):
        if train.get(key):
            train[key] = str(path.parent / train[key])
            if not Path(train[key]).is_file():
                raise SuiteError(path, raw.line_of(key), f"train.{key}", f"no such file: {train[key]}")
    train["line"] = root.line_of("train")
    return train


def _few_shot(value: Any, train: dict | None, path: Path, key: str, line: int) -> tuple:
    """``few_shot: N`` takes the first N examples of the training data as user/assistant turns."""
    count, source = (value, (train or {}).get("file")) if not isinstance(value, dict) else \
        (value.get("n"), str(path.parent / value["file"]) if value.get("file") else (train or {}).get("file"))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SuiteError(path, line, f"{key}.few_shot", "must be a number of examples, or {n, file}")
    if not source:
        raise SuiteError(path, line, f"{key}.few_shot", "needs examples: set train.file or few_shot.file")
    examples: list[dict] = []
    try:
        with open_regular(Path(source), MAX_CASES_FILE_BYTES) as handle:
            for text in read_lines(handle, MAX_CASES_FILE_BYTES):
                if len(examples) >= 2 * count:
                    break
                if text.strip():
                    turns = [m for m in json.loads(text).get("messages", []) if m.get("role") in ("user", "assistant")]
                    examples.extend({"role": m["role"], "content": m.get("content")} for m in turns)
    except (OSError, ValueError, AttributeError) as exc:
        raise SuiteError(path, line, f"{key}.few_shot", f"cannot read examples from {source}: {exc}") from exc
    return tuple(examples)


def _parse_model(value: Any, path: Path, key: str, line: int, train: dict | None = None) -> ModelSpec:
    if isinstance(value, str) and value.strip():
        return ModelSpec(model=value.strip())
    if isinstance(value, LineMap):
        _reject_unknown(value, MODEL_KEYS, path, f"{key}.")
        model = value.get("model")
        if not isinstance(model, str) or not model.strip():
            raise SuiteError(path, value.line_of("model"), f"{key}.model", "must be a model id")
        for name in ("base_url", "api_key_env"):
            if value.get(name) is not None and not isinstance(value[name], str):
                raise SuiteError(path, value.line_of(name), f"{key}.{name}", "must be a string")
        system = value.get("system")
        if system is not None and not isinstance(system, str):
            raise SuiteError(path, value.line_of("system"), f"{key}.system", "must be a string")
        examples = _few_shot(value["few_shot"], train, path, key, value.line_of("few_shot")) \
            if "few_shot" in value else ()
        answers = value.get("answers")
        if answers is not None:
            if not isinstance(answers, str) or not answers.strip():
                raise SuiteError(path, value.line_of("answers"), f"{key}.answers",
                                 "must be the path of a frozen answers file (pytest-ft freeze)")
            answers = str(path.parent / answers)
            if not Path(answers).is_file():
                raise SuiteError(path, value.line_of("answers"), f"{key}.answers", f"no such file: {answers}")
        return ModelSpec(model=model.strip(), base_url=value.get("base_url"), api_key_env=value.get("api_key_env"),
                         params=_params(value, path, f"{key}."), system=system, examples=examples, answers=answers,
                         line=value.line_of("answers") if answers else line)
    raise SuiteError(path, line, key, "must be a model id or a mapping with 'model'")


def _parse_models(root: LineMap, path: Path, train: dict | None) -> dict[str, ModelSpec | None]:
    raw = root.get("models") or {}
    if not isinstance(raw, dict):
        raise SuiteError(path, root.line_of("models"), "models", "must be a mapping of role to model")
    models: dict[str, ModelSpec | None] = {role: None for role in REQUIRED_ROLES}
    for role, value in raw.items():
        line = raw.line_of(role) if isinstance(raw, LineMap) else root.line_of("models")
        if not isinstance(role, str) or not role.isidentifier():
            raise SuiteError(path, line, f"models.{role}", "a model role must be a simple name such as 'tuned'")
        models[role] = None if value is None else _parse_model(value, path, f"models.{role}", line, train)
    return models


def _parse_thresholds(root: LineMap, path: Path) -> dict[str, float]:
    raw = root.get("thresholds")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SuiteError(path, root.line_of("thresholds"), "thresholds", "must be a mapping")
    _reject_unknown(raw, set(THRESHOLD_RANGES), path, "thresholds.")
    out = {}
    for key, value in raw.items():
        low, high = THRESHOLD_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problem = "must be a finite number"
        elif key == "max_regressions" and (value < 0 or value != int(value)):
            problem = "must be a whole number, 0 or more"
        elif not low <= value <= high:
            problem = f"must be {low} or more" if high == math.inf else f"must be between {low} and {high}"
        else:
            out[key] = float(value)
            continue
        raise SuiteError(path, raw.line_of(key), f"thresholds.{key}", problem)
    return out


def check_messages(messages: Any, path: Path, line: int | None, key: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise SuiteError(path, line, key, "must be a non-empty list of {role, content} messages")
    for i, message in enumerate(messages):
        here = messages.item_lines[i] if isinstance(messages, LineList) else line
        if not isinstance(message, dict) or "role" not in message:
            raise SuiteError(path, here, f"{key}[{i}]", "each message needs a 'role' and 'content'")
        role, content = message["role"], message.get("content")
        if not isinstance(role, str) or role not in MESSAGE_ROLES:
            raise SuiteError(path, here, f"{key}[{i}].role",
                             f"unknown role {role!r} (one of {', '.join(sorted(MESSAGE_ROLES))})")
        if not (content is None or isinstance(content, str)
                or isinstance(content, list) and all(isinstance(part, dict) for part in content)):
            raise SuiteError(path, here, f"{key}[{i}].content", "must be a string, null or a list of content parts")
    return [dict(m) for m in messages]


def _with_system(messages: list[dict], system: str | None) -> list[dict]:
    if system and not any(m.get("role") in ("system", "developer") for m in messages):
        return [{"role": "system", "content": system}, *messages]
    return messages


def _parse_case(raw: Any, index: int, path: Path, system: str | None, params: dict, default_grader: Any,
                default_spec: Any, line: int | None, unlabelled: bool = False) -> Case:
    if not isinstance(raw, LineMap):
        raise SuiteError(path, line, f"cases[{index}]", "a case must be a mapping with 'id', 'input' and 'expected'")
    _reject_unknown(raw, CASE_KEYS, path, "")
    if raw.get("id") is None:
        raise SuiteError(path, raw.line, "id", f"case #{index + 1} has no 'id'")
    try:
        case_id = check_name(raw["id"])
    except ValueError as exc:
        raise SuiteError(path, raw.line_of("id"), "id", str(exc)) from None
    if ("input" in raw) == ("messages" in raw):
        raise SuiteError(path, raw.line, "input", f"case {case_id!r}: give exactly one of 'input' or 'messages'")
    if "expected" not in raw and not unlabelled:
        raise SuiteError(path, raw.line, "expected", f"case {case_id!r} has no 'expected' (give one, or name "
                                                     f"the model being replaced in models.{REFERENCE}: its answer "
                                                     f"is then the expected one)")
    case_system = raw.get("system", system)
    if "input" in raw:
        if not isinstance(raw["input"], str):
            raise SuiteError(path, raw.line_of("input"), "input", "must be a string (the user message)")
        messages = [{"role": "user", "content": raw["input"]}]
    else:
        messages = check_messages(raw["messages"], path, raw.line_of("messages"), "messages")
    case_params = {**params, **_params(raw, path, inherited=params)}
    grader, spec = default_grader, default_spec
    if "grader" in raw:
        spec = raw["grader"]
        try:
            grader = graders_module.build_grader(spec, base_dir=path.parent)
        except graders_module.GraderError as exc:
            raise SuiteError(path, raw.line_of("grader"), _join("grader", exc.key), str(exc)) from exc
    expected = plain(raw["expected"]) if "expected" in raw else None
    try:
        if "expected" in raw:
            grader.check_expected(expected)
    except graders_module.GraderError as exc:
        raise SuiteError(path, raw.line_of("expected"), "expected", f"case {case_id!r}: {exc}") from exc
    repeat, pass_if = parse_repeat(raw, path, "")
    return Case(id=case_id, messages=_with_system(messages, case_system), expected=expected,
                grader=grader, params=case_params, line=raw.line, grader_spec=plain(spec),
                repeat=repeat, pass_if=pass_if, labelled="expected" in raw)


def _cases_from_jsonl(root: LineMap, path: Path, system: str | None, params: dict, grader: Any,
                      grader_spec: Any, unlabelled: bool = False, tool_grader: bool = False) -> list[Case]:
    """Each line of a chat fine-tuning JSONL file is a case; its last assistant message is the answer."""
    value = root["cases_file"]
    line = root.line_of("cases_file")
    if not isinstance(value, str):
        raise SuiteError(path, line, "cases_file", "must be a path to a JSONL file")
    data_path = path.parent / value
    cases = []
    try:
        with open_regular(data_path, MAX_CASES_FILE_BYTES) as handle:
            for number, text in enumerate(read_lines(handle, MAX_CASES_FILE_BYTES), start=1):
                if not text.strip():
                    continue
                try:
                    cases.append(_jsonl_case(text, number, path, system, params, grader, grader_spec, unlabelled,
                                             tool_grader))
                except ValueError as exc:
                    raise SuiteError(path, line, "cases_file", f"{data_path}:{number}: {exc}") from None
    except OSError as exc:
        raise SuiteError(path, line, "cases_file", f"cannot read {data_path}: {exc.strerror or exc}") from exc
    if not cases:
        raise SuiteError(path, line, "cases_file", f"{data_path} holds no cases")
    return cases


def read_example(obj: Any, path: Path, line: int | None = None) -> tuple[list[dict], dict]:
    """A chat JSONL line's messages and metadata, checked as a suite's; a ValueError names the key first."""
    if not isinstance(obj, dict):
        raise ValueError("must be a JSON object with a 'messages' list")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("metadata: must be an object")
    try:
        return check_messages(obj.get("messages"), path, line, "messages"), metadata
    except SuiteError as exc:
        raise ValueError(f"{exc.key}: {exc.message}") from None


def _jsonl_case(text: bytes, number: int, path: Path, system: str | None, params: dict, grader: Any,
                grader_spec: Any, unlabelled: bool = False, tool_grader: bool = False) -> Case:
    """One line of a cases_file as a case; a ValueError says what is wrong with the line."""
    try:
        example = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    messages, metadata = read_example(example, path)
    labelled = messages[-1]["role"] == "assistant"
    if not labelled and not unlabelled:
        raise ValueError("needs an assistant message (the expected answer) after the prompt, or a reference "
                         f"model (models.{REFERENCE}) whose answer is the expected one")
    if labelled and len(messages) < 2:
        raise ValueError("needs a prompt before the assistant message (the expected answer)")
    try:
        case_id = check_name(example.get("id") or metadata.get("id") or f"line{number}")
    except ValueError as exc:
        raise ValueError(f"id: {exc}") from None
    case_params = dict(params)
    for key in ("tools", "parallel_tool_calls"):  # the fine-tuning format's keys for function calling
        if key in example:
            case_params[key] = example[key]
    check_tool_params(case_params)  # "key: message", as every other problem of a line
    expected = messages[-1].get("content") if labelled else None
    if labelled and "tools" in case_params:
        # A function-calling example: its answer is the calls it makes (or none), graded as calls
        # unless the suite names its own grader.
        calls = messages[-1].get("tool_calls")
        if tool_grader:
            grader, grader_spec = graders_module.build_grader("tool_call"), "tool_call"
            expected = calls or []
        elif calls:
            expected = calls
    if labelled:
        grader.check_expected(expected)  # a GraderError is a ValueError
    prompt = messages[:-1] if labelled else messages
    return Case(id=case_id, messages=_with_system(prompt, system), expected=expected, grader=grader,
                params=case_params, line=number, grader_spec=grader_spec, labelled=labelled)
