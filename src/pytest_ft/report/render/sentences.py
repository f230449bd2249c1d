"""What the report says in sentences, phrased once for the terminal, Markdown and HTML.

Each function returns plain lines; a renderer only escapes and lays them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..formats import fmt_cost, fmt_pct, fmt_pp
from ..stats import p_phrase


def id_list(title: str, ids: list[str], limit: int = 20) -> str:
    if not ids:
        return f"{title}: none"
    shown = ", ".join(ids[:limit]) + (f", … (+{len(ids) - limit})" if len(ids) > limit else "")
    return f"{title} ({len(ids)}): {shown}"


def cost_benefit_lines(entry: Mapping[str, Any]) -> list[str]:
    """Does tuning pay, and which model is cheapest of those that pass the gate."""
    lines = []
    training = entry.get("training")
    if training:
        tokens = training.get("trained_tokens")
        source = f"job {training['job_id']}" if training.get("job_id") else "estimated from the training data"
        lines.append(f"training: {fmt_cost(training['cost_usd'])} USD ({source}, "
                     f"{'n/a' if tokens is None else f'{tokens:,}'} trained tokens)")
    per = ", ".join(f"{role} {fmt_cost(cost)}" for role, cost in entry["per_1000_requests_usd"].items())
    lines.append(f"inference per 1,000 requests (USD): {per}; gain {fmt_pp(entry['gain'])}")
    tokens = entry.get("tokens_per_request") or {}
    if tokens:
        lines.append("tokens per request: " + ", ".join(f"{role} {'n/a' if n is None else f'{n:,.0f}'}"
                                                        for role, n in tokens.items()))
    for role, requests in entry["break_even_requests"].items():
        if requests == "never":
            lines.append(f"break-even against {role}: never (it costs no more per request than the tuned model)")
        elif requests is None:
            lines.append(f"break-even against {role}: n/a (a cost is unknown)")
        else:
            lines.append(f"break-even against {role}: tuning pays back after {requests:,} requests")
    if "cheapest_passing" in entry:
        cheapest = entry["cheapest_passing"]
        if cheapest is None:
            lines.append("cheapest model that passes the gate: none passes")
        elif entry.get("cheapest_by") == "tokens":
            lines.append(f"cheapest model that passes the gate: {cheapest} (fewest tokens per request, "
                         f"{entry['tokens_per_request'][cheapest]:,.0f}; prices unknown: pass --ft-prices)")
        else:
            lines.append(f"cheapest model that passes the gate: {cheapest} "
                         f"({fmt_cost(entry['per_1000_requests_usd'][cheapest])} USD per 1,000 requests)")
    return lines


def reference_lines(suite: Mapping[str, Any], limit: int = 20) -> list[str]:
    """Against the model being replaced: each candidate's agreement, and what it kept, lost, newly got right."""
    against = suite.get("reference")
    if not against:
        return []
    lines = [f"against the reference {against['model']} ({against['role']}):"]
    for role, changes in against["candidates"].items():
        m = suite["models"].get(role, {})
        kept, lost, new = changes["kept"], changes["lost"], changes["newly_right"]
        lines.append(f"  {role}: agreement {fmt_pct(m.get('agreement'))}, kept {len(kept)}, lost {len(lost)}, "
                     f"newly right {len(new)}")
        if lost:
            lines.append("    " + id_list("lost", lost, limit))
        if new:
            lines.append("    " + id_list("newly right", new, limit))
    return lines


def preference_lines(suite: Mapping[str, Any]) -> list[str]:
    """The pairwise judgement: wins, ties, losses, the win rate with its interval, the sign test,
    and the judge's position bias (a judge that favours the first slot is not to be trusted)."""
    pref = suite.get("preference")
    if not pref:
        return []
    first, second = pref["roles"]
    ci = pref["ci"]
    interval = f" (95% CI {fmt_pct(ci[0])}–{fmt_pct(ci[1])})" if ci else ""
    lines = [f"which is better, {first} or {second}? (judge {pref['judge']}, each case in both orders): "
             f"{pref['wins']} wins, {pref['ties']} ties, {pref['losses']} losses"
             + (f", {pref['unscored']} unscored" if pref["unscored"] else "")
             + f"; win rate of {first} {fmt_pct(pref['win_rate'])}{interval}, sign test {p_phrase(pref['sign_test_p'])}"]
    bias = pref["position_bias"]
    if bias is not None:
        trust = " — a strong position bias: trust only verdicts that survive the swap, as these do" \
            if bias >= 0.7 or bias <= 0.3 else ""
        lines.append(f"the judge picked the answer shown first in {fmt_pct(bias)} of its decisive replies{trust}")
    return lines


def unscored_lines(suite: Mapping[str, Any]) -> list[str]:
    """Answers a grader could not score (an unreadable judge reply): left out of accuracy."""
    counts = {role: m.get("unscored", 0) for role, m in suite["models"].items() if m.get("unscored")}
    reference = (suite.get("reference") or {}).get("role")
    counts.pop(reference, None)  # without labels the reference is unscored by design
    if not counts:
        return []
    return ["unscored (a judge could not be read; left out of accuracy): "
            + ", ".join(f"{role} {n}" for role, n in counts.items())]


def retirement_lines(report: Mapping[str, Any]) -> list[str]:
    """A plain warning for each model under test that retires soon (or has retired)."""
    return [w["message"] for w in report.get("retirements") or [] if w.get("message")]
