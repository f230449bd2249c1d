"""Did a model pass a case? Decided here, once, for every table, test, gate and renderer.

A model's verdict on a case depends on that model's own outcome and on a failure of the
case as a whole (its recording unreadable, the run crashed on it) — never on another
model's error: a third model answering HTTP 500 says nothing about base or tuned.
"""

from __future__ import annotations

import enum
from typing import Any, Mapping


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
