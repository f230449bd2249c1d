"""Is the gain real? Confidence intervals and a paired significance test for a suite.

With 40 cases, 3 more passes can be noise. Both models answer the *same* cases, so the honest
comparison is a paired one: only the cases where exactly one model is right (the discordant
pairs, or "flips") carry information about which model is better. This module turns a suite of
the JSON report into

- a Wilson score interval for each model's accuracy,
- Newcombe's hybrid score interval for the paired gain (tuned − base accuracy),
- McNemar's exact test on the flips,

and a one-line verdict a reviewer can read. Standard library only.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from ..results import Verdict, case_verdict

ALPHA = 0.05
MIN_CASES = 10


def _z(confidence: float) -> float:
    """The two-sided normal quantile: 1.959964 for 95%."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def wilson_interval(passed: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a pass rate of ``passed`` out of ``n``.

    Wilson rather than the textbook Wald interval (p ± z·sqrt(p(1−p)/n)) because eval suites are
    small and accuracies sit near 0 or 1, exactly where Wald collapses to a zero-width interval
    (19/20 → 95% ± 9.6%, 20/20 → [1, 1]). Wilson (1927), "Probable inference, the law of
    succession, and statistical inference", JASA 22:209-212; recommended by Brown, Cai and DasGupta
    (2001), Statistical Science 16:101-133.

    With no cases nothing is known: (0.0, 1.0).
    """
    if n < 0 or passed < 0 or passed > n:
        raise ValueError(f"need 0 <= passed <= n, got passed={passed}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = passed / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / (1.0 + z2n)
    # At 0/n and n/n the bound is exactly 0 or 1; say so instead of leaving rounding noise.
    low = 0.0 if passed == 0 else max(0.0, centre - half)
    high = 1.0 if passed == n else min(1.0, centre + half)
    return (low, high)


def _newcombe_phi(both: int, base_only: int, tuned_only: int, neither: int) -> float:
    """Newcombe's estimate of the correlation between the two paired accuracies.

    The phi coefficient of the 2x2 table, with Newcombe's correction: a positive association is
    shrunk by n/2 (and is 0 when ad − bc ≤ n/2); a negative one is used as is; any empty margin
    makes it 0.
    """
    n = both + base_only + tuned_only + neither
    margins = (both + tuned_only) * (base_only + neither) * (both + base_only) * (tuned_only + neither)
    if margins == 0:
        return 0.0
    a_d_minus_b_c = both * neither - base_only * tuned_only
    if a_d_minus_b_c > n / 2:
        numerator = a_d_minus_b_c - n / 2
    elif a_d_minus_b_c >= 0:
        numerator = 0.0
    else:
        numerator = a_d_minus_b_c
    return numerator / math.sqrt(margins)


def paired_gain_interval(both: int, base_only: int, tuned_only: int, neither: int,
                         confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval for the gain (tuned − base accuracy) on the same cases.

    Method: Newcombe's hybrid score ("square-and-add") interval for the difference of paired
    proportions, method 10 of Newcombe (1998), "Improved confidence intervals for the difference
    between binomial proportions based on paired data", Statistics in Medicine 17:2635-2650, in
    the form given by Newcombe & Altman in Altman et al., *Statistics with Confidence* (2nd ed.,
    2000), ch. 6, and Fagerland, Lydersen & Laake, *Statistical Analysis of Contingency Tables*
    (2017), §8.5. Each accuracy gets its Wilson interval (l, u); the two are combined as

        low  = gain − sqrt((p_t − l_t)² − 2φ(p_t − l_t)(u_b − p_b) + (u_b − p_b)²)
        high = gain + sqrt((u_t − p_t)² − 2φ(u_t − p_t)(p_b − l_b) + (p_b − l_b)²)

    with φ from :func:`_newcombe_phi`. Why this one: it is closed-form (no iterative solver), it
    stays inside [−1, 1], it does not collapse to a point when there are no flips, and its
    coverage is close to nominal on small samples (Fagerland et al. recommend it beside Tango's
    iterative score interval).

    The counts are the 2x2 table of paired outcomes: ``both`` passed, ``base_only`` passed,
    ``tuned_only`` passed, ``neither`` passed.
    """
    counts = (both, base_only, tuned_only, neither)
    if any(k < 0 for k in counts):
        raise ValueError(f"counts must be >= 0, got {counts}")
    n = sum(counts)
    if n == 0:
        return (-1.0, 1.0)
    p_tuned = (both + tuned_only) / n
    p_base = (both + base_only) / n
    l_t, u_t = wilson_interval(both + tuned_only, n, confidence)
    l_b, u_b = wilson_interval(both + base_only, n, confidence)
    phi = _newcombe_phi(both, base_only, tuned_only, neither)
    gain = p_tuned - p_base
    d_low = math.sqrt(max(0.0, (p_tuned - l_t) ** 2 - 2 * phi * (p_tuned - l_t) * (u_b - p_base)
                               + (u_b - p_base) ** 2))
    d_high = math.sqrt(max(0.0, (u_t - p_tuned) ** 2 - 2 * phi * (u_t - p_tuned) * (p_base - l_b)
                                + (p_base - l_b) ** 2))
    return (max(-1.0, gain - d_low), min(1.0, gain + d_high))


