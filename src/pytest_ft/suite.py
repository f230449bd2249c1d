"""The ``*.ft.yaml`` suite format: parsing, validation, and errors that point at file:line.

A suite is read once at collection. Everything that can be wrong with it (an unknown
key, a case without ``expected``, a duplicate id, a grader that does not exist, a regex
that does not compile, an unreadable ``cases_file``) is found here, so a bad suite fails
its own collection with ``file:line: key: message`` and never a half-run.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

import yaml

from . import graders as graders_module

SUITE_PATTERNS = ("*.ft.yaml", "*.ft.yml")
REQUIRED_ROLES = ("base", "tuned")

SUITE_KEYS = {"suite", "description", "models", "system", "params", "grader", "thresholds", "judge",
              "cases", "cases_file", "batch", "repeat", "pass_if", "train"}
TRAIN_KEYS = {"file", "validation_file", "base", "suffix", "method", "seed", "hyperparameters"}
CASE_KEYS = {"id", "input", "messages", "expected", "grader", "params", "system", "description", "repeat", "pass_if"}
PASS_RULES = ("majority", "all", "any")
MAX_REPEAT = 100
MODEL_KEYS = {"model", "base_url", "api_key_env", "params", "system", "few_shot"}
THRESHOLD_RANGES = {"accuracy": (0, 1), "min_gain": (-1, 1), "max_cost_usd": (0, math.inf),
                    "max_regressions": (0, math.inf), "max_p_value": (0, 1)}
MESSAGE_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
# Request keys a suite may not set, and why: the runner sends one whole (non-streamed) answer
# per request, reads choices[0], and names the model and the conversation itself.
RESERVED_PARAMS = {"model": "pytest-ft sets it", "messages": "pytest-ft sets it",
                   "stream": "pytest-ft reads whole answers", "stream_options": "pytest-ft reads whole answers",
                   "n": "pytest-ft grades one answer per request (use repeat: for more samples)"}
MAX_NAME_CHARS = 200
MAX_SUITE_BYTES = 64 * 2**20
MAX_CASES_FILE_BYTES = 2**30
MAX_DEPTH = 100  # levels of nesting: the YAML constructor and the graders recurse
# Aliases may expand a suite to ALIAS_FACTOR times the nodes written, plus ALIAS_SLACK; a scalar
# counts one node more per TEXT_PER_NODE characters, so that repeating a long text counts too.
ALIAS_FACTOR, ALIAS_SLACK, TEXT_PER_NODE = 10, 10_000, 1024
_UNSAFE_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f-\x9f\u2028\u2029]|::")


class SuiteError(Exception):
    """A suite that cannot run, with the place to fix it."""

    def __init__(self, path: str | Path, line: int | None, key: str | None, message: str):
        self.path, self.line, self.key, self.message = str(path), line, key, message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    def relative_to(self, root: Path) -> "SuiteError":
        """The same error with the path shown relative to ``root`` (when it is below it)."""
        try:
            path = Path(self.path).relative_to(root)
        except ValueError:
            return self
        return SuiteError(path, self.line, self.key, self.message)


class _Map(dict):
    """A YAML mapping that remembers the line of itself and of each of its keys."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class _List(list):
    line: int = 0
    item_lines: list


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader (libyaml's when available) that annotates mappings and sequences with 1-based lines."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise SuiteError(loader.suite_path, key_node.start_mark.line + 1, None,
                             "a mapping key must be a single value, not a list or a mapping")
        key = loader.construct_object(key_node, deep=True)
        if key in result.key_lines:
            raise SuiteError(loader.suite_path, key_node.start_mark.line + 1, str(key), "duplicate key")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _List:
    result = _List(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _construct_unsupported(loader: _LineLoader, node: yaml.Node) -> None:
    raise SuiteError(loader.suite_path, node.start_mark.line + 1, None,
                     f"{node.tag.rsplit(':', 1)[-1]}: a suite holds only strings, numbers, lists and mappings")


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
# Dates stay the text written: requests and reports are JSON.
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str)
for _tag in ("binary", "set", "omap", "pairs"):
    _LineLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _construct_unsupported)


