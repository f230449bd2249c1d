"""Confidence intervals and McNemar's exact test, checked against figures computed by hand."""

import math

import pytest

from pytest_ft.report.stats import (
    format_p,
    mcnemar_exact,
    min_attainable_p,
    paired_counts,
    paired_gain_interval,
    suite_significance,
    wilson_interval,
)

# z for 95%: the 0.975 normal quantile = 1.959964, z² = 3.841459


# -- Wilson ------------------------------------------------------------------------------------

def test_wilson_14_of_20():
    # p = 0.7, n = 20, z²/n = 3.841459 / 20 = 0.192073
    # centre = (p + z²/2n) / (1 + z²/n) = (0.7 + 0.096036) / 1.192073 = 0.667775
    # half   = z·sqrt(p(1−p)/n + z²/4n²) / (1 + z²/n)
    #        = 1.959964 · sqrt(0.0105 + 0.0024009) / 1.192073 = 1.959964 · 0.113582 / 1.192073 = 0.186748
    # → (0.667775 − 0.186748, 0.667775 + 0.186748) = (0.481027, 0.854523)
    low, high = wilson_interval(14, 20)
    assert low == pytest.approx(0.481027, abs=1e-5)
    assert high == pytest.approx(0.854523, abs=1e-5)


def test_wilson_at_the_ends_is_exactly_0_or_1_and_not_degenerate():
    # 0/10: low = 0; high = (z²/n) / (1 + z²/n) = 0.384146 / 1.384146 = 0.277533
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.277533, abs=1e-5))
    # 10/10 mirrors it: (1 − 0.277533, 1)
    assert wilson_interval(10, 10) == (pytest.approx(0.722467, abs=1e-5), 1.0)


