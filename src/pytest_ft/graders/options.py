"""A grader's options are its factory's keyword parameters, checked by pydantic against their annotations.

Specs are written by hand in YAML, so scalars are strict where YAML's guesses bite: ``yes``
is a boolean and not a string, ``1`` neither a boolean nor a string. Numbers are the one
leniency: YAML 1.1 reads ``1e-3`` (no dot) as a string, a trap when writing tolerances.
Messages name the option and say what it must be in the suite's words, not pydantic's.
A user's factory is checked the same way as the built-in ones.
"""

from __future__ import annotations

import difflib
import inspect
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from .base import GraderError


@dataclass(frozen=True)
class _Option:
    hint: Any  # the annotation as written, for messages
    validate: Callable[[Any], Any]  # returns the value, converted where the hint says ("1e-3" to 0.001)
    required: bool


@dataclass(frozen=True)
class Signature:
    options: dict[str, _Option]
    extra: bool  # takes **options: unknown keys pass through unchecked
    base_dir: bool  # wants the suite's directory


_SIGNATURES: dict[Callable[..., Any], Signature] = {}


def signature(factory: Callable[..., Any]) -> Signature:
    """The options ``factory`` takes, each with its pydantic validator (built once per factory)."""
    found = _SIGNATURES.get(factory)
    if found is None:
        try:
            hints = get_type_hints(factory)
        except Exception:  # annotations that do not resolve: leave those options unchecked
            hints = {}
        options, extra, base_dir = {}, False, False
        for name, param in inspect.signature(factory).parameters.items():
            if param.kind is param.VAR_KEYWORD:
                extra = True
            elif name == "base_dir":
                base_dir = True
            elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                hint = hints.get(name, Any)
                options[name] = _Option(hint, _validator(hint), param.default is param.empty)
        found = _SIGNATURES[factory] = Signature(options, extra, base_dir)
    return found


def check_options(type_name: str, factory: Callable[..., Any], options: Mapping[Any, Any]) -> dict[str, Any]:
    """The spec's options as ``factory``'s keyword arguments, or the GraderError naming the first bad one."""
    sig = signature(factory)
    checked: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str):
            raise GraderError(f"option names are strings, got {key!r}", str(key))
        option = sig.options.get(key)
        if option is None:
            if sig.extra:
                checked[key] = value
                continue
            close = difflib.get_close_matches(key, sig.options, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(sig.options) or "none"
            raise GraderError(f"unknown option {key!r} for grader {type_name!r} ({hint}options: {known})", key)
        try:
            checked[key] = option.validate(value)
        except ValueError:  # pydantic's ValidationError
            raise GraderError(_mismatch(type_name, key, option.hint, value), key) from None
    for key, option in sig.options.items():
        if option.required and key not in checked:
            raise GraderError(f"grader {type_name!r} needs option {key!r}", key)
    return checked


def _validator(hint: Any) -> Callable[[Any], Any]:
    # pydantic is imported here, not at the top: pytest runs without suites never pay for it.
    from pydantic import ConfigDict, TypeAdapter

    try:
        adapter = TypeAdapter(_strict(hint), config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:  # a type pydantic has no schema for: unchecked, like an annotation that does not resolve
        return _as_is
    return adapter.validate_python


def _as_is(value: Any) -> Any:
    return value


def _strict(hint: Any) -> Any:
    """``hint`` with its scalars replaced by strict ones, however deep: ``str | list[str]`` and so on."""
    if isinstance(hint, type):
        return _strict_scalars().get(hint, hint)
    origin, args = get_origin(hint), get_args(hint)
    if not args or origin is Literal or origin is Annotated:
        return hint
    args = tuple(_strict(arg) for arg in args)
    return Union[args] if origin is Union or origin is types.UnionType else origin[args]


_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number_text(value: Any) -> Any:
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        return float(value)
    return value


@cache
def _strict_scalars() -> dict[type, Any]:
    from pydantic import AllowInfNan, BeforeValidator, Strict, StrictBool, StrictInt, StrictStr

    number = Annotated[float, BeforeValidator(_number_text), Strict(), AllowInfNan(False)]
    return {bool: StrictBool, int: StrictInt, float: number, str: StrictStr}


def _mismatch(type_name: str, key: str, hint: Any, value: Any) -> str:
    wanted = _describe(hint)
    note = ""
    if "string" in wanted and (isinstance(value, bool) or
                               isinstance(value, list) and any(isinstance(v, bool) for v in value)):
        note = " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote them)"
    return f"option {key!r} of grader {type_name!r} must be {wanted}, got {value!r}{note}"


def _describe(hint: Any) -> str:
    """What an annotation accepts, in a suite author's words: ``str | None`` is "a string or null"."""
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        return " or ".join(_describe(arm) for arm in get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in get_args(hint))
    if hint is list or origin in (list, Sequence):
        args = get_args(hint)
        return f"a list of {_PLURALS.get(args[0], 'values')}" if args else "a list"
    if hint is dict or origin in (dict, Mapping):
        return "a mapping with string keys" if get_args(hint)[:1] == (str,) else "a mapping"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", None: "null",
          type(None): "null"}
_PLURALS = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}