@dataclass(frozen=True)
class ModelSpec:
    """One model under test: its id and, optionally, its own endpoint and key variable."""

    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    system: str | None = None  # a variant's own system prompt, replacing the case's
    examples: tuple = ()  # a variant's few-shot messages, put before each case's conversation


@dataclass
class Case:
    id: str
    messages: list[dict]
    expected: Any
    grader: Any  # a built grader (graders.Grader)
    params: dict
    line: int
    grader_spec: Any = None
    repeat: int | None = None  # None: the suite's (or the command line's) default
    pass_if: str | int | None = None

    @property
    def input(self) -> str:
        """The last user message: what a person would call this case's input."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
                return str(content or "")
        return ""


@dataclass
class Suite:
    name: str
    path: Path
    models: dict[str, ModelSpec | None]
    system: str | None
    params: dict
    thresholds: dict[str, float]
    cases: list[Case]
    judge: ModelSpec | None = None
    description: str = ""
    batch: bool = False
    repeat: int | None = None
    pass_if: str | int | None = None
    train: dict | None = None


def is_suite_file(path: Path) -> bool:
    return any(path.match(pattern) for pattern in SUITE_PATTERNS)


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; raise :class:`SuiteError` on the first problem."""
    path = Path(path)
    try:
        with _open_regular(path, MAX_SUITE_BYTES) as handle:
            raw = handle.read(MAX_SUITE_BYTES + 1)  # the file may have grown since it was opened
        if len(raw) > MAX_SUITE_BYTES:
            raise OSError(_too_big(MAX_SUITE_BYTES))
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(path, None, None, f"cannot read suite: {exc}") from exc
    try:
        loader = _LineLoader(text)
        loader.suite_path = str(path)
        try:
            data = _construct(loader, path)
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


def _construct(loader: _LineLoader, path: Path) -> Any:
    """The document's data, built once its nodes pass _check_expansion. A function of its own so that
    the nodes are freed before parse_suite: alive, they slow every garbage collection there."""
    node = loader.get_single_node()
    if node is None:
        return None
    _check_expansion(node, path)
    return loader.construct_document(node)


def _open_regular(path: Path, limit: int) -> BinaryIO:
    """Opens a regular file of at most ``limit`` bytes; a FIFO, a device or a directory is refused unread."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO would block the open itself
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError("not a regular file")
        if info.st_size > limit:
            raise OSError(_too_big(limit))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _lines(handle: BinaryIO, limit: int) -> Iterator[bytes]:
    """The lines of ``handle``, up to ``limit`` bytes in all (a file may grow, or lie about its size)."""
    left = limit
    while line := handle.readline(left + 1):
        left -= len(line)
        if left < 0:
            raise OSError(_too_big(limit))
        yield line


def _too_big(limit: int) -> str:
    size = next(f"{limit / unit:g} {name}" for unit, name in ((2**30, "GiB"), (2**20, "MiB"), (1, "bytes"))
                if limit >= unit)
    return f"larger than the limit of {size}"


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


def _weight(node: yaml.Node) -> int:
    return 1 + len(node.value) // TEXT_PER_NODE if isinstance(node, yaml.ScalarNode) else 1


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Refuses, before anything is built, nesting deeper than MAX_DEPTH and aliases that expand the
    suite far beyond what is written ("billion laughs": nine aliases of nine aliases of ...).

    Aliases make the composed nodes a graph; each list's and mapping's expanded size and depth is
    computed once, from its children's, so this costs the size of the file, not of the expansion.
    """
    size: dict[int, int] = {}  # lists and mappings, by id: their weight once expanded
    depth: dict[int, int] = {}
    scalars: dict[int, int] = {}  # each scalar written once, by id: its weight
    open_nodes: set[int] = set()
    # (node, None) visits a node; (node, its children) totals it, once its children are done.
    stack: list[tuple[yaml.Node, list | None]] = [(root, None)]
    while stack:
        node, done_children = stack.pop()
        key = id(node)
        if done_children is not None:
            open_nodes.discard(key)
            total, deepest = 1, 1 if done_children else 0
            for child in done_children:
                if type(child) is yaml.ScalarNode:
                    weight = scalars[id(child)] = _weight(child)
                    total += weight
                else:
                    total += size[id(child)]
                    deepest = max(deepest, depth[id(child)])
            size[key], depth[key] = min(total, sys.maxsize), deepest + 1
            if deepest >= MAX_DEPTH:
                raise SuiteError(path, node.start_mark.line + 1, None, f"nested more than {MAX_DEPTH} levels deep")
        elif key in open_nodes:
            raise SuiteError(path, node.start_mark.line + 1, None, "an alias inside its own anchor never ends")
        elif key not in size:
            open_nodes.add(key)
            children = _children(node)
            stack.append((node, children))
            stack.extend((child, None) for child in reversed(children) if type(child) is not yaml.ScalarNode)
    written = len(size) + sum(scalars.values())
    limit = ALIAS_FACTOR * written + ALIAS_SLACK
    if size[id(root)] > limit:
        raise _alias_bomb(root, path, limit, written)


