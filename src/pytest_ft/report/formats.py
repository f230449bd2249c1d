"""How figures read in the gate's messages and the terminal summary."""

from __future__ import annotations


def fmt_gain(gain: float | None) -> str:
    """A gain in accuracy as percentage points: ``+12.5 pp``."""
    return "n/a" if gain is None else f"{gain * 100:+.1f} pp"


def fmt_usd(cost: float | None) -> str:
    if cost is None:
        return "n/a"
    return f"{cost:,.2f}" if cost >= 1 else f"{cost:.6f}"
