"""A case's result as one typed record, and whether a model passed it: decided here, once,
for every table, test, gate and renderer.

A model's verdict on a case depends on that model's own outcome and on a failure of the
case as a whole (its recording unreadable, the run crashed on it) — never on another
model's error: a third model answering HTTP 500 says nothing about base or tuned.

A :class:`CaseRecord` is made once, by the case's item, from the runner's result; it crosses
to the process that aggregates (the xdist controller) as JSON, and is aggregated once. Its
suite's facts (:class:`SuiteInfo`) are kept once per suite, not copied into every case.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # no answer to grade: the API, the recording or the run failed
    UNSCORED = "unscored"  # answered, but the grader could not say (an unreadable judge reply)

    def __str__(self) -> str:
        return self.value


def verdict(outcome: Mapping[str, Any] | None, case_error: str | None = None) -> Verdict:
    """The verdict of one model on one case, from its outcome (a report entry or record).

    A report written before verdicts were stored has none; it is derived the same way.
    """
    if not isinstance(outcome, Mapping) or case_error or outcome.get("error"):
        return Verdict.ERROR
    stored = outcome.get("verdict")
    if stored is not None:
        return Verdict(stored)
    if outcome.get("unscored"):
        return Verdict.UNSCORED
    return Verdict.PASS if outcome.get("passed") else Verdict.FAIL


def case_verdict(case: Mapping[str, Any], role: str) -> Verdict:
    """``role``'s verdict on a case of the JSON report (or of a baseline report)."""
    entry = case.get(role)
    if isinstance(entry, Mapping) and "verdict" not in entry and "error" not in case:
        # A report from before verdicts: its case errors were not told apart by model.
        return verdict(entry, "; ".join(case.get("errors") or []) or None)
    return verdict(entry, case.get("error"))


def flip(case: Mapping[str, Any], base: str = "base", tuned: str = "tuned") -> str | None:
    """``"fixed"`` (base failed, tuned passed), ``"regressed"`` (the reverse), or None: no flip,
    or a side that cannot be compared (errored or unscored)."""
    pair = (case_verdict(case, base), case_verdict(case, tuned))
    if pair == (Verdict.FAIL, Verdict.PASS):
        return "fixed"
    if pair == (Verdict.PASS, Verdict.FAIL):
        return "regressed"
    return None


def agreement(case: Mapping[str, Any], role: str) -> bool | None:
    """Whether ``role`` agreed with the reference model on a case; None when it cannot be told
    (the case or either model errored, or the agreement could not be graded)."""
    entry = case.get(role)
    if case_verdict(case, role) is Verdict.ERROR or not isinstance(entry, Mapping):
        return None
    graded = entry.get("agreement")
    return graded.get("agreed") if isinstance(graded, Mapping) else None


def reference_flip(case: Mapping[str, Any], role: str, reference: str = "reference") -> str | None:
    """What ``role`` did with what the reference model got right: ``"kept"``, ``"lost"`` or
    ``"newly_right"``, or None (neither was right, or a side cannot be compared).

    On a case with a labelled answer "right" is passing it; without one the reference's answer
    is the expected one, so the reference is right by definition and the candidate keeps it by
    agreeing.
    """
    if not case.get("labelled", True):
        agreed = agreement(case, role)
        return None if agreed is None else ("kept" if agreed else "lost")
    pair = (case_verdict(case, reference), case_verdict(case, role))
    return {(Verdict.PASS, Verdict.PASS): "kept", (Verdict.PASS, Verdict.FAIL): "lost",
            (Verdict.FAIL, Verdict.PASS): "newly_right"}.get(pair)


@dataclass(frozen=True)
class SuiteInfo:
    """What the report says of a suite, whichever of its cases it hears of first."""

    suite: str
    file: str
    thresholds: Mapping[str, float]
    models: Mapping[str, str]  # role -> model id, in the suite's order
    reference: str | None = None  # the role of the model being replaced
    judge: str | None = None
    training: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.file}::{self.suite}"

    @functools.cached_property
    def as_json(self) -> dict:
        """Plain data, made once: every case of the suite carries the same (read only)."""
        return asdict(self)


@dataclass
class CaseRecord:
    """One case's result. ``outcomes`` maps each role to its outcome in the JSON report's form
    (answer, grade, tokens, latency, error...); ``error`` is a failure of the case as a whole."""

    suite: SuiteInfo
    id: str
    nodeid: str
    input: str
    expected: Any
    outcomes: dict[str, dict]
    labelled: bool = True
    judge_model: str | None = None
    judge_usage: dict | None = None
    cassette: str | None = None
    errors: list[str] = field(default_factory=list)
    error: str | None = None
    batch: bool = False
    preference: dict | None = None

    def verdict(self, role: str) -> Verdict:
        return verdict(self.outcomes.get(role), self.error)

    def to_json(self) -> dict:
        """Plain data, for xdist to carry: a dataclass would not cross."""
        return {f.name: self.suite.as_json if f.name == "suite" else getattr(self, f.name) for f in _RECORD_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], suites: dict[str, SuiteInfo] | None = None) -> "CaseRecord":
        """The record again; with ``suites``, every case of a suite shares one :class:`SuiteInfo`."""
        info = SuiteInfo(**data["suite"])
        if suites is not None:
            info = suites.setdefault(info.key, info)
        return cls(**{**data, "suite": info})


_RECORD_FIELDS = fields(CaseRecord)
