"""What got worse since the model we ship today? Compare a run with an earlier JSON report.

A fine-tuned model is rarely tuned once, and an aggregate accuracy hides a case that flipped from
pass to fail. ``--ft-baseline PATH`` takes an earlier ``--ft-report`` (say, the one CI saved for
the model in production) and this module lists, per suite, the cases that regressed, the ones
newly fixed, and the cases added or removed — so a gate can say "no case that works today may
break" (``max_regressions: 0``).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from ..results import case_verdict


class BaselineError(Exception):
    """The baseline file cannot be used; the message names the file and says why."""


def load_baseline(path: str | Path) -> dict:
    """Read an earlier pytest-ft JSON report, or raise :class:`BaselineError` naming the file.

    Checked up front so that a wrong path or a wrong file (say, a JUnit XML, or another tool's
    JSON) fails with a clear message before any model is called, not as a KeyError at the end.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"baseline {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BaselineError(f"baseline {path}: cannot read it: {reason}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    problem = _report_problem(data)
    if problem:
        raise BaselineError(f"baseline {path}: not a pytest-ft report ({problem})")
    return data


def _report_problem(data: Any) -> str | None:
    """Why ``data`` is not a pytest-ft report, or None when it looks like one."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    suites = data.get("suites")
    if not isinstance(suites, list):
        return "no 'suites' list"
    for index, suite in enumerate(suites):
        if not isinstance(suite, dict):
            return f"suites[{index}] is not an object"
        for key, kind in (("suite", str), ("file", str), ("models", dict), ("cases", list)):
            if not isinstance(suite.get(key), kind):
                return f"suites[{index}] has no '{key}' {kind.__name__}"
        for case_index, case in enumerate(suite["cases"]):
            if not isinstance(case, dict) or not isinstance(case.get("id"), str):
                return f"suites[{index}].cases[{case_index}] has no 'id'"
    return None


def suite_key(suite: dict) -> str:
    """How a suite is matched across runs: its file and its name, ``<file>::<suite>``.

    The file path is normalised (``./a/b`` and ``a\\b`` match ``a/b``) since the baseline may come
    from another machine or OS.
    """
    file = str(suite.get("file", "")).replace("\\", "/")
    normalised = str(PurePosixPath(file)) if file else ""
    return f"{normalised}::{suite.get('suite', '')}"


def _outcomes(suite: dict, role: str) -> dict[str, str]:
    """Case id → "pass" / "fail" / "error" / "unscored" for one role, in the suite's case order."""
    return {case["id"]: str(case_verdict(case, role)) for case in suite.get("cases", [])}


def _accuracy(suite: dict | None, role: str) -> float | None:
    if suite is None:
        return None
    model = (suite.get("models") or {}).get(role)
    return model.get("accuracy") if isinstance(model, dict) else None


def compare_suite(now: dict | None, then: dict | None, role: str = "tuned") -> dict:
    """The diff of one suite between the baseline (``then``) and this run (``now``).

    Either side may be None: a suite new in this run has every case "added", a suite gone from it
    every case "removed". A case that errored on either side is neither regressed nor fixed (its
    answer says nothing about the model); it is listed under ``errored`` when it errors now.
    """
    if now is None and then is None:
        raise ValueError("compare_suite needs at least one side")
    ref = now if now is not None else then
    assert ref is not None
    before = _outcomes(then, role) if then is not None else {}
    after = _outcomes(now, role) if now is not None else {}
    common = [case_id for case_id in after if case_id in before]
    return {
        "suite": ref.get("suite"),
        "file": ref.get("file"),
        "key": suite_key(ref),
        "status": "matched" if now is not None and then is not None else ("new" if then is None else "gone"),
        "role": role,
        "accuracy_then": _accuracy(then, role),
        "accuracy_now": _accuracy(now, role),
        "regressed": [i for i in common if before[i] == "pass" and after[i] == "fail"],
        "fixed": [i for i in common if before[i] == "fail" and after[i] == "pass"],
        "added": [i for i in after if i not in before],
        "removed": [i for i in before if i not in after],
        "errored": [i for i in common if after[i] == "error"],
    }


def compare(report: dict, baseline: dict, role: str = "tuned") -> dict[str, dict]:
    """Per-suite diffs, keyed by :func:`suite_key`: this run's suites in order, then the gone ones.

    Returns ``{key: {"suite", "file", "key", "status" ("matched" / "new" / "gone"), "role",
    "accuracy_then", "accuracy_now", "regressed", "fixed", "added", "removed", "errored"}}``;
    the id lists follow the case order of the run (of the baseline for "removed").
    """
    then = {suite_key(s): s for s in baseline.get("suites", [])}
    now = {suite_key(s): s for s in report.get("suites", [])}
    diffs = {key: compare_suite(suite, then.get(key), role) for key, suite in now.items()}
    for key, suite in then.items():
        if key not in now:
            diffs[key] = compare_suite(None, suite, role)
    return diffs


def count_regressions(diff_for_suite: dict | None) -> int:
    """How many cases passed in the baseline and fail now: what ``max_regressions`` gates on."""
    if not diff_for_suite:
        return 0
    return len(diff_for_suite.get("regressed", []))
