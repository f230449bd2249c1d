"""Grader types by name, and building a grader from its spec.

Specs come from YAML, written by hand, so :func:`build_grader` checks everything it can
before a single model call: the type, every option against the factory's signature, and
whatever the factory itself checks (regexes, schemas, thresholds, imports). A mistake
fails the suite's collection with the offending key, never a run that already cost money.

Built graders are immutable and cached by spec, so a suite whose 10,000 cases each carry
the same grader spec builds it once.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from .base import AsyncGrader, GradeContext, Grader, GraderError, to_grade
from .options import check_options, signature

Factory = TypeVar("Factory", bound=Callable[..., Any])

GRADERS: dict[str, Callable[..., Any]] = {}
"""Grader type name -> factory. A factory takes the spec's options as keyword arguments
(plus ``base_dir`` if it declares it) and returns a grader, or a bare function that grades."""

_BUILT: dict[Any, Grader] = {}
_BUILT_MAX = 4096


def register(name: str, factory: Callable[..., Any] | None = None) -> Any:
    """Add ``factory`` as grader type ``name``, replacing any factory of that name.

    This is the function the ``pytest_ft_register_graders`` hook receives. Given a name
    alone it is the decorator :func:`grader`, as the README documents it.
    """
    if factory is None:
        return partial(register, name)
    GRADERS[name] = factory
    _BUILT.clear()  # cached graders may have been built by a factory this one replaces
    return factory


def grader(name: str) -> Callable[[Factory], Factory]:
    """Register the decorated factory as grader type ``name``; for built-in and user graders alike.

    The factory's keyword parameters are the grader's options: a parameter without default
    is required, and its annotation (``bool``, ``float``, ``str | None``, ``list[str]``,
    ``Literal[...]``...) is checked against the spec at build time. It returns a
    :class:`SyncGrader`, an :class:`AsyncGrader`, or a bare function
    ``grade(output, expected, ctx)``, sync or async, returning anything a python grader may.
    """
    return partial(register, name)


def build_grader(spec: str | Mapping[str, Any] | Sequence[Any], *, base_dir: Path | str | None = None) -> Grader:
    """Build (or fetch from cache) the grader a spec describes, or raise :class:`GraderError`.

    ``spec`` is a type name (``"exact"``), a mapping (``{"type": "regex", "pattern": "^NEG"}``)
    or a list of specs, which must all pass. ``base_dir`` is the suite file's directory:
    python graders import from it and JSON Schema files are read relative to it.
    """
    try:
        key = (_freeze(spec), None if base_dir is None else str(base_dir))
    except TypeError:  # a value we cannot hash: build without caching
        return _build(spec, base_dir)
    built = _BUILT.get(key)
    if built is None:
        built = _build(spec, base_dir)
        if len(_BUILT) >= _BUILT_MAX:
            _BUILT.clear()
        _BUILT[key] = built
    return built


def build_children(specs: Sequence[Any], base_dir: Path | str | None, prefix: str) -> list[tuple[str, Grader]]:
    """The graders of a combination, labelled by type; an error's key is prefixed ``prefix[i]``."""
    if not specs:
        raise GraderError("needs at least one grader", prefix or None)
    children = []
    for i, spec in enumerate(specs):
        try:
            children.append((_label(spec), build_grader(spec, base_dir=base_dir)))
        except GraderError as exc:
            raise exc.with_prefix(f"{prefix}[{i}]") from exc
    return children


def _freeze(value: Any) -> Any:
    # Tagging scalars with their type keeps True, 1 and 1.0 apart: they are equal in Python
    # but not as options (``ignore_case: 1`` must still be rejected after ``ignore_case: true``).
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return (kind, value)
    if isinstance(value, Mapping):
        return (dict, tuple((_freeze(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (list, tuple(_freeze(v) for v in value))
    raise TypeError(kind.__name__)


def _build(spec: Any, base_dir: Path | str | None) -> Grader:
    if isinstance(spec, str):
        type_name, options = spec, {}
    elif isinstance(spec, Mapping):
        if "type" not in spec:
            raise GraderError(f"a grader mapping needs a 'type' (one of {_known()})", "type")
        type_name = spec["type"]
        if not isinstance(type_name, str):
            raise GraderError(f"grader type must be a string, got {type_name!r}", "type")
        options = {k: v for k, v in spec.items() if k != "type"}
    elif isinstance(spec, (list, tuple)):
        from .combine import every  # here, not at the top: combine builds on this module

        return every(build_children(spec, base_dir, ""))
    else:
        raise GraderError(f"a grader is a type name, a mapping with a 'type', or a list of graders; got {spec!r}")
    factory = GRADERS.get(type_name)
    if factory is None:
        close = difflib.get_close_matches(type_name, GRADERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise GraderError(f"unknown grader type {type_name!r} ({hint}known: {_known()})", "type")
    kwargs = check_options(type_name, factory, options)
    if signature(factory).base_dir:
        kwargs["base_dir"] = None if base_dir is None else Path(base_dir)
    try:
        made = factory(**kwargs)
    except GraderError:
        raise
    except ValueError as exc:
        raise GraderError(str(exc)) from exc
    return _as_grader(made, type_name)


def _as_grader(made: Any, name: str) -> Grader:
    """What a factory returned, with the full Grader surface: a user's factory may return a bare function."""
    if hasattr(made, "uses_judge") and hasattr(made, "check_expected"):
        return made
    if not callable(made):
        raise GraderError(f"the factory of grader {name!r} returned {made!r}, not a grader")
    who = f"grader {name!r}"

    async def grade(output: str, expected: Any, ctx: GradeContext | None) -> Any:
        result = made(output, expected, ctx)
        if inspect.isawaitable(result):
            result = await result
        return to_grade(result, 1.0, who)

    return AsyncGrader(name, grade, uses_judge=bool(getattr(made, "uses_judge", False)),
                       judge_model=getattr(made, "judge_model", None))


def _known() -> str:
    return ", ".join(sorted(GRADERS))


def _label(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return str(spec.get("type"))
    return "all"
