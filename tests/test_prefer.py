"""Pairwise preference end to end: a judge compares tuned and base in both orders.

The fake server's judge prefers the answer holding BETTER; when it cannot tell, it either says tie
or — with ``judge_first`` — picks whichever answer it was shown first, a deliberate position bias.
Asking in both orders must cancel that bias: it may turn into ties, never into wins.
"""

from __future__ import annotations

import json
import textwrap

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:style:abc123"
BASE = "gpt-4o-mini-2024-07-18"


def suite(cases: list[tuple[str, str, str]], extra: str = "") -> str:
    """A style suite: each case's tuned and base answers come from the server's replies."""
    lines = [f"models: {{base: {BASE}, tuned: '{TUNED}'}}", "judge: judge-model", "prefer: {rubric: warmer tone}",
             "grader: {type: not_contains, values: FORBIDDEN}", extra, "cases:"]
    lines += [f"  - {{id: {case_id}, input: 'ticket {case_id}', expected: x}}" for case_id, _, _ in cases]
    return "\n".join(lines) + "\n"


def script(server, cases):
    for case_id, tuned, base in cases:
        server.replies[f"ticket {case_id}"] = {"ft:": tuned, "gpt-4o": base}


def run(pytester, text, *args):
    (pytester.path / "style.ft.yaml").write_text(text)
    result = pytester.runpytest("--ft-report=report.json", "--ft-markdown=report.md", "-p", "no:cacheprovider", *args)
    return result, json.loads((pytester.path / "report.json").read_text())


# 6 cases where tuned is really better, 2 where base is, 12 where neither is.
CASES = ([(f"w{i}", f"Happy to help BETTER {i}", f"ok {i}") for i in range(6)]
         + [(f"l{i}", f"ok {i}", f"Happy to help BETTER {i}") for i in range(2)]
         + [(f"t{i}", f"fine {i}", f"sure {i}") for i in range(12)])


def test_the_swap_cancels_a_judge_that_always_prefers_the_first_answer(pytester, server):
    server.judge_first = True
    script(server, CASES)
    result, report = run(pytester, suite(CASES, "thresholds: {min_win_rate: 0.6}"))
    pref = report["suites"][0]["preference"]
    # Biased in 12 of 20 cases, yet those are ties: only real differences are wins or losses.
    assert (pref["wins"], pref["ties"], pref["losses"], pref["unscored"]) == (6, 12, 2, 0)
    assert pref["cases"]["win"] == [f"w{i}" for i in range(6)] and pref["cases"]["loss"] == ["l0", "l1"]
    assert pref["win_rate"] == (6 + 12 / 2) / 20
    assert pref["position_bias"] == (12 * 2 + 8) / (12 * 2 + 8 * 2)  # the 24 biased replies all picked A
    assert round(pref["sign_test_p"], 4) == 0.2891  # 6 vs 2: P(X<=2 or X>=6), X~Bin(8, 1/2)
    assert len(server.chat_requests("judge-model")) == 2 * 20  # both orders, every case
    assert report["suites"][0]["judge"]["requests"] == 40  # the judge's tokens are counted apart
    assert result.ret == 0  # win rate 0.6 >= 0.6
    out = result.stdout.str()
    assert "which is better, tuned or base? (judge judge-model, each case in both orders): 6 wins, 12 ties, " \
           "2 losses; win rate of tuned 60.0%" in out
    assert "the judge picked the answer shown first in 80.0% of its decisive replies — a strong position bias" in out

    # The same judge asked in one order only would have handed tuned 18 wins: the swap is what saves it.
    one_order = sum(1 for case_id, tuned, base in CASES if "BETTER" in tuned or "BETTER" not in base)
    assert one_order == 18


def test_an_unbiased_judge_reports_no_position_bias_and_the_gate_reads_the_win_rate(pytester, server):
    script(server, CASES)
    result, report = run(pytester, suite(CASES, "thresholds: {min_win_rate: 0.7}"))
    pref = report["suites"][0]["preference"]
    assert (pref["wins"], pref["ties"], pref["losses"]) == (6, 12, 2)
    assert pref["position_bias"] == 0.5
    assert result.ret == 1
    assert report["suites"][0]["gate"]["failures"] == ["win rate of tuned over base 60.0% < 70.0%"]
    assert "win rate of tuned over base 60.0% \\< 70.0%" in (pytester.path / "report.md").read_text()


def test_unreadable_judge_replies_are_unscored_and_counted_against_max_unscored(pytester, server):
    cases = CASES[:4] + [("u0", "UNREADABLE tuned", "plain")]
    script(server, cases)
    result, report = run(pytester, suite(cases, "thresholds: {max_unscored: 0}"))
    suite_report = report["suites"][0]
    assert suite_report["preference"]["unscored"] == 1 and suite_report["preference"]["cases"]["unscored"] == ["u0"]
    assert suite_report["gate"]["failures"] == ["1 answer(s) or comparison(s) a judge could not score (max 0)"]
    assert result.ret == 1


def test_a_judge_grader_reply_that_cannot_be_read_is_unscored_not_a_miss(pytester, server):
    server.answers["judge-model"] = "I'd rather not say."
    text = textwrap.dedent(f"""
        models: {{base: {BASE}, tuned: '{TUNED}'}}
        judge: judge-model
        grader: {{type: judge, rubric: "is it polite?"}}
        thresholds: {{accuracy: 0.5, max_unscored: 1}}
        cases:
          - {{id: a, input: "x LABEL=hi", expected: hi}}
          - {{id: b, input: "y LABEL=ho", expected: ho}}
    """)
    result, report = run(pytester, text)
    s = report["suites"][0]
    assert [c["tuned"]["verdict"] for c in s["cases"]] == ["unscored", "unscored"]
    assert s["models"]["tuned"]["unscored"] == 2 and s["models"]["tuned"]["accuracy"] is None
    assert s["fixed"] == [] and s["regressions"] == []  # nothing flips on an unscored answer
    assert "2 answer(s) or comparison(s) a judge could not score (max 1)" in s["gate"]["failures"]
    assert "unscored (a judge could not be read; left out of accuracy): base 2, tuned 2" in result.stdout.str()


def test_prefer_mistakes_are_suite_errors(pytester, server):
    for text, message in [
        (f"models: {{base: {BASE}, tuned: '{TUNED}'}}\nprefer: {{rubric: x}}\n", "prefer: a pairwise judgement needs a judge"),
        (f"models: {{base: {BASE}, tuned: '{TUNED}'}}\njudge: j\nprefer: {{roles: [tuned, fewshot]}}\n",
         "prefer.roles: fewshot: no such model role"),
        (f"models: {{base: {BASE}, tuned: '{TUNED}'}}\njudge: j\nprefer: {{roles: [tuned]}}\n",
         "prefer.roles: must be two different roles"),
    ]:
        (pytester.path / "s.ft.yaml").write_text(text + "cases: [{id: a, input: x, expected: y}]\n")
        result = pytester.runpytest("-p", "no:cacheprovider")
        assert result.ret == 1 and message in result.stdout.str(), (text, result.stdout.str())
    assert server.chat_requests() == []
