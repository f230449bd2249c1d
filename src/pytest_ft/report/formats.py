"""How figures read, in every rendering of the report and in the gate's messages."""

from __future__ import annotations

import math


def fmt_pct(value: float | None) -> str:
    """0.7 → "70.0%"; None → "n/a"."""
    return "n/a" if value is None else f"{value * 100:.1f}%"


def fmt_pp(value: float | None) -> str:
    """A difference of accuracies in percentage points: 0.1 → "+10.0 pp"."""
    return "n/a" if value is None else f"{value * 100:+.1f} pp"


def fmt_cost(cost: float | None) -> str:
    """USD, or "n/a" when the model has no known price (never a silent 0).

    Four decimals, but small costs (a replayed smoke suite costs millionths) keep two significant
    digits rather than rounding to a misleading 0.0000.
    """
    if cost is None:
        return "n/a"
    if cost == 0 or abs(cost) >= 0.001:
        return f"{cost:.4f}"
    decimals = -math.floor(math.log10(abs(cost))) + 1
    return f"{cost:.{decimals}f}"


def fmt_in_days(days: int) -> str:
    """When a date falls, from today: "today", "in 1 day", "in 46 days"."""
    return "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def fmt_latency(model: dict) -> str:
    """A model's time to answer, median and 95th percentile in ms: "310 / 540"."""
    p50, p95 = model.get("latency_p50_ms"), model.get("latency_p95_ms")
    return "n/a" if p50 is None and p95 is None else f"{fmt_ms(p50)} / {fmt_ms(p95)}"


def fmt_retires(model: dict) -> str:
    """When a model retires: "2027-01-14 (46 d)", "retired 2026-12-11", or "" when no date is known."""
    date, days = model.get("retires"), model.get("days_left")
    if not date:
        return ""
    return f"retired {date}" if days is not None and days < 0 else f"{date} ({days} d)"