def _alias_bomb(root: yaml.Node, path: Path, limit: int, written: int) -> SuiteError:
    """The error for aliases that expand past ``limit``: it points at the anchor being repeated
    when the expansion, followed in document order, runs over."""
    seen: set[int] = set()
    expanded = 0
    stack = [(root, None)]
    while expanded <= limit:
        node, repeated = stack.pop()
        if repeated is None and id(node) in seen:
            repeated = node
        seen.add(id(node))
        expanded += _weight(node)
        stack.extend((child, repeated) for child in reversed(_children(node)))
    culprit = repeated or node
    return SuiteError(path, culprit.start_mark.line + 1, None,
                      f"aliases of this anchor expand the suite past {limit:,} nodes "
                      f"({ALIAS_FACTOR} times the {written:,} written + {ALIAS_SLACK:,})")


def parse_suite(data: Any, path: Path) -> Suite:
    if not isinstance(data, dict):
        raise SuiteError(path, getattr(data, "line", 1), None, "a suite must be a mapping with a 'cases' list")
    root = data if isinstance(data, _Map) else _wrap(data)
    _reject_unknown(root, SUITE_KEYS, path, "")

    def err(key: str, message: str, node: Any = root) -> SuiteError:
        line = node.line_of(key.split(".")[-1]) if isinstance(node, _Map) else getattr(node, "line", None)
        return SuiteError(path, line, key, message)

    name = path.name.split(".ft.")[0]
    if "suite" in root:
        try:
            name = _name(root["suite"])
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

    if ("cases" in root) == ("cases_file" in root):
        raise err("cases", "give exactly one of 'cases' (a list) or 'cases_file' (a chat JSONL file)")
    if "cases" in root:
        raw_cases = root["cases"]
        if not isinstance(raw_cases, list) or not raw_cases:
            raise err("cases", "must be a non-empty list of cases")
        cases = [_parse_case(raw, i, path, system, params, default_grader, default_grader_spec,
                             raw_cases.item_lines[i] if isinstance(raw_cases, _List) else None)
                 for i, raw in enumerate(raw_cases)]
    else:
        cases = _cases_from_jsonl(root, path, system, params, default_grader, default_grader_spec)

    seen: dict[str, int] = {}
    for case in cases:
        if case.id in seen:
            raise SuiteError(path, case.line, "id", f"duplicate case id {case.id!r} (first at line {seen[case.id]})")
        seen[case.id] = case.line
    return Suite(name=name, path=path, models=models, system=system, params=params, thresholds=thresholds,
                 cases=cases, judge=judge, description=str(root.get("description", "")), batch=batch,
                 repeat=repeat, pass_if=pass_if, train=train)


def parse_repeat(node: _Map, path: Path, prefix: str) -> tuple[int | None, str | int | None]:
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