EXACT_UP_TO = 1000


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test on the discordant pairs.

    ``b`` cases only the base model passed, ``c`` only the tuned one. Under "the models are equally
    good" each flip goes either way with probability 1/2, so min(b, c) is Binomial(b + c, 1/2):

        p = min(1, 2 · Σ_{k ≤ min(b, c)} C(b + c, k) / 2^(b + c)),  and p = 1 when b + c = 0.

    Exact rather than the chi-square approximation because eval suites have few flips, where the
    approximation is poor. With up to ``EXACT_UP_TO`` flips it is computed with integers, exact up
    to the final division; beyond, the integers cost time quadratic in the flips (a 100,000-case
    run has tens of thousands), so the same sum is taken in floating point, term by term from the
    largest (the one at min(b, c)) down, each term the previous times k / (n − k + 1).
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n, m = b + c, min(b, c)
    if n == 0:
        return 1.0
    if n <= EXACT_UP_TO:
        return min(1.0, 2 * sum(math.comb(n, k) for k in range(m + 1)) / 2 ** n)
    log_top = math.lgamma(n + 1) - math.lgamma(m + 1) - math.lgamma(n - m + 1) - n * math.log(2)
    total, term = 0.0, 1.0
    for k in range(m, -1, -1):  # the terms relative to the top one; they fall fast below it
        total += term
        term *= k / (n - k + 1)
        if term < 1e-17 * total:
            break
    return min(1.0, 2 * math.exp(log_top + math.log(total)))


def min_attainable_p(n_discordant: int) -> float:
    """The smallest p-value McNemar's exact test can give with this many flips.

    Reached when every flip goes the same way: 2 / 2^n. With 5 flips or fewer it is above 0.05,
    so no outcome could be called significant — the suite is too small to tell.
    """
    return mcnemar_exact(0, n_discordant)


def paired_counts(cases: list[dict], base: str = "base", tuned: str = "tuned") -> dict[str, int]:
    """The 2x2 table of paired outcomes over the cases both models answered.

    A case is left out unless both roles passed or failed it (see :func:`pytest_ft.results.verdict`):
    an error or an unscored answer says nothing about which model is better.
    """
    counts = {"both": 0, "base_only": 0, "tuned_only": 0, "neither": 0}
    keys = {(Verdict.PASS, Verdict.PASS): "both", (Verdict.PASS, Verdict.FAIL): "base_only",
            (Verdict.FAIL, Verdict.PASS): "tuned_only", (Verdict.FAIL, Verdict.FAIL): "neither"}
    for case in cases:
        key = keys.get((case_verdict(case, base), case_verdict(case, tuned)))
        if key is not None:
            counts[key] += 1
    return counts


def p_phrase(p: float) -> str:
    """``p=0.039`` or ``p<0.001``."""
    text = format_p(p)
    return "p" + (text if text.startswith("<") else "=" + text)


def format_p(p: float) -> str:
    """A p-value as people read it: 0.0039 → "0.004", 0.039 → "0.039", 0.3828 → "0.38", tiny → "<0.001".

    Three decimals below 0.1 so a value near the 0.05 line is never rounded across it.
    """
    if p < 0.001:
        return "<0.001"
    if p < 0.1:
        return f"{p:.3f}"
    return f"{p:.2f}"


def verdict(b: int, c: int, n: int, p: float, too_small: bool, alpha: float = ALPHA) -> str:
    """One sentence a reviewer can act on."""
    if too_small:
        return f"too few cases/flips to tell ({n} cases, {b + c} flips)"
    if p <= alpha:
        return f"{'gain' if c > b else 'loss'} is significant ({p_phrase(p)})"
    net = c - b
    if net > 0:
        return f"not significant ({p_phrase(p)}): {net} more passes can be noise"
    if net < 0:
        return f"not significant ({p_phrase(p)}): {-net} fewer passes can be noise"
    return f"not significant ({p_phrase(p)}): no net change"