def test_wilson_wider_at_99_percent_and_without_cases_knows_nothing():
    # z for 99% = 2.575829: (0.416097, 0.884261) contains the 95% interval (0.481027, 0.854523)
    low, high = wilson_interval(14, 20, confidence=0.99)
    assert low == pytest.approx(0.416097, abs=1e-5) and high == pytest.approx(0.884261, abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("passed, n, confidence", [(3, 2, 0.95), (-1, 2, 0.95), (1, 2, 1.0), (1, 2, 0.0)])
def test_wilson_rejects_nonsense(passed, n, confidence):
    with pytest.raises(ValueError):
        wilson_interval(passed, n, confidence)


# -- McNemar -----------------------------------------------------------------------------------

@pytest.mark.parametrize("b, c, expected", [
    (1, 8, 0.0390625),   # n = 9: 2·(C(9,0) + C(9,1)) / 2⁹ = 2·(1 + 9) / 512 = 0.0390625
    (8, 1, 0.0390625),   # symmetric
    (3, 6, 0.5078125),   # 2·(1 + 9 + 36 + 84) / 512 = 260 / 512
    (0, 6, 0.03125),     # 2·1 / 64: the smallest p six flips can give
    (0, 5, 0.0625),      # 2·1 / 32: five flips can never reach 0.05
    (5, 5, 1.0),         # 2·(1+10+45+120+210+252) / 1024 = 1.246 → capped at 1
    (0, 0, 1.0),         # no flips: no evidence either way
    (2, 18, 422 / 1048576),  # 2·(1 + 20 + 190) / 2²⁰ = 0.00040245
])
def test_mcnemar_exact(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-6)


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_min_attainable_p():
    assert min_attainable_p(5) == pytest.approx(2 / 32)
    assert min_attainable_p(6) == pytest.approx(2 / 64)
    assert min_attainable_p(0) == 1.0


# -- Newcombe's paired interval for the gain -----------------------------------------------------

def test_gain_interval_without_correlation_term():
    # Bentur et al. (2009) in Fagerland, Lydersen & Laake (2014/2017): 2x2 [[1, 1], [7, 12]], the first
    # classification playing "tuned": both = 1, tuned_only = 1, base_only = 7, neither = 12; n = 21.
    # p_t = 2/21 = 0.095238, Wilson (0.026519, 0.289141); p_b = 8/21 = 0.380952, Wilson (0.207510, 0.591213)
    # ad − bc = 1·12 − 7·1 = 5 ≤ n/2 = 10.5 → φ = 0
    # gain = −6/21 = −0.285714
    # low  = −0.285714 − sqrt((0.095238 − 0.026519)² + (0.591213 − 0.380952)²)
    #      = −0.285714 − sqrt(0.0047223 + 0.0442097) = −0.285714 − 0.221206 = −0.506920
    # high = −0.285714 + sqrt((0.289141 − 0.095238)² + (0.380952 − 0.207510)²)
    #      = −0.285714 + sqrt(0.0375984 + 0.0300821) = −0.285714 + 0.260155 = −0.025559
    # Fagerland et al. publish (−0.507, −0.026) for the Newcombe square-and-add interval.
    low, high = paired_gain_interval(both=1, base_only=7, tuned_only=1, neither=12)
    assert low == pytest.approx(-0.506920, abs=2e-6)
    assert high == pytest.approx(-0.025559, abs=2e-6)


def test_gain_interval_with_correlation_term():
    # Altman et al., Statistics with Confidence, table 6.2: [[14, 5], [0, 22]], n = 41.
    # both = 14, tuned_only = 5, base_only = 0, neither = 22
    # p_t = 19/41 = 0.463415, Wilson (0.320562, 0.612535); p_b = 14/41 = 0.341463, Wilson (0.215588, 0.494502)
    # ad − bc = 14·22 − 0 = 308 > n/2 → φ = (308 − 20.5) / sqrt(19·22·14·27) = 287.5 / 397.497 = 0.723276
    # gain = 5/41 = 0.121951
    # low  = 0.121951 − sqrt(0.142853² − 2·0.723276·0.142853·0.153039 + 0.153039²)
    #      = 0.121951 − sqrt(0.0204070 − 0.0316251 + 0.0234209) = 0.121951 − 0.110469 = 0.011483
    # high = 0.121951 + sqrt(0.149120² − 2·0.723276·0.149120·0.125875 + 0.125875²)
    #      = 0.121951 + sqrt(0.0222368 − 0.0271521 + 0.0158445) = 0.121951 + 0.104542 = 0.226493
    low, high = paired_gain_interval(both=14, base_only=0, tuned_only=5, neither=22)
    assert low == pytest.approx(0.011483, abs=5e-6)
    assert high == pytest.approx(0.226493, abs=5e-6)


def test_gain_interval_does_not_collapse_without_flips():
    # 20/20 both: each Wilson interval is (0.838875, 1), φ = 0 (an empty margin): gain 0 ± 0.161125,
    # where a Wald interval would claim exactly [0, 0].
    low, high = paired_gain_interval(20, 0, 0, 0)
    assert low == pytest.approx(-0.161125, abs=1e-6) and high == pytest.approx(0.161125, abs=1e-6)
    assert paired_gain_interval(0, 0, 0, 0) == (-1.0, 1.0)


# -- a suite of the report ---------------------------------------------------------------------

def _case(case_id, base_passed, tuned_passed, error=None):
    return {"id": case_id, "errors": [error] if error else [],
            "base": {"passed": base_passed, "error": None, "output": "x"},
            "tuned": {"passed": tuned_passed, "error": error, "output": None if error else "x"}}


def _suite(both, base_only, tuned_only, neither, errored=0):
    outcomes = [(True, True)] * both + [(True, False)] * base_only + [(False, True)] * tuned_only + \
               [(False, False)] * neither
    cases = [_case(f"c{i}", b, t) for i, (b, t) in enumerate(outcomes)]
    cases += [_case(f"e{i}", True, False, error="tuned model: HTTP 500") for i in range(errored)]
    return {"suite": "s", "file": "s.ft.yaml", "models": {"base": {}, "tuned": {}}, "cases": cases}


def test_significant_gain():
    # 20 answered cases + 1 errored (left out): both 10, base only 1, tuned only 8, neither 1.
    # base 11/20 = 0.55, tuned 18/20 = 0.9, gain 7/20 = 0.35; McNemar b=1, c=8 → 0.0390625.
    # Gain interval (φ = 0 since ad − bc = 10 − 8 = 2 ≤ 10):
    # 0.35 − sqrt((0.9 − 0.698966)² + (0.741802 − 0.55)²) = 0.35 − 0.277854 = 0.072146
    # 0.35 + sqrt((0.972134 − 0.9)² + (0.55 − 0.342085)²) = 0.35 + 0.220073 = 0.570073
    sig = suite_significance(_suite(10, 1, 8, 1, errored=1))
    assert sig["cases"] == 20
    assert sig["base"]["accuracy"] == pytest.approx(0.55) and sig["tuned"]["accuracy"] == pytest.approx(0.9)
    assert sig["tuned"]["ci"] == [pytest.approx(0.698966, abs=1e-5), pytest.approx(0.972134, abs=1e-5)]
    assert sig["gain"]["value"] == pytest.approx(0.35)
    assert sig["gain"]["ci"] == [pytest.approx(0.072146, abs=1e-5), pytest.approx(0.570073, abs=1e-5)]
    assert sig["discordant"] == {"base_only": 1, "tuned_only": 8}
    assert sig["p_value"] == pytest.approx(0.0390625)
    assert sig["too_small"] is False
    assert sig["verdict"] == "gain is significant (p=0.039)"


def test_significant_loss_is_called_a_loss():
    sig = suite_significance(_suite(10, 8, 1, 1))
    assert sig["verdict"] == "loss is significant (p=0.039)"
    assert sig["gain"]["value"] == pytest.approx(-0.35)


def test_not_significant_says_how_many_passes_can_be_noise():
    # 40 cases, b = 3, c = 6: p = 0.5078125
    sig = suite_significance(_suite(25, 3, 6, 6))
    assert sig["too_small"] is False
    assert sig["verdict"] == "not significant (p=0.51): 3 more passes can be noise"
    assert suite_significance(_suite(25, 4, 4, 7))["verdict"] == "not significant (p=1.00): no net change"
    assert suite_significance(_suite(25, 6, 3, 6))["verdict"].endswith("3 fewer passes can be noise")


def test_too_small_with_five_flips_even_all_one_way():
    # 40 cases, 5 flips all to tuned: the best attainable p is 2/32 = 0.0625 > 0.05
    sig = suite_significance(_suite(30, 0, 5, 5))
    assert sig["p_value"] == pytest.approx(0.0625)
    assert sig["too_small"] is True
    assert sig["verdict"].startswith("too few cases/flips to tell")


def test_too_small_under_ten_cases_even_with_enough_flips():
    # 8 cases, 7 flips all one way: p = 2/128 = 0.015625 < 0.05, but 8 cases are too few to tell
    sig = suite_significance(_suite(1, 0, 7, 0))
    assert sig["p_value"] == pytest.approx(0.015625)
    assert sig["too_small"] is True


def test_paired_counts_skip_errors_and_missing_roles():
    cases = _suite(2, 1, 1, 0, errored=2)["cases"] + [{"id": "no-tuned", "errors": [], "base": {"passed": True}}]
    assert paired_counts(cases) == {"both": 2, "base_only": 1, "tuned_only": 1, "neither": 0}


def test_other_roles_and_missing_roles():
    suite = _suite(10, 1, 8, 1)
    suite["models"]["previous"] = {}
    for case in suite["cases"]:
        case["previous"] = dict(case["tuned"])
    assert suite_significance(suite, tuned="previous")["p_value"] == pytest.approx(0.0390625)
    del suite["models"]["base"]
    assert suite_significance(suite) is None


def test_format_p():
    assert format_p(0.0039) == "0.004"
    assert format_p(0.3828) == "0.38"
    assert format_p(0.0499) == "0.050" and format_p(0.0390625) == "0.039"
    assert format_p(0.0004) == "<0.001"
    assert math.isclose(float(format_p(1.0)), 1.0)
