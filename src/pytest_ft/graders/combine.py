"""Graders made of graders: ``all``, ``any`` and ``weighted``; a YAML list of graders means ``all``.

Children that need no I/O run first and synchronously, before any judge call, which an
earlier verdict may make unnecessary (``all`` stops at the first fail, ``any`` at the first pass).

An *unscored* child (a judge reply that could not be read) is neither a pass nor a fail: ``all``
still fails on any scored fail, ``any`` still passes on any scored pass, and otherwise the
combination is unscored too; ``weighted`` is unscored as soon as one of its children is, since
its mean would need that child's score. The reason names the unscored children.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .base import AsyncGrader, Grade, GradeContext, Grader, GraderError, SyncGrader, unit, unscored
from .registry import build_children, grader

Children = list[tuple[str, Grader]]  # (label, grader): the label names the child in reasons


@grader("all")
def all_of(*, graders: list[Any], base_dir: Path | None = None) -> Grader:
    """Passes iff every grader in ``graders`` passes; score = the lowest. A plain YAML list of graders means this.

    Fails if any scored child fails; otherwise unscored if any child is unscored.
    """
    return every(build_children(graders, base_dir, "graders"))


@grader("any")
def any_of(*, graders: list[Any], base_dir: Path | None = None) -> Grader:
    """Passes iff at least one grader in ``graders`` passes (alternative acceptable forms); score = the highest.

    Passes if any scored child passes; otherwise unscored if any child is unscored.
    """
    return _sequential("any", build_children(graders, base_dir, "graders"), decides_on=True, combine=max)


def every(children: Children) -> Grader:
    """``all`` of ``children``; a single child is itself."""
    if len(children) == 1:
        return children[0][1]
    return _sequential("all", children, decides_on=False, combine=min)


def _sequential(name: str, children: Children, *, decides_on: bool,
                combine: Callable[[Iterable[float]], float]) -> AsyncGrader:
    """Children in cheap-first order, stopping at the first whose verdict is ``decides_on``."""
    # (position in the spec, label, grader): positions name unscored children in reasons
    order = sorted(((i, label, g) for i, (label, g) in enumerate(children)),
                   key=lambda c: type(c[2]) is not SyncGrader)

    async def grade(output: str, expected: Any, ctx: GradeContext | None) -> Grade:
        results: list[tuple[int, str, Grade]] = []
        for i, label, g in order:
            r = g.grade(output, expected) if type(g) is SyncGrader else await g(output, expected, ctx)
            results.append((i, label, r))
            if r.passed is decides_on and not r.unscored:
                score = combine(x.score for _, _, x in results if not x.unscored)
                return Grade(r.passed, score, f"{label}: {r.reason}")
        if len(results) == 1:
            return results[0][2]
        reasons = "; ".join(f"{label}: {r.reason}" for _, label, r in results)
        if any(r.unscored for _, _, r in results):
            return unscored(f"{_unscored_labels(results)} unscored and no scored {'pass' if decides_on else 'fail'}: "
                            + reasons)
        return Grade(not decides_on, combine(x.score for _, _, x in results),
                     reasons if not decides_on else "none passed: " + reasons)

    return _combination(name, grade, children)


@grader("weighted")
def weighted(*, graders: list[Any], threshold: float = 0.7, base_dir: Path | None = None) -> AsyncGrader:
    """Score = the weighted mean of the graders' scores; passes iff it is >= ``threshold`` (0.7).

    Each item of ``graders`` may carry a ``weight`` (a number > 0, default 1) next to its type.
    Unscored if any child is unscored (the reason says which).
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
        if any(r.unscored for r in grades):
            labelled = [(i, label, r) for i, ((label, _), r) in enumerate(zip(children, grades))]
            return unscored(f"{_unscored_labels(labelled)} unscored, so no weighted score: "
                            + "; ".join(f"{label}: {r.reason}" for _, label, r in labelled if r.unscored))
        score = sum(w * r.score for w, r in zip(weights, grades)) / sum(weights)
        passed = score >= threshold - 1e-12
        parts = ", ".join(f"{label} {r.score:.2f}×{w:g}" for (label, _), w, r in zip(children, weights, grades))
        reason = f"weighted {score:.2f} {'>=' if passed else '<'} {threshold:g} ({parts})"
        failed = [f"{label}: {r.reason}" for (label, _), r in zip(children, grades) if not r.passed]
        return Grade(passed, score, "; ".join([reason, *failed]))

    return _combination("weighted", grade, children)


def _unscored_labels(results: list[tuple[int, str, Grade]]) -> str:
    """Which children are unscored, by label and 1-based position in the spec: ``judge #2, python #3``."""
    return ", ".join(f"{label} #{i + 1}" for i, label, r in sorted(results, key=lambda x: x[0]) if r.unscored)


def _combination(name: str, grade: Callable[[str, Any, GradeContext | None], Awaitable[Grade]],
                 children: Children) -> AsyncGrader:
    """The combination as a grader: a case's expected value must suit every child; it uses the judge if one does."""

    def check_expected(expected: Any) -> None:
        for _, child in children:
            child.check_expected(expected)

    return AsyncGrader(name, grade, check_expected=check_expected,
                       uses_judge=any(getattr(g, "uses_judge", False) for _, g in children))
