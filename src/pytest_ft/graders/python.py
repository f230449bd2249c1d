"""The ``python`` grader: a function of the user's grades, imported from the suite's directory."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import AsyncGrader, Grade, GradeContext, GraderError, SyncGrader, to_grade, unit
from .registry import grader


@grader("python")
def python(*, function: str, threshold: float = 1.0, base_dir: Path | None = None,
           **options: Any) -> SyncGrader | AsyncGrader:
    """Your own function grades: ``function: "package.module:name"`` (or ``package.module.name``).

    It is imported at load time, with the suite's directory on ``sys.path``, and called as
    ``name(output, expected, **options)`` where options are all other keys of the spec. It
    may be ``async`` and may return a Grade, a bool, a float score in [0, 1], a
    ``(bool or float, reason)`` pair, or a dict with ``passed``/``score``/``reason``.
    ``threshold`` (1.0) decides a float score: only a perfect score passes unless you lower
    it. An exception in the function is the case's error, not a fail.
    """
    unit("threshold", threshold)
    fn = _import_callable(function, base_dir)
    try:
        inspect.signature(fn).bind("", None, **options)
    except TypeError as exc:
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        raise GraderError(f"{function} cannot be called as f(output, expected, **options): {exc}",
                          unexpected.group(1) if unexpected else "function") from None
    except ValueError:  # no signature to inspect (some builtins): find out at the first call
        pass

    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
        async def grade(output: str, expected: Any, ctx: GradeContext | None) -> Grade:
            return to_grade(await fn(output, expected, **options), threshold, function)

        return AsyncGrader("python", grade)

    def check(output: str, expected: Any) -> Grade:
        result = fn(output, expected, **options)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close:
                close()
            raise TypeError(f"{function} returned an awaitable: declare it 'async def'")
        return to_grade(result, threshold, function)

    return SyncGrader("python", check)


def _import_callable(ref: str, base_dir: Path | None) -> Callable[..., Any]:
    module_name, _, attribute = ref.partition(":") if ":" in ref else ref.rpartition(".")
    names = [*module_name.split("."), *attribute.split(".")]
    if not module_name or not attribute or not all(n.isidentifier() for n in names):
        raise GraderError(f"function must look like 'package.module:callable', got {ref!r}", "function")
    added = None
    if base_dir is not None:
        added = str(Path(base_dir).resolve())
        if added in sys.path:
            added = None
        else:
            sys.path.insert(0, added)
            importlib.invalidate_caches()
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # a user's module can fail to import in any way
        raise GraderError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}", "function") from exc
    finally:
        if added is not None:
            sys.path.remove(added)
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise GraderError(f"module {module_name!r} has no attribute {attribute!r}", "function") from None
    if not callable(target):
        raise GraderError(f"{ref!r} is not callable", "function")
    return target
