"""What every grader is and returns: the Grader protocol, its two shapes, and the Grade verdict.

A grader factory (registered with ``@grader("name")``) returns a closure; wrapping it in
:class:`SyncGrader` or :class:`AsyncGrader` gives it the surface the rest of pytest-ft reads:
``await g(output, expected, ctx)``, ``g.check_expected(expected)``, ``g.uses_judge``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Grade:
    """The verdict on one answer. ``score`` is in [0, 1]; ``reason`` is one short human line.

    ``unscored``: the grader could not say (a judge reply it cannot read). Such an answer is
    neither right nor wrong: it is left out of accuracy and significance, and counted apart.
    """

    passed: bool
    score: float
    reason: str = ""
    unscored: bool = False

    def to_dict(self) -> dict[str, Any]:
        entry = {"passed": self.passed, "score": self.score, "reason": self.reason}
        return {**entry, "unscored": True} if self.unscored else entry


def unscored(reason: str) -> Grade:
    return Grade(False, 0.0, reason, unscored=True)


class GraderError(ValueError):
    """A grader spec is invalid. ``key`` names the offending key, e.g. ``'pattern'`` or ``'graders[1].threshold'``.

    ``str(error)`` is the message alone, so a caller can print ``<where>.<key>: <message>``.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key

    def with_prefix(self, prefix: str) -> GraderError:
        """The error as seen from an enclosing spec: ``pattern`` under ``graders[1]`` is ``graders[1].pattern``."""
        if not self.key:
            key = prefix
        elif self.key.startswith("["):
            key = f"{prefix}{self.key}"
        else:
            key = f"{prefix}.{self.key}" if prefix else self.key
        return GraderError(self.message, key or None)


class JudgeUnavailable(RuntimeError):
    """A ``judge`` grader ran but the suite configures no judge model: the case is an error, not a fail."""


@dataclass
class GradeContext:
    """What a grader may need beyond the answer.

    ``judge`` sends chat messages to the judge model and returns its text; it is called as
    ``judge(messages)`` or, when a grader overrides the judge model, ``judge(messages, model="...")``.
    """

    messages: list[dict] = field(default_factory=list)
    judge: Callable[..., Awaitable[str]] | None = None
    # The answer's tool calls, each {"id", "name", "arguments" (parsed, or None when the model's
    # JSON is malformed), "raw_arguments" (the string as sent), "error" (why it did not parse)};
    # None when the model called no tool.
    tool_calls: list[dict] | None = None
    tools: list[dict] | None = None  # the tools the request offered (OpenAI's "tools" parameter)


class Grader(Protocol):
    """Anything :func:`build_grader` returns.

    ``check_expected`` raises ``GraderError(key="expected")`` for a case this grader cannot
    grade, so a loader rejects it before any model call. ``uses_judge`` tells the runner the
    grader calls the judge, ``judge_model`` which model it asks for (None: the suite's).
    """

    name: str
    uses_judge: bool
    judge_model: str | None

    async def __call__(self, output: str | None, expected: Any, ctx: GradeContext | None = None) -> Grade: ...

    def check_expected(self, expected: Any) -> None: ...


class SyncGrader:
    """A grader that needs no I/O. Every built-in grader but ``judge`` and the combinations is one.

    ``prepare(expected)`` turns the case's expected value into what ``check`` compares
    against, raising ``GraderError(key="expected")`` when the case cannot be graded this way;
    ``check_expected`` runs it alone. ``__call__`` is async only to fit the Grader protocol:
    a combination calls ``grade`` directly, saving a coroutine per answer.
    """

    __slots__ = ("name", "_check", "_prepare")
    uses_judge = False
    judge_model = None

    def __init__(self, name: str, check: Callable[[str, Any], Grade],
                 prepare: Callable[[Any], Any] | None = None):
        self.name, self._check, self._prepare = name, check, prepare

    def grade(self, output: str | None, expected: Any) -> Grade:
        prepared = expected if self._prepare is None else self._prepare(expected)
        return self._check("" if output is None else output, prepared)

    async def __call__(self, output: str | None, expected: Any, ctx: GradeContext | None = None) -> Grade:
        return self.grade(output, expected)

    def check_expected(self, expected: Any) -> None:
        if self._prepare is not None:
            self._prepare(expected)

    def __repr__(self) -> str:
        return f"<grader {self.name}>"


