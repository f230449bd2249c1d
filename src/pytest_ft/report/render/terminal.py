"""The report as the terminal summary: a table per suite, then the flips, the gate and the calls."""

from __future__ import annotations

from tabulate import tabulate

from ..formats import fmt_cost, fmt_latency, fmt_pct, fmt_pp, fmt_retires
from ..stats import p_phrase
from .sentences import (
    cost_benefit_lines,
    id_list,
    preference_lines,
    reference_lines,
    retirement_lines,
    unscored_lines,
)


def render(report: dict) -> str:
    lines: list[str] = []
    for suite in report["suites"]:
        gate = suite["gate"]
        verdict = "PASSED" if gate["passed"] else "FAILED"
        lines.append(f"suite {suite['suite']} ({suite['file']}): gate {verdict}")
        reference = suite.get("reference")
        retires = any(m.get("retires") for m in suite["models"].values())
        rows = []
        for role, m in suite["models"].items():
            row = [role, m["model"], m["cases"], m["passed"], fmt_pct(m["accuracy"])]
            if reference:
                row.append(fmt_pct(m.get("agreement")) if role != reference["role"] else "(ref)")
            row += [fmt_pp(suite["gain"]) if role == "tuned" else "", fmt_latency(m),
                    m["prompt_tokens"], m["completion_tokens"], fmt_cost(m["cost_usd"]),
                    f"{m['replayed']}/{m['cases'] - m['errors']}"]
            if retires:
                row.append(fmt_retires(m))
            rows.append(row)
        headers = ["", "model", "cases", "passed", "accuracy", *(["agreement"] if reference else []), "gain",
                   "p50/p95 ms", "prompt tok", "completion tok", "cost USD", "replayed", *(["retires"] if retires else [])]
        lines.append(tabulate(rows, headers=headers, tablefmt="simple",
                              colalign=("left", "left") + ("right",) * (len(headers) - 2), disable_numparse=True))
        if suite["judge"]:
            j = suite["judge"]
            lines.append(f"judge {j['model']}: {j['requests']} calls, {j['prompt_tokens']} prompt + "
                         f"{j['completion_tokens']} completion tokens, cost USD {fmt_cost(j['cost_usd'])}")
        significance = suite.get("significance")
        if significance and significance["gain"]["value"] is not None:
            low, high = significance["gain"]["ci"]
            lines.append(f"is the gain real? {fmt_pp(significance['gain']['value'])} "
                         f"(95% CI {low * 100:+.1f} to {high * 100:+.1f} pp), McNemar "
                         f"{p_phrase(significance['p_value'])}: {significance['verdict']}")
        since = suite.get("baseline")
        if since is not None:
            then, now = since.get("accuracy_then"), since.get("accuracy_now")
            accuracy = " → ".join("n/a" if a is None else f"{a * 100:.1f}%" for a in (then, now))
            lines.append(f"since the baseline ({since['status']}): accuracy {accuracy}")
            for title in ("regressed", "fixed", "added", "removed"):
                if since.get(title):
                    lines.append("  " + id_list(title, since[title]))
        lines.extend(reference_lines(suite))
        lines.extend(preference_lines(suite))
        lines.extend(unscored_lines(suite))
        if suite.get("cost_benefit"):
            lines.extend(cost_benefit_lines(suite["cost_benefit"]))
        if suite.get("batch"):
            lines.append("answered through the Batch API: costs are at batch rates (half the standard price)")
        if suite["thresholds"]:
            lines.append("thresholds: " + ", ".join(f"{k}={v:g}" for k, v in suite["thresholds"].items()))
        lines.append(id_list("fixed by tuning", suite["fixed"]))
        lines.append(id_list("regressions", suite["regressions"]))
        if suite.get("flaky"):
            lines.append(id_list("flaky (samples disagree)", suite["flaky"]))
        for failure in gate["failures"]:
            lines.append(f"GATE FAILED: {failure}")
        lines.append("")
    if "fixtures" in report:
        rows = [[m, u["requests"], u["prompt_tokens"], u["completion_tokens"], fmt_cost(u["cost_usd"])]
                for m, u in report["fixtures"]["models"].items()]
        lines.append("calls from Python tests (ft_complete):")
        lines.append(tabulate(rows, headers=["model", "requests", "prompt tok", "completion tok", "cost USD"], disable_numparse=True))
        lines.append("")
    for error in report["invalid_suites"]:
        lines.append(f"INVALID SUITE: {error['message']}")
    if report.get("interrupted"):
        lines.append(f"RUN NOT FINISHED: {report['interrupted']}: not passed")
    calls = report["calls"]
    lines.append(f"model calls: {calls['replayed']} replayed from recordings, {calls['live']} live")
    lines.extend(f"warning: {line}" for line in retirement_lines(report))
    unpriced = report["unpriced_models"]
    if unpriced:
        names = ", ".join(repr(m) for m in unpriced)
        lines.append(f"warning: no price known for {names}: {'its cost shows' if len(unpriced) == 1 else 'their costs show'}"
                     f" as n/a (add {'it' if len(unpriced) == 1 else 'them'} with --ft-prices)")
    return "\n".join(lines)