def _name(value: Any) -> str:
    """The one rule for case ids and suite names: they name pytest items (split on ``::``) and files."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ValueError("must be a non-empty string")
    name = str(value).strip()
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"{name[:40]!r}...: longer than {MAX_NAME_CHARS} characters")
    if name.startswith(".") or _UNSAFE_NAME_CHARS.search(name):
        raise ValueError(f"{name!r}: may not start with '.' or hold '::', slashes or control characters")
    return name


def _wrap(data: dict) -> _Map:
    wrapped = _Map(data)
    wrapped.line, wrapped.key_lines = 1, {}
    return wrapped


def _join(prefix: str, key: str | None) -> str:
    if not key:
        return prefix
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


def _reject_unknown(node: _Map, allowed: set[str], path: Path, prefix: str) -> None:
    for key in node:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            raise SuiteError(path, node.line_of(key), f"{prefix}{key}", f"unknown key (allowed: {hint})")


def _mapping(node: _Map, key: str, path: Path, prefix: str = "") -> dict:
    value = node.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SuiteError(path, node.line_of(key), f"{prefix}{key}", "must be a mapping")
    return dict(value)


def _params(node: _Map, path: Path, prefix: str = "") -> dict:
    params = _mapping(node, "params", path, prefix)
    for key in params:
        if key in RESERVED_PARAMS:
            line = node["params"].line_of(key) if isinstance(node["params"], _Map) else node.line_of("params")
            raise SuiteError(path, line, f"{prefix}params.{key}", f"reserved: {RESERVED_PARAMS[key]}")
    return params


def _parse_train(root: _Map, path: Path) -> dict | None:
    """``train:``: the data the tuned model is fine-tuned on (the model then comes from its job)."""
    raw = root.get("train")
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = _wrap({"file": raw})
    if not isinstance(raw, _Map):
        raise SuiteError(path, root.line_of("train"), "train", "must be a JSONL path or a mapping with 'file'")
    _reject_unknown(raw, TRAIN_KEYS, path, "train.")
    if not isinstance(raw.get("file"), str):
        raise SuiteError(path, raw.line_of("file"), "train.file", "must be the path of a chat JSONL training file")
    train = _plain(raw)
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
        with _open_regular(Path(source), MAX_CASES_FILE_BYTES) as handle:
            for text in _lines(handle, MAX_CASES_FILE_BYTES):
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
    if isinstance(value, _Map):
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
        return ModelSpec(model=model.strip(), base_url=value.get("base_url"), api_key_env=value.get("api_key_env"),
                         params=_params(value, path, f"{key}."), system=system, examples=examples)
    raise SuiteError(path, line, key, "must be a model id or a mapping with 'model'")


def _parse_models(root: _Map, path: Path, train: dict | None) -> dict[str, ModelSpec | None]:
    raw = root.get("models") or {}
    if not isinstance(raw, dict):
        raise SuiteError(path, root.line_of("models"), "models", "must be a mapping of role to model")
    models: dict[str, ModelSpec | None] = {role: None for role in REQUIRED_ROLES}
    for role, value in raw.items():
        line = raw.line_of(role) if isinstance(raw, _Map) else root.line_of("models")
        if not isinstance(role, str) or not role.isidentifier():
            raise SuiteError(path, line, f"models.{role}", "a model role must be a simple name such as 'tuned'")
        models[role] = None if value is None else _parse_model(value, path, f"models.{role}", line, train)
    return models


def _parse_thresholds(root: _Map, path: Path) -> dict[str, float]:
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


def _check_messages(messages: Any, path: Path, line: int | None, key: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise SuiteError(path, line, key, "must be a non-empty list of {role, content} messages")
    for i, message in enumerate(messages):
        here = messages.item_lines[i] if isinstance(messages, _List) else line
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
                default_spec: Any, line: int | None) -> Case:
    if not isinstance(raw, _Map):
        raise SuiteError(path, line, f"cases[{index}]", "a case must be a mapping with 'id', 'input' and 'expected'")
    _reject_unknown(raw, CASE_KEYS, path, "")
    if raw.get("id") is None:
        raise SuiteError(path, raw.line, "id", f"case #{index + 1} has no 'id'")
    try:
        case_id = _name(raw["id"])
    except ValueError as exc:
        raise SuiteError(path, raw.line_of("id"), "id", str(exc)) from None
    if ("input" in raw) == ("messages" in raw):
        raise SuiteError(path, raw.line, "input", f"case {case_id!r}: give exactly one of 'input' or 'messages'")
    if "expected" not in raw:
        raise SuiteError(path, raw.line, "expected", f"case {case_id!r} has no 'expected'")
    case_system = raw.get("system", system)
    if "input" in raw:
        if not isinstance(raw["input"], str):
            raise SuiteError(path, raw.line_of("input"), "input", "must be a string (the user message)")
        messages = [{"role": "user", "content": raw["input"]}]
    else:
        messages = _check_messages(raw["messages"], path, raw.line_of("messages"), "messages")
    case_params = {**params, **_params(raw, path)}
    grader, spec = default_grader, default_spec
    if "grader" in raw:
        spec = raw["grader"]
        try:
            grader = graders_module.build_grader(spec, base_dir=path.parent)
        except graders_module.GraderError as exc:
            raise SuiteError(path, raw.line_of("grader"), _join("grader", exc.key), str(exc)) from exc
    expected = _plain(raw["expected"])
    try:
        grader.check_expected(expected)
    except graders_module.GraderError as exc:
        raise SuiteError(path, raw.line_of("expected"), "expected", f"case {case_id!r}: {exc}") from exc
    repeat, pass_if = parse_repeat(raw, path, "")
    return Case(id=case_id, messages=_with_system(messages, case_system), expected=expected,
                grader=grader, params=case_params, line=raw.line, grader_spec=_plain(spec),
                repeat=repeat, pass_if=pass_if)


def _plain(value: Any) -> Any:
    """Line-annotated YAML containers back to plain dict/list (they end up in JSON reports)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _cases_from_jsonl(root: _Map, path: Path, system: str | None, params: dict, grader: Any,
                      grader_spec: Any) -> list[Case]:
    """Each line of a chat fine-tuning JSONL file is a case; its last assistant message is the answer."""
    value = root["cases_file"]
    line = root.line_of("cases_file")
    if not isinstance(value, str):
        raise SuiteError(path, line, "cases_file", "must be a path to a JSONL file")
    data_path = path.parent / value
    cases = []
    try:
        with _open_regular(data_path, MAX_CASES_FILE_BYTES) as handle:
            for number, text in enumerate(_lines(handle, MAX_CASES_FILE_BYTES), start=1):
                if not text.strip():
                    continue
                try:
                    cases.append(_jsonl_case(text, number, path, system, params, grader, grader_spec))
                except ValueError as exc:
                    raise SuiteError(path, line, "cases_file", f"{data_path}:{number}: {exc}") from None
    except OSError as exc:
        raise SuiteError(path, line, "cases_file", f"cannot read {data_path}: {exc.strerror or exc}") from exc
    if not cases:
        raise SuiteError(path, line, "cases_file", f"{data_path} holds no cases")
    return cases


def _jsonl_case(text: bytes, number: int, path: Path, system: str | None, params: dict, grader: Any,
                grader_spec: Any) -> Case:
    """One line of a cases_file as a case; a ValueError says what is wrong with the line."""
    try:
        example = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(example, dict):
        raise ValueError("must be a JSON object with a 'messages' list")
    metadata = example.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("metadata: must be an object")
    try:
        messages = _check_messages(example.get("messages"), path, None, "messages")
    except SuiteError as exc:
        raise ValueError(f"{exc.key}: {exc.message}") from None
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if not last:
        raise ValueError("needs an assistant message (the expected answer) after the prompt")
    try:
        case_id = _name(example.get("id") or metadata.get("id") or f"line{number}")
    except ValueError as exc:
        raise ValueError(f"id: {exc}") from None
    expected = messages[last].get("content")
    grader.check_expected(expected)  # a GraderError is a ValueError
    return Case(id=case_id, messages=_with_system(messages[:last], system), expected=expected, grader=grader,
                params=dict(params), line=number, grader_spec=grader_spec)
