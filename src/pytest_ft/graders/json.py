"""The ``json`` grader: the answer is JSON that equals ``expected``, contains it, or fits a JSON Schema."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from .base import NO_EXPECTED, Grade, GraderError, SyncGrader, clip
from .registry import grader

_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_JSON_START = re.compile(r"[\[{]")


def extract_json(text: str, *, strict: bool = False) -> Any:
    """The JSON value in a model's answer; ``ValueError`` with json's message if there is none.

    Models wrap JSON in a ```json fence or a sentence of prose even when told not to, and
    that is rarely what a test is about; ``strict`` is for suites where it is.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty answer")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        error = exc
    if strict:
        raise ValueError(str(error))
    fenced = _FENCE.search(text)
    if fenced:
        try:
            return json.loads(fenced.group(1))
        except json.JSONDecodeError as exc:
            error = exc
    decoder = json.JSONDecoder()
    for tries, start in enumerate(_JSON_START.finditer(text)):
        if tries == 20:  # bounded: a long non-JSON answer must not cost quadratic time
            break
        try:
            return decoder.raw_decode(text, start.start())[0]
        except json.JSONDecodeError:
            continue
    raise ValueError(str(error))


@grader("json")
def json_grader(*, mode: Literal["equal", "subset", "schema"] | None = None, schema: dict[str, Any] | str | None = None,
                strict: bool = False, base_dir: Path | None = None) -> SyncGrader:
    """The answer is JSON, and equals ``expected``, contains it, or fits a JSON Schema.

    Options: ``mode``: ``equal`` (default; key order is ignored, list order is not, and
    ``true`` is not ``1``), ``subset`` (every key of ``expected`` is in the answer with a
    matching value, recursively; extra keys are fine; lists must have the same length and
    match item by item) or ``schema`` (the default when ``schema`` is given); ``schema``: a
    JSON Schema, inline or the path of a .json/.yaml file relative to the suite, checked at
    load time, with ``format`` assertions on; ``strict`` (false): when true the answer must
    be JSON and nothing else, otherwise a ```json fence or prose around the value is allowed.
    ``expected`` is a mapping or list, or a string holding JSON text. In equal and subset
    modes the score is the fraction of expected leaf values that match, a useful partial
    credit for extraction tasks; it passes only when all do.
    """
    if mode is None:
        mode = "schema" if schema is not None else "equal"
    if mode == "schema":
        if schema is None:
            raise GraderError("mode 'schema' needs a 'schema' (a JSON Schema, or the path of a file holding one)",
                              "schema")
        return _schema_grader(_schema_validator(schema, base_dir), strict)
    if schema is not None:
        raise GraderError(f"'schema' is only used with mode 'schema' (mode is {mode!r})", "schema")
    subset = mode == "subset"
    passed_reason = "JSON contains the expected values" if subset else "JSON equal"

    def prepare(expected: Any) -> Any:
        if expected is None:
            raise GraderError(NO_EXPECTED, "expected")
        if isinstance(expected, str):
            try:
                return _json_text(expected)
            except json.JSONDecodeError as exc:
                raise GraderError(f"expected is a string but not JSON text ({exc})", "expected") from None
        return expected

    def check(output: str, expected: Any) -> Grade:
        try:
            data = extract_json(output, strict=strict)
        except ValueError as exc:
            return Grade(False, 0.0, f"not JSON: {exc}")
        differences: list[str] = []
        good, total = _diff(expected, data, "$", subset, differences)
        if not differences:
            return Grade(True, 1.0, passed_reason)
        more = f" (+{len(differences) - 3} more)" if len(differences) > 3 else ""
        return Grade(False, good / total, "; ".join(differences[:3]) + more)

    return SyncGrader("json", check, prepare)


@lru_cache(maxsize=4096)
def _json_text(text: str) -> Any:
    return json.loads(text)


def _diff(expected: Any, got: Any, path: str, subset: bool, out: list[str]) -> tuple[int, int]:
    """Appends differences to ``out``; returns (matching leaves, compared leaves)."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            out.append(f"{path}: expected an object, got {_short(got)}")
            return 0, _leaves(expected)
        good = total = 0
        for key, value in expected.items():
            where = _key_path(path, key)
            if key not in got:
                out.append(f"{where}: missing")
                total += _leaves(value)
            else:
                g, t = _diff(value, got[key], where, subset, out)
                good, total = good + g, total + t
        if not subset:
            for key in [k for k in got if k not in expected]:
                out.append(f"{_key_path(path, key)}: unexpected")
                total += 1
        return (good, total) if total else (1, 1)
    if isinstance(expected, list):
        if not isinstance(got, list):
            out.append(f"{path}: expected an array, got {_short(got)}")
            return 0, _leaves(expected)
        if len(got) != len(expected):
            out.append(f"{path}: expected {len(expected)} items, got {len(got)}")
            return 0, _leaves(expected)
        good = total = 0
        for i, (e, g_) in enumerate(zip(expected, got)):
            g, t = _diff(e, g_, f"{path}[{i}]", subset, out)
            good, total = good + g, total + t
        return (good, total) if total else (1, 1)
    if _same_scalar(expected, got):
        return 1, 1
    out.append(f"{path}: expected {_short(expected)}, got {_short(got)}")
    return 0, 1


def _same_scalar(a: Any, b: Any) -> bool:
    # JSON true is not 1, although Python's True == 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b and (type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))))


def _leaves(value: Any) -> int:
    if isinstance(value, dict) and value:
        return sum(_leaves(v) for v in value.values())
    if isinstance(value, list) and value:
        return sum(_leaves(v) for v in value)
    return 1


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _schema_validator(schema: dict[str, Any] | str, base_dir: Path | None) -> Any:
    import jsonschema  # here, not at the top: slow to import, and only schema mode needs it

    if isinstance(schema, str):
        path = Path(schema)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise GraderError(f"cannot read schema file {str(path)!r}: {exc.strerror or exc}", "schema") from None
        try:
            schema = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise GraderError(f"schema file {str(path)!r} is not valid JSON/YAML: {exc}", "schema") from None
        if not isinstance(schema, (dict, bool)):
            raise GraderError(f"schema file {str(path)!r} does not hold a JSON Schema object", "schema")
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise GraderError(f"invalid JSON Schema: {exc.message}" + (f" (at {where})" if where else ""),
                          "schema") from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _schema_grader(validator: Any, strict: bool) -> SyncGrader:
    from jsonschema.exceptions import best_match

    def check(output: str, expected: Any) -> Grade:
        try:
            data = extract_json(output, strict=strict)
        except ValueError as exc:
            return Grade(False, 0.0, f"not JSON: {exc}")
        error = best_match(validator.iter_errors(data))
        if error is None:
            return Grade(True, 1.0, "matches the schema")
        return Grade(False, 0.0, f"schema: {error.json_path}: {clip(error.message, 120)}")

    return SyncGrader("json", check)
