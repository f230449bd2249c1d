"""The deploy gate: whether a suite's tuned model may ship, and whether the run passed.

Both read the aggregated report only, and are decided here alone.
"""

from __future__ import annotations

from .formats import fmt_pp
from .stats import p_phrase


def run_passed(suites: list[dict], suite_errors: list, interrupted: str | None) -> bool:
    """The one place that decides whether a run passed: it finished, every suite loaded, every gate passed."""
    return interrupted is None and not suite_errors and all(s["gate"]["passed"] for s in suites)


def check_gate(suite: dict) -> dict:
    """Whether the tuned model may ship, by this suite's thresholds (or every case, without)."""
    thresholds = suite["thresholds"]
    tuned = suite["models"].get("tuned", {})
    failures: list[str] = []
    if suite["errored"]:
        who = ", ".join(f"{role} {m['errors']}" for role, m in suite["models"].items() if m.get("errors"))
        failures.append(f"{len(suite['errored'])} case(s) could not be evaluated (errors: {who}): "
                        f"{', '.join(suite['errored'][:5])}")
    if not thresholds:
        missed = tuned.get("cases", 0) - tuned.get("passed", 0) - tuned.get("errors", 0)
        if missed:
            failures.append(f"the tuned model missed {missed} case(s) and the suite has no thresholds")
    if "accuracy" in thresholds and tuned.get("accuracy", 0.0) < thresholds["accuracy"]:
        failures.append(f"accuracy {tuned['accuracy']:.3f} < {thresholds['accuracy']:.3f}")
    if "min_gain" in thresholds:
        gain = suite["gain"]
        if gain is None or gain < thresholds["min_gain"] - 1e-12:
            failures.append(f"gain over base {fmt_pp(gain)} < {thresholds['min_gain']:+.3f}")
    if "max_regressions" in thresholds:
        since = suite.get("baseline")
        regressed = since["regressed"] if since is not None else suite["regressions"]
        if len(regressed) > thresholds["max_regressions"]:
            what = "since the baseline" if since is not None else "against the base model"
            failures.append(f"{len(regressed)} case(s) regressed {what} (max {thresholds['max_regressions']:g}): "
                            f"{', '.join(regressed[:10])}")
    if "max_p_value" in thresholds:
        significance = suite.get("significance")
        if significance is None or significance["p_value"] > thresholds["max_p_value"]:
            p = "p=n/a" if significance is None else p_phrase(significance["p_value"])
            small = " (too few cases or flips to tell)" if significance and significance["too_small"] else ""
            failures.append(f"gain not significant: McNemar {p} > {thresholds['max_p_value']:g}{small}")
    if "max_cost_usd" in thresholds:
        cost = tuned.get("cost_usd")
        if cost is None:
            failures.append(f"cost of {tuned.get('model')} unknown (no price; pass --ft-prices), "
                            f"cannot check max_cost_usd {thresholds['max_cost_usd']}")
        elif cost > thresholds["max_cost_usd"]:
            failures.append(f"cost ${cost:.4f} > ${thresholds['max_cost_usd']:.4f}")
    return {"passed": not failures, "failures": failures}
