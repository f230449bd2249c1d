"""The plugin's report outputs: Markdown, step summary, HTML, baseline comparison, significance gates."""

from __future__ import annotations

import json

import pytest

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"


def write(pytester, cases: str, thresholds: str = "{accuracy: 0.1}") -> None:
    (pytester.path / "s.ft.yaml").write_text(f"suite: s\nmodels: {{tuned: {TUNED}}}\nthresholds: {thresholds}\n"
                                             f"cases:\n{cases}")


CASES = "".join(f"  - {{id: c{i}, input: 'x{i} LABEL=L{i} {'BASEWRONG' if i < 8 else ''}', expected: L{i}}}\n"
                for i in range(12))


def test_markdown_file_and_github_step_summary(pytester, server, monkeypatch):
    write(pytester, CASES)
    summary = pytester.path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest("--ft-markdown=out/report.md", "--ft-disable-recording")
    assert result.ret == 0
    markdown = (pytester.path / "out/report.md").read_text()
    assert f"| tuned | `{TUNED}` | 12 | 12 | 100.0% [75.8–100.0] |" in markdown
    assert TUNED in markdown and "Fixed by tuning" in markdown
    assert summary.read_text().startswith("# earlier step\n") and markdown in summary.read_text()
    result.stdout.fnmatch_lines(["Markdown report: *out/report.md"])


def test_html_report_is_written_self_contained(pytester, server):
    write(pytester, CASES)
    pytester.runpytest("--ft-html=report.html", "--ft-disable-recording")
    html = (pytester.path / "report.html").read_text()
    assert "<svg" in html and "c11" in html and "http://" not in html.replace("http://www.w3.org", "")


def test_significance_is_reported_and_can_gate(pytester, server):
    write(pytester, CASES, "{max_p_value: 0.05}")
    result = pytester.runpytest("--ft-report=r.json", "--ft-disable-recording")
    significance = json.loads((pytester.path / "r.json").read_text())["suites"][0]["significance"]
    # 8 cases only the tuned model gets right, none the other way: McNemar p = 2 / 2^8
    assert significance["discordant"] == {"base_only": 0, "tuned_only": 8}
    assert significance["p_value"] == pytest.approx(2 / 256)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["is the gain real? +66.7 pp (95% CI *), McNemar p=0.008*"])

    few = "".join(f"  - {{id: c{i}, input: 'x{i} LABEL=L {'BASEWRONG' if i < 2 else ''}', expected: L}}\n"
                  for i in range(4))
    write(pytester, few, "{max_p_value: 0.05}")
    result = pytester.runpytest("--ft-disable-recording")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["GATE FAILED: gain not significant: McNemar p=0.5* > 0.05 (too few cases or flips to tell)"])


def test_baseline_comparison_lists_regressions_fixes_added_removed_and_gates(pytester, server):
    before = "".join(f"  - {{id: c{i}, input: 'x{i} LABEL=L {'TUNEDWRONG' if i == 0 else ''}', expected: L}}\n"
                     for i in range(4))
    write(pytester, before)
    pytester.runpytest("--ft-report=prod.json", "--ft-disable-recording")
    # now: c0 fixed, c1 regressed, c3 removed, c9 added
    after = ("  - {id: c0, input: 'x0 LABEL=L', expected: L}\n"
             "  - {id: c1, input: 'x1 LABEL=L TUNEDWRONG', expected: L}\n"
             "  - {id: c2, input: 'x2 LABEL=L', expected: L}\n"
             "  - {id: c9, input: 'x9 LABEL=L', expected: L}\n")
    write(pytester, after, "{accuracy: 0.1, max_regressions: 0}")
    result = pytester.runpytest("--ft-baseline=prod.json", "--ft-report=now.json", "--ft-disable-recording")
    assert result.ret == 1
    since = json.loads((pytester.path / "now.json").read_text())["suites"][0]["baseline"]
    assert (since["regressed"], since["fixed"], since["added"], since["removed"]) == (["c1"], ["c0"], ["c9"], ["c3"])
    result.stdout.fnmatch_lines(["since the baseline (matched): accuracy 75.0% → 75.0%", "  regressed (1): c1",
                                 "  fixed (1): c0", "  added (1): c9", "  removed (1): c3",
                                 "GATE FAILED: 1 case(s) regressed since the baseline (max 0): c1"])
    # the command-line option gates the same way, and a tolerance of one passes
    write(pytester, after)
    assert pytester.runpytest("--ft-baseline=prod.json", "--ft-max-regressions=0", "--ft-disable-recording").ret == 1
    assert pytester.runpytest("--ft-baseline=prod.json", "--ft-max-regressions=1", "--ft-disable-recording").ret == 0


def test_an_unreadable_baseline_is_a_usage_error_naming_it(pytester, server):
    write(pytester, CASES)
    (pytester.path / "old.json").write_text("{not json")
    result = pytester.runpytest("--ft-baseline=old.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*old.json*"])
    assert server.requests == []
