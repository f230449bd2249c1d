"""Repeats: each model sampled N times per case, a passing rule, flaky cases."""

from __future__ import annotations

import json

import pytest

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"


def write(pytester, body: str) -> None:
    (pytester.path / "s.ft.yaml").write_text(f"suite: s\nmodels: {{tuned: {TUNED}}}\n{body}")


def run(pytester, *args):
    result = pytester.runpytest("-p", "no:cacheprovider", "--ft-report=report.json", *args)
    return result, json.loads((pytester.path / "report.json").read_text())


@pytest.mark.parametrize("rule, passes", [("majority", True), ("all", False), ("any", True), (2, True), (3, False)])
def test_each_rule_decides_from_the_samples(pytester, server, rule, passes):
    write(pytester, f"repeat: 3\npass_if: {rule}\ncases:\n"
                    "  - {id: wobbly, input: 'x CYCLE=A,B,A', expected: A}\n"
                    "  - {id: steady, input: 'y LABEL=A', expected: A}\n")
    result, report = run(pytester, "--ft-disable-recording")
    assert len(server.chat_requests(TUNED)) == 6  # 3 samples of each case
    cases = {c["id"]: c for c in report["suites"][0]["cases"]}
    wobbly, steady = cases["wobbly"]["tuned"], cases["steady"]["tuned"]
    assert sorted(s["output"] for s in wobbly["samples"]) == ["A", "A", "B"]  # samples run concurrently
    assert wobbly["pass_rate"] == pytest.approx(2 / 3) and wobbly["passed"] is passes
    assert wobbly["flaky"] is True and steady["flaky"] is False and steady["pass_rate"] == 1.0
    assert report["suites"][0]["flaky"] == ["wobbly"]
    assert report["suites"][0]["models"]["tuned"]["requests"] == 6
    result.stdout.fnmatch_lines(["*flaky (samples disagree) (1): wobbly*"])
    if not passes:
        result.stdout.fnmatch_lines(["*2/3 samples passed (rule: *); answers disagree*"])


def test_samples_are_recorded_and_replayed_in_order(pytester, server):
    write(pytester, "repeat: 4\ncases:\n  - {id: w, input: 'x CYCLE=A,B,B,A', expected: A}\n")
    _, live = run(pytester)
    server.reset()
    _, replayed = run(pytester, "--ft-record-mode=none")
    assert server.requests == []
    outputs = lambda r: sorted(s["output"] for s in r["suites"][0]["cases"][0]["tuned"]["samples"])
    assert outputs(live) == outputs(replayed) == ["A", "A", "B", "B"]
    assert replayed["suites"][0]["cases"][0]["tuned"]["pass_rate"] == 0.5


def test_case_repeat_wins_over_suite_and_command_line(pytester, server):
    write(pytester, "repeat: 2\ncases:\n  - {id: a, input: 'LABEL=A', expected: A, repeat: 5, pass_if: 5}\n"
                    "  - {id: b, input: 'LABEL=B', expected: B}\n")
    run(pytester, "--ft-disable-recording", "--ft-repeat=3")
    asked = [r["body"]["messages"][-1]["content"] for r in server.chat_requests(TUNED)]
    assert asked.count("LABEL=A") == 5 and asked.count("LABEL=B") == 2
    write(pytester, "cases:\n  - {id: c, input: 'LABEL=C', expected: C}\n")
    server.reset()
    run(pytester, "--ft-disable-recording", "--ft-repeat=3")
    assert len(server.chat_requests(TUNED)) == 3


@pytest.mark.parametrize("body, message", [
    ("repeat: 0\n", "s.ft.yaml:3: repeat: must be a whole number from 1 to 100"),
    ("pass_if: sometimes\n", "s.ft.yaml:3: pass_if: must be one of majority, all, any or a number*"),
    ("repeat: 3\npass_if: 5\n", "s.ft.yaml:4: pass_if: 5 passing samples out of repeat: 3 can never happen"),
])
def test_bad_repeat_settings_are_suite_errors(pytester, server, body, message):
    write(pytester, body + "cases:\n  - {id: a, input: x, expected: y}\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines([message])


def test_bad_command_line_rule_is_a_usage_error(pytester, server):
    write(pytester, "cases:\n  - {id: a, input: x, expected: y}\n")
    result = pytester.runpytest("--ft-pass-if=often")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ft-pass-if: expected majority, all, any or a number, got 'often'*"])