class AsyncGrader:
    """A grader that awaits something: the judge, a user's async function, or child graders.

    ``grade(output, expected, ctx)`` receives ``""`` for a missing output; ``check_expected``
    is the closure that vets a case's expected value, if the grader has one.
    """

    __slots__ = ("name", "_grade", "_check_expected", "uses_judge", "judge_model")

    def __init__(self, name: str, grade: Callable[[str, Any, GradeContext | None], Awaitable[Grade]], *,
                 check_expected: Callable[[Any], None] | None = None, uses_judge: bool = False,
                 judge_model: str | None = None):
        self.name, self._grade, self._check_expected = name, grade, check_expected
        self.uses_judge, self.judge_model = uses_judge, judge_model

    async def __call__(self, output: str | None, expected: Any, ctx: GradeContext | None = None) -> Grade:
        return await self._grade("" if output is None else output, expected, ctx)

    def check_expected(self, expected: Any) -> None:
        if self._check_expected is not None:
            self._check_expected(expected)

    def __repr__(self) -> str:
        return f"<grader {self.name}" + (f" model={self.judge_model!r}>" if self.judge_model else ">")


def to_grade(result: Any, threshold: float, who: str) -> Grade:
    """Whatever a user's function returned, as a Grade; a TypeError/ValueError if it makes no sense."""
    if isinstance(result, Grade):
        return result
    reason = None
    if isinstance(result, Mapping):
        if not ({"passed", "score"} & result.keys()) or result.keys() - {"passed", "score", "reason"}:
            raise TypeError(f"{who} returned {result!r}: a dict needs 'passed' and/or 'score', and 'reason'")
        score = result.get("score")
        passed = result.get("passed")
        reason = result.get("reason")
        if score is not None:
            score = _user_score(score, who)
        if passed is None:
            passed = score >= threshold
        elif not isinstance(passed, bool):
            raise TypeError(f"{who} returned passed={passed!r}, not a bool")
        return Grade(passed, float(passed) if score is None else score, str(reason or f"{who} returned {result!r}"))
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
        result, reason = result
    if isinstance(result, bool):
        return Grade(result, float(result), reason or f"{who} returned {result}")
    if isinstance(result, (int, float)):
        score = _user_score(result, who)
        passed = score >= threshold
        return Grade(passed, score, reason or f"{who} scored {score:.2f} ({'>=' if passed else '<'} {threshold:g})")
    raise TypeError(f"{who} returned {type(result).__name__} {result!r}; expected a Grade, bool, "
                    f"float in [0, 1], (bool, reason) or a dict with passed/score/reason")


def _user_score(value: Any, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{who} returned score {value!r}, not a number")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{who} returned score {value!r}, outside [0, 1]")
    return float(value)


# Helpers the grader families share: range checks at build time, reason lines at grade time.

NO_EXPECTED = "this grader compares with 'expected', but the case's expected is empty (null)"


def unit(name: str, value: float) -> float:
    """``value`` if it is in [0, 1], else the GraderError that names option ``name``."""
    if not 0.0 <= value <= 1.0:
        raise GraderError(f"{name} must be between 0 and 1, got {value:g}", name)
    return value


def boolean_expected(value: bool) -> GraderError:
    """The error for YAML's ``expected: no``, which arrives as False where text was meant."""
    return GraderError(f"expected is a boolean ({value!r}): YAML reads unquoted yes/no/on/off/true/false as "
                       "booleans; quote it, e.g. 'no'", "expected")


def quote(text: str, limit: int = 80) -> str:
    """``text`` quoted for a reason line: one line, at most ``limit`` characters."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text)


def clip(text: str, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters, unquoted."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