def suite_significance(suite_report: dict, base: str = "base", tuned: str = "tuned",
                       confidence: float = 0.95, alpha: float = ALPHA) -> dict[str, Any] | None:
    """Accuracy intervals, the gain's interval and McNemar's test for one suite of the report.

    Uses only the cases both models answered (see :func:`paired_counts`), so the accuracies here
    can differ slightly from the report's when cases errored. ``tuned`` may be any role (say
    ``previous``) to compare it with ``base`` the same way. Returns None when the suite lacks
    either role.

    ``too_small`` is true when no outcome could reach significance at ``alpha``: fewer than
    10 cases, or so few flips that even all of them going one way gives p > alpha.
    """
    models = suite_report.get("models") or {}
    if base not in models or tuned not in models:
        return None
    counts = paired_counts(suite_report.get("cases") or [], base, tuned)
    n = sum(counts.values())
    b, c = counts["base_only"], counts["tuned_only"]
    base_passed = counts["both"] + b
    tuned_passed = counts["both"] + c
    p = mcnemar_exact(b, c)
    too_small = n < MIN_CASES or min_attainable_p(b + c) > alpha
    low, high = paired_gain_interval(counts["both"], b, c, counts["neither"], confidence)
    return {
        "cases": n,
        "base": {"accuracy": base_passed / n if n else None,
                 "ci": list(wilson_interval(base_passed, n, confidence))},
        "tuned": {"accuracy": tuned_passed / n if n else None,
                  "ci": list(wilson_interval(tuned_passed, n, confidence))},
        "gain": {"value": (c - b) / n if n else None, "ci": [low, high]},
        "discordant": {"base_only": b, "tuned_only": c},
        "p_value": p,
        "too_small": too_small,
        "verdict": verdict(b, c, n, p, too_small, alpha),
    }


# Pairwise preference (see pytest_ft.graders.prefer): each case is a win, tie or loss of one
# model's answer against the other's, judged in both orders.


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: is one model preferred more often than the other?

    Ties are left out, the usual treatment of zero differences in the sign test (Dixon & Mood
    (1946), "The statistical sign test", JASA 41:557-566): under "neither answer is better"
    each decisive case is a win with probability 1/2, so min(wins, losses) is
    Binomial(wins + losses, 1/2) and

        p = min(1, 2 · Σ_{k ≤ min(wins, losses)} C(wins + losses, k) / 2^(wins + losses)),

    1.0 when no case was decisive. The same exact binomial test as :func:`mcnemar_exact`, where
    the flips play the part of the decisive cases.
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses must be >= 0, got wins={wins}, losses={losses}")
    return mcnemar_exact(losses, wins)


def win_rate(wins: int, ties: int, losses: int, confidence: float = 0.95) -> dict[str, Any]:
    """The win rate, ties counting half, with a Wilson score interval.

    ``rate = (wins + ties/2) / n`` with n = wins + ties + losses, the convention of chess scores
    and of LLM leaderboards (AlpacaEval counts a tie as half a win; Li et al. (2023), "AlpacaEval:
    An automatic evaluator of instruction-following models"). 0.5 means no difference.

    The interval is Wilson's score interval (Wilson (1927), JASA 22:209-212; see
    :func:`wilson_interval`) on the proportion (wins + ties/2) / n, with n = all cases, ties
    included. Each case scores 1, 1/2 or 0, and such a score has variance
    E[X²] − p² ≤ E[X] − p² = p(1 − p), at most that of a win/loss coin with the same mean; so
    treating the n cases as Bernoulli trials makes the interval conservative (a little too
    wide) when there are ties, and exact Wilson when there are none. The alternative, leaving
    ties out of n, would answer another question (who wins when someone wins) and overstate
    the gain when most cases tie.

    Returns ``{"rate": float | None, "ci": (low, high) | None}``, both None when n = 0.
    """
    if wins < 0 or ties < 0 or losses < 0:
        raise ValueError(f"counts must be >= 0, got wins={wins}, ties={ties}, losses={losses}")
    n = wins + ties + losses
    if n == 0:
        return {"rate": None, "ci": None}
    score = wins + ties / 2
    return {"rate": score / n, "ci": wilson_interval(score, n, confidence)}  # type: ignore[arg-type]


def position_bias(first_slot_picks: int, decisive: int) -> float | None:
    """Of the judge's decisive replies (A or B, not tie), the share that picked the answer shown first.

    Every case is judged in both orders, so each answer is shown first once: a judge whose
    verdict does not depend on order picks A exactly half the time, 0.5. Above 0.5 it favours
    the first slot, below the second (Zheng et al. (2023), "Judging LLM-as-a-Judge with
    MT-Bench and Chatbot Arena", §3.3). None when no reply was decisive.
    """
    if first_slot_picks < 0 or decisive < 0 or first_slot_picks > decisive:
        raise ValueError(f"need 0 <= first_slot_picks <= decisive, got {first_slot_picks} and {decisive}")
    return first_slot_picks / decisive if decisive else None
