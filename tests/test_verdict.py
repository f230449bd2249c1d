"""One verdict per model and case, and every table, test, gate and renderer agrees with it."""

from __future__ import annotations

import json
import re

import pytest

from pytest_ft.results import Verdict, case_verdict, flip, verdict

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"
BASE = "gpt-4o-mini-2024-07-18"
PREVIOUS = "gpt-4o-previous"


@pytest.mark.parametrize("entry, case_error, expected", [
    ({"passed": True, "error": None}, None, Verdict.PASS),
    ({"passed": False, "error": None}, None, Verdict.FAIL),
    ({"passed": False, "error": "HTTP 500"}, None, Verdict.ERROR),
    ({"passed": True, "error": None}, "the recording cannot be read", Verdict.ERROR),
    ({"passed": False, "unscored": True}, None, Verdict.UNSCORED),
    (None, None, Verdict.ERROR),
    ({"passed": True, "verdict": "fail"}, None, Verdict.FAIL),  # a stored verdict is the verdict
])
def test_verdict(entry, case_error, expected):
    assert verdict(entry, case_error) is expected


def test_another_models_error_does_not_change_base_or_tuned():
    case = {"id": "a", "errors": ["previous model: HTTP 500"], "error": None,
            "base": {"passed": False, "error": None}, "tuned": {"passed": True, "error": None},
            "previous": {"passed": False, "error": "previous model: HTTP 500"}}
    assert [case_verdict(case, r) for r in ("base", "tuned", "previous")] == [Verdict.FAIL, Verdict.PASS, Verdict.ERROR]
    assert flip(case) == "fixed"
    legacy = {"id": "a", "errors": ["judge failed"], "base": {"passed": False}, "tuned": {"passed": True}}
    assert case_verdict(legacy, "tuned") is Verdict.ERROR  # a report from before verdicts: as it was read then


def test_twelve_flips_count_twelve_everywhere_when_a_third_model_errors(pytester, server):
    """The case from the architecture issue: 12 cases tuning fixed; a third model fails on 6 of them."""
    cases = "".join(f'  - {{id: c{i:02d}, input: "LABEL=A BASEWRONG{" FAILFOR=previous" if i < 6 else ""}", '
                    f'expected: A}}\n' for i in range(12))
    (pytester.path / "s.ft.yaml").write_text(
        f"suite: s\nmodels: {{base: {BASE}, tuned: {TUNED}, previous: {PREVIOUS}}}\n"
        f"thresholds: {{accuracy: 0.5}}\ncases:\n{cases}")
    args = ["-p", "no:cacheprovider", "--ft-disable-recording"]
    server.answers[TUNED] = "WRONG"  # the baseline: the tuned model before, missing every case
    pytester.runpytest(*args, "--ft-report=before.json")
    del server.answers[TUNED]
    result = pytester.runpytest(*args, "--ft-report=report.json", "--ft-markdown=report.md", "--ft-html=report.html",
                                "--ft-baseline=before.json")
    data = json.loads((pytester.path / "report.json").read_text())
    suite = data["suites"][0]
    twelve = [f"c{i:02d}" for i in range(12)]

    assert sorted(suite["fixed"]) == twelve and suite["regressions"] == []
    assert suite["significance"]["discordant"] == {"base_only": 0, "tuned_only": 12}
    assert suite["significance"]["cases"] == 12 and not suite["significance"]["too_small"]
    assert sorted(suite["baseline"]["fixed"]) == twelve
    assert suite["models"]["previous"]["errors"] == 6 and suite["models"]["tuned"]["errors"] == 0
    assert [case["tuned"]["verdict"] for case in suite["cases"]] == ["pass"] * 12
    assert sorted(suite["errored"]) == twelve[:6]
    gate = " ".join(suite["gate"]["failures"])
    assert "not significant" not in gate and "errors: previous 6" in gate

    result.stdout.fnmatch_lines(["*McNemar p<0.001*", "fixed by tuning (12): *"])
    markdown = (pytester.path / "report.md").read_text()
    assert "Fixed by tuning (12)" in markdown or "fixed by tuning (12)" in markdown.lower()
    html = (pytester.path / "report.html").read_text()
    assert len(re.findall(r'data-flip="1"', html)) == 12
    assert html.count("fixed by tuning</span>") == 12
    assert result.ret == 1  # the previous model's errors are errors of the run
