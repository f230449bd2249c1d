"""The report as the terminal summary: a table per suite, then the flips, the gate and the calls."""

from __future__ import annotations

from tabulate import tabulate

from ..formats import fmt_cost, fmt_pp
from ..stats import p_phrase


def render(report: dict) -> str:
    lines: list[str] = []
    for suite in report["suites"]:
        gate = suite["gate"]
        verdict = "PASSED" if gate["passed"] else "FAILED"
        lines.append(f"suite {suite['suite']} ({suite['file']}): gate {verdict}")
        rows = []
        for role, m in suite["models"].items():
            rows.append([role, m["model"], m["cases"], m["passed"], f"{m['accuracy'] * 100:.1f}%",
                         fmt_pp(suite["gain"]) if role == "tuned" else "",
                         m["prompt_tokens"], m["completion_tokens"], fmt_cost(m["cost_usd"]),
                         f"{m['replayed']}/{m['cases'] - m['errors']}"])
        lines.append(tabulate(rows, headers=["", "model", "cases", "passed", "accuracy", "gain", "prompt tok",
                                             "completion tok", "cost USD", "replayed"],
                              tablefmt="simple", colalign=("left", "left") + ("right",) * 8, disable_numparse=True))
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
                    lines.append("  " + _id_list(title, since[title]))
        if suite.get("cost_benefit"):
            lines.extend(_render_cost_benefit(suite["cost_benefit"]))
        if suite.get("batch"):
            lines.append("answered through the Batch API: costs are at batch rates (half the standard price)")
        if suite["thresholds"]:
            lines.append("thresholds: " + ", ".join(f"{k}={v:g}" for k, v in suite["thresholds"].items()))
        lines.append(_id_list("fixed by tuning", suite["fixed"]))
        lines.append(_id_list("regressions", suite["regressions"]))
        if suite.get("flaky"):
            lines.append(_id_list("flaky (samples disagree)", suite["flaky"]))
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
    for model in report["unpriced_models"]:
        lines.append(f"warning: no price known for {model!r}: its cost shows as n/a (add it with --ft-prices)")
    return "\n".join(lines)


def _render_cost_benefit(entry: dict) -> list[str]:
    lines = []
    training = entry.get("training")
    if training:
        tokens = training.get("trained_tokens")
        source = f"job {training['job_id']}" if training.get("job_id") else "estimated from the training data"
        lines.append(f"training: {fmt_cost(training['cost_usd'])} USD ({source}, "
                     f"{'n/a' if tokens is None else f'{tokens:,}'} trained tokens)")
    per = ", ".join(f"{role} {fmt_cost(cost)}" for role, cost in entry["per_1000_requests_usd"].items())
    lines.append(f"inference per 1,000 requests (USD): {per}; gain {fmt_pp(entry['gain'])}")
    for role, requests in entry["break_even_requests"].items():
        if requests == "never":
            lines.append(f"break-even against {role}: never (it costs no more per request than the tuned model)")
        elif requests is None:
            lines.append(f"break-even against {role}: n/a (a cost is unknown)")
        else:
            lines.append(f"break-even against {role}: tuning pays back after {requests:,} requests")
    return lines


def _id_list(title: str, ids: list[str], limit: int = 20) -> str:
    if not ids:
        return f"{title}: none"
    shown = ", ".join(ids[:limit]) + (f", … (+{len(ids) - limit})" if len(ids) > limit else "")
    return f"{title} ({len(ids)}): {shown}"
