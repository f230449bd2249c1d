"""The deploy gate: whether a suite's tuned model may ship, and whether the run passed.

Both read the aggregated report only, and are decided here alone.
"""

from __future__ import annotations

from .formats import fmt_pct, fmt_pp
from .stats import p_phrase


def run_passed(suites: list[dict], suite_errors: list, interrupted: str | None) -> bool:
    """The one place that decides whether a run passed: it finished, every suite loaded, every gate passed."""
    return interrupted is None and not suite_errors and all(s["gate"]["passed"] for s in suites)


def check_gate(suite: dict) -> dict:
    """Whether the tuned model may ship, by this suite's thresholds (or every case, without).

    The thresholds on one model's own figures are also applied to every other candidate (all
    roles but the reference) under ``models``, so the report can say which candidates would
    pass, and the cheapest of them.
    """
    thresholds = suite["thresholds"]
    failures: list[str] = []
    if suite["errored"]:
        who = ", ".join(f"{role} {m['errors']}" for role, m in suite["models"].items() if m.get("errors"))
        failures.append(f"{len(suite['errored'])} case(s) could not be evaluated (errors: {who}): "
                        f"{', '.join(suite['errored'][:5])}")
    per_model = {role: model_failures(suite, role) for role in suite["models"]
                 if role != (suite.get("reference") or {}).get("role")}
    failures.extend(per_model.get("tuned", []))
    if "min_gain" in thresholds:
        gain = suite["gain"]
        if gain is None or gain < thresholds["min_gain"] - 1e-12:
            failures.append(f"gain over base {fmt_pp(gain)} < {thresholds['min_gain']:+.3f}")
    if "max_p_value" in thresholds:
        significance = suite.get("significance")
        if significance is None or significance["p_value"] > thresholds["max_p_value"]:
            p = "p=n/a" if significance is None else p_phrase(significance["p_value"])
            small = " (too few cases or flips to tell)" if significance and significance["too_small"] else ""
            failures.append(f"gain not significant: McNemar {p} > {thresholds['max_p_value']:g}{small}")
    if "min_win_rate" in thresholds:
        pref = suite.get("preference")
        rate = pref["win_rate"] if pref else None
        if rate is None or rate < thresholds["min_win_rate"] - 1e-12:
            who = " over ".join(pref["roles"]) if pref else "(no pairwise judgement: set prefer: in the suite)"
            failures.append(f"win rate of {who} {fmt_pct(rate)} < {fmt_pct(thresholds['min_win_rate'])}")
    if "max_unscored" in thresholds:
        pref = suite.get("preference") or {}
        unscored = suite["models"].get("tuned", {}).get("unscored", 0) + pref.get("unscored", 0)
        if unscored > thresholds["max_unscored"]:
            failures.append(f"{unscored} answer(s) or comparison(s) a judge could not score "
                            f"(max {thresholds['max_unscored']:g})")
    return {"passed": not failures, "failures": failures, "models": per_model}


def model_failures(suite: dict, role: str) -> list[str]:
    """What keeps one model from passing the thresholds on its own figures (accuracy, agreement
    with the reference, regressions, latency, cost), or every case when there are none."""
    thresholds = suite["thresholds"]
    m = suite["models"].get(role, {})
    reference = suite.get("reference")
    who = "the tuned model" if role == "tuned" else f"{role} ({m.get('model')})"
    failures: list[str] = []
    if not thresholds:
        missed = m.get("cases", 0) - m.get("passed", 0) - m.get("errors", 0)
        if missed:
            failures.append(f"{who} missed {missed} case(s) and the suite has no thresholds")
    if "accuracy" in thresholds and (m.get("accuracy") or 0.0) < thresholds["accuracy"]:
        accuracy = "n/a (no case scored)" if m.get("accuracy") is None else f"{m['accuracy']:.3f}"
        failures.append(f"accuracy {accuracy} < {thresholds['accuracy']:.3f}")
    if "min_agreement" in thresholds:
        rate = m.get("agreement")
        if reference is None:
            failures.append("min_agreement needs a reference model (models.reference or --ft-reference)")
        elif rate is None or rate < thresholds["min_agreement"]:
            failures.append(f"agreement with the reference {fmt_pct(rate)} < {fmt_pct(thresholds['min_agreement'])}")
    if "max_regressions" in thresholds:
        since = suite.get("baseline") if role == "tuned" else None
        if since is not None:
            regressed, what = since["regressed"], "since the baseline"
        elif reference is not None:
            regressed, what = reference["candidates"][role]["lost"], f"against the reference {reference['model']}"
        else:
            regressed, what = (suite["regressions"] if role == "tuned" else []), "against the base model"
        if len(regressed) > thresholds["max_regressions"]:
            failures.append(f"{len(regressed)} case(s) regressed {what} (max {thresholds['max_regressions']:g}): "
                            f"{', '.join(regressed[:10])}")
    if "max_latency_p95_ms" in thresholds:
        p95 = m.get("latency_p95_ms")
        if p95 is None:
            failures.append(f"latency of {m.get('model')} unknown (recorded before latencies were kept: re-record), "
                            f"cannot check max_latency_p95_ms {thresholds['max_latency_p95_ms']:g}")
        elif p95 > thresholds["max_latency_p95_ms"]:
            failures.append(f"latency p95 {p95:,.0f} ms > {thresholds['max_latency_p95_ms']:,.0f} ms")
    if "max_cost_usd" in thresholds:
        cost = m.get("cost_usd")
        if cost is None:
            failures.append(f"cost of {m.get('model')} unknown (no price; pass --ft-prices), "
                            f"cannot check max_cost_usd {thresholds['max_cost_usd']}")
        elif cost > thresholds["max_cost_usd"]:
            failures.append(f"cost ${cost:.4f} > ${thresholds['max_cost_usd']:.4f}")
    return failures
