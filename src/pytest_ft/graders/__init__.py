"""Graders: does a model's answer to one case pass?

A grader is built once from its spec (at suite load) and then called once per answer:
``await grader(output, expected, ctx) -> Grade``. Every grader returns the same three
things (passed, a score in [0, 1], a short reason), so reports can compare base and tuned
models case by case whatever the grading method.

Each grader type is a factory registered with ``@grader("name")``: its typed keyword
arguments are the spec's options, checked before any model call, and it returns a closure
wrapped as a :class:`SyncGrader` (no I/O) or an :class:`AsyncGrader`. One module per family:
``text`` (exact, choices, contains, not_contains, regex), ``json``, ``numeric``,
``similarity``, ``tool_call``, ``judge``, ``python``, ``combine`` (all, any, weighted). Importing this
package registers them all; plugins add their own through the ``pytest_ft_register_graders``
hook or the same decorator.

Graders other than ``judge`` do no I/O: a run grades tens of thousands of answers and the
per-call cost must stay in microseconds.
"""

from . import combine, json, judge, numeric, python, similarity, text, tool_call  # noqa: F401  (importing registers them)
from .base import AsyncGrader, Grade, GradeContext, Grader, GraderError, JudgeUnavailable, SyncGrader
from .judge import JUDGE_SYSTEM
from .registry import GRADERS, build_grader, grader, register
from .similarity import edit_similarity, lcs_length, levenshtein, rouge_l, token_f1

__all__ = [
    "GRADERS", "JUDGE_SYSTEM", "AsyncGrader", "Grade", "GradeContext", "Grader", "GraderError", "JudgeUnavailable",
    "SyncGrader", "build_grader", "edit_similarity", "grader", "lcs_length", "levenshtein", "register", "rouge_l",
    "token_f1",
]
