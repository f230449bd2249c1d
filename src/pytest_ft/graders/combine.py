"""Graders made of graders: ``all``, ``any`` and ``weighted``; a YAML list of graders means ``all``.

Children that need no I/O run first and synchronously, before any judge call, which an
earlier verdict may make unnecessary (``all`` stops at the first fail, ``any`` at the first pass).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .base import AsyncGrader, Grade, GradeContext, Grader, GraderError, SyncGrader, unit
from .registry import build_children, grader

Children = list[tuple[str, Grader]]  # (label, grader): the label names the child in reasons


@grader("all")
def all_of(*, graders: list[Any], base_dir: Path | None = None) -> Grader:
    """Passes iff every grader in ``graders`` passes; score = the lowest. A plain YAML list of graders means this."""
    return every(build_children(graders, base_dir, "graders"))


@grader("any")
def any_of(*, graders: list[Any], base_dir: Path | None = None) -> Grader:
    """Passes iff at least one grader in ``graders`` passes (alternative acceptable forms); score = the highest."""
    return _sequential("any", build_children(graders, base_dir, "graders"), decides_on=True, combine=max)


def every(children: Children) -> Grader:
    """``all`` of ``children``; a single child is itself."""
    if len(children) == 1:
        return children[0][1]
    return _sequential("all", children, decides_on=False, combine=min)


def _sequential(name: str, children: Children, *, decides_on: bool,
                combine: Callable[[Iterable[float]], float]) -> AsyncGrader:
    """Children in cheap-first order, stopping at the first whose verdict is ``decides_on``."""
    order = sorted(children, key=lambda c: type(c[1]) is not SyncGrader)

    async def grade(output: str, expected: Any, ctx: GradeContext | None) -> Grade:
        results = []
        for label, g in order:
            r = g.grade(output, expected) if type(g) is SyncGrader else await g(output, expected, ctx)
            results.append((label, r))
            if r.passed is decides_on:
                return Grade(r.passed, combine(x.score for _, x in results), f"{label}: {r.reason}")
        if len(results) == 1:
            return results[0][1]
        reasons = "; ".join(f"{label}: {r.reason}" for label, r in results)
        return Grade(not decides_on, combine(x.score for _, x in results),
                     reasons if not decides_on else "none passed: " + reasons)

    return _combination(name, grade, children)


@grader("weighted")
def weighted(*, graders: list[Any], threshold: float = 0.7, base_dir: Path | None = None) -> AsyncGrader:
    """Score = the weighted mean of the graders' scores; passes iff it is >= ``threshold`` (0.7).

    Each item of ``graders`` may carry a ``weight`` (a number > 0, default 1) next to its type.
    """
    unit("threshold", threshold)
    specs, weights = [], []
    for i, spec in enumerate(graders):
        weight: Any = 1.0
        if isinstance(spec, Mapping) and "weight" in spec:
            weight = spec["weight"]
            spec = {k: v for k, v in spec.items() if k != "weight"}
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < math.inf:
                raise GraderError(f"weight must be a number > 0, got {weight!r}", f"graders[{i}].weight")
        specs.append(spec)
        weights.append(float(weight))
    children = build_children(specs, base_dir, "graders")

    async def grade(output: str, expected: Any, ctx: GradeContext | None) -> Grade:
        results: list[Grade | None] = [None] * len(children)
        pending = []
        for i, (_, g) in enumerate(children):
            if type(g) is SyncGrader:
                results[i] = g.grade(output, expected)
            else:
                pending.append((i, g(output, expected, ctx)))
        if pending:  # every score is needed, so judge calls may as well run concurrently
            for (i, _), r in zip(pending, await asyncio.gather(*(c for _, c in pending))):
                results[i] = r
        grades: list[Grade] = results  # type: ignore[assignment]
        score = sum(w * r.score for w, r in zip(weights, grades)) / sum(weights)
        passed = score >= threshold - 1e-12
        parts = ", ".join(f"{label} {r.score:.2f}×{w:g}" for (label, _), w, r in zip(children, weights, grades))
        reason = f"weighted {score:.2f} {'>=' if passed else '<'} {threshold:g} ({parts})"
        failed = [f"{label}: {r.reason}" for (label, _), r in zip(children, grades) if not r.passed]
        return Grade(passed, score, "; ".join([reason, *failed]))

    return _combination("weighted", grade, children)


def _combination(name: str, grade: Callable[[str, Any, GradeContext | None], Awaitable[Grade]],
                 children: Children) -> AsyncGrader:
    """The combination as a grader: a case's expected value must suit every child; it uses the judge if one does."""

    def check_expected(expected: Any) -> None:
        for _, child in children:
            child.check_expected(expected)

    return AsyncGrader(name, grade, check_expected=check_expected,
                       uses_judge=any(getattr(g, "uses_judge", False) for _, g in children))
