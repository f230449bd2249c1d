"""Batch mode end to end against the fake server's Batch API."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import without_run_details

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"

CASES = """\
  - {id: a, input: "one LABEL=A", expected: A}
  - {id: b, input: "two LABEL=B BASEWRONG", expected: B}
  - {id: c, input: "three LABEL=C TUNEDWRONG", expected: C}
  - {id: d, input: "four LABEL=D", expected: D}
"""


def write_suite(pytester, cases: str = CASES, extra: str = "thresholds: {accuracy: 0.5}\n") -> None:
    (pytester.path / "s.ft.yaml").write_text(f"suite: s\nmodels: {{tuned: {TUNED}}}\n{extra}cases:\n{cases}")


def run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "--ft-batch-poll=0.01", "--ft-report=report.json", *args)


def report(pytester) -> dict:
    return json.loads((pytester.path / "report.json").read_text())


def test_batch_mode_sends_one_batch_and_grades_like_live_mode_at_half_price(pytester, server):
    write_suite(pytester)
    live = run(pytester, "--ft-disable-recording")
    live_report = report(pytester)
    server.reset()
    result = run(pytester, "--ft-batch", "--ft-disable-recording")
    result.assert_outcomes(passed=3, xfailed=1)
    assert result.ret == live.ret == 0
    assert server.chat_requests() == []  # nothing went through /chat/completions
    paths = [r["path"] for r in server.requests]
    assert paths.count("/v1/files") == 1 and paths.count("/v1/batches") == 1
    assert paths.count("/v1/batches/batch_0001") == 4  # validating, in_progress, finalizing, completed
    [created] = [r for r in server.requests if r["path"] == "/v1/batches"]
    assert created["body"]["completion_window"] == "24h" and created["body"]["endpoint"] == "/v1/chat/completions"
    [upload] = [f for f in server.files.values() if f["purpose"] == "batch"]
    lines = [json.loads(x) for x in upload["content"].decode().splitlines()]
    assert upload["purpose"] == "batch" and len(lines) == 8
    assert {line["custom_id"] for line in lines} == {f"{i}:{role}" for i in range(4) for role in ("base", "tuned")}
    assert all(line["method"] == "POST" and line["url"] == "/v1/chat/completions" for line in lines)

    batch_report = report(pytester)
    for role in ("base", "tuned"):
        live_model, batch_model = live_report["suites"][0]["models"][role], batch_report["suites"][0]["models"][role]
        assert batch_model["passed"] == live_model["passed"]
        assert batch_model["prompt_tokens"] == live_model["prompt_tokens"]
        assert batch_model["cost_usd"] == pytest.approx(live_model["cost_usd"] / 2)
    assert batch_report["suites"][0]["batch"] is True
    assert batch_report["suites"][0]["fixed"] == ["b"] and batch_report["suites"][0]["regressions"] == ["c"]
    result.stdout.fnmatch_lines(["*submitted batch batch_0001 (models, 8 requests, completion window 24h)*",
                                 "*batch batch_0001 validating*", "*batch batch_0001 in_progress*",
                                 "*batch batch_0001 finalizing*", "*batch batch_0001 completed (8/8 done, 0 failed)*",
                                 "*costs are at batch rates (half the standard price)*"])


def test_a_request_the_batch_reports_failed_is_an_error_on_its_case(pytester, server):
    write_suite(pytester, CASES + '  - {id: e, input: "five LABEL=E FAULT=400", expected: E}\n')
    result = run(pytester, "--ft-batch", "--ft-disable-recording")
    result.assert_outcomes(passed=3, xfailed=1, errors=1)
    result.stdout.fnmatch_lines([f"tuned model '{TUNED}': batch request failed: HTTP 400: The model `{TUNED}` "
                                 "does not exist (model_not_found)"])


def test_judge_calls_go_in_a_second_batch(pytester, server):
    write_suite(pytester, '  - {id: g, input: "GOOD LABEL=fine", expected: fine}\n'
                          '  - {id: r, input: "LABEL=rude", expected: polite}\n',
                extra="judge: gpt-4o-judge\ngrader: {type: judge, rubric: 'polite?', threshold: 0.5}\n")
    result = run(pytester, "--ft-batch", "--ft-disable-recording")
    result.assert_outcomes(passed=1, failed=1)
    creates = [r["body"] for r in server.requests if r["path"] == "/v1/batches"]
    assert len(creates) == 2
    judge_input = next(f for f in server.files.values() if f["purpose"] == "batch" and b"judge1-" in f["content"])
    judged = [json.loads(x)["body"] for x in judge_input["content"].decode().splitlines()]
    assert {b["model"] for b in judged} == {"gpt-4o-judge"} and len(judged) == 4
    suite = report(pytester)["suites"][0]
    assert suite["judge"]["requests"] == 4 and suite["judge"]["model"] == "gpt-4o-judge"
    result.stdout.fnmatch_lines(["*submitted batch batch_0002 (judge round 1, 4 requests*"])


@pytest.mark.parametrize("outcome, expected, message", [
    ("failed", dict(errors=4), "batch batch_0001 failed: line 2: Model 'nope' is not available for batch "
                               "(invalid_request)"),
    ("expired", dict(passed=2, errors=2), "s: the batch did not finish within its 24-hour window*"),
])
def test_failed_and_expired_batches_are_explained(pytester, server, outcome, expected, message):
    write_suite(pytester)
    server.batch_outcome = outcome
    result = run(pytester, "--ft-batch", "--ft-disable-recording")
    result.assert_outcomes(**expected)
    result.stdout.fnmatch_lines([f"*{message}"])
    assert result.ret == 1
    if outcome == "expired":
        result.stdout.fnmatch_lines([f"tuned model '{TUNED}': batch request failed: not run: This request could not "
                                     "be executed before the completion window expired. (batch_expired)"])


def test_submit_only_then_collect_follows_the_same_batch(pytester, server):
    write_suite(pytester)
    first = run(pytester, "--ft-batch-submit-only", "--ft-disable-recording", "-rs")
    first.assert_outcomes(skipped=4)
    first.stdout.fnmatch_lines(["*submitted in batch batch_0001; run the same command again to collect*"])
    assert [r["path"] for r in server.requests] == ["/v1/files", "/v1/batches"]
    state = list((pytester.path / ".pytest-ft/batches").glob("*.json"))
    assert len(state) == 1 and json.loads(state[0].read_text())["batch_id"] == "batch_0001"

    second = run(pytester, "--ft-batch", "--ft-disable-recording")
    second.assert_outcomes(passed=3, xfailed=1)
    assert len([r for r in server.requests if r["path"] == "/v1/batches"]) == 1  # no second submission
    second.stdout.fnmatch_lines(["*following batch batch_0001 (models) submitted earlier*"])


def test_batch_ini_and_suite_switch(pytester, server):
    write_suite(pytester, extra="batch: true\nthresholds: {accuracy: 0.5}\n")
    run(pytester, "--ft-disable-recording").assert_outcomes(passed=3, xfailed=1)
    assert server.chat_requests() == [] and len(server.batches) == 1
    (pytester.path / "s.ft.yaml").write_text(f"models: {{tuned: {TUNED}}}\nbatch: maybe\ncases:\n{CASES}")
    result = run(pytester)
    result.stdout.fnmatch_lines(["s.ft.yaml:2: batch: must be true or false"])


def test_a_recorded_batch_run_replays_offline_into_identical_tables(pytester, server, monkeypatch):
    write_suite(pytester)
    live = run(pytester, "--ft-batch")
    live_report = report(pytester)
    [cassette] = (pytester.path / "cassettes").glob("s.batch-*.yaml")
    text = cassette.read_text()
    assert "/v1/batches" in text and "/v1/files" in text and "in_progress" in text
    shutil.rmtree(pytester.path / ".pytest-ft")  # a fresh clone has no batch state
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    server.reset()
    replay = run(pytester, "--ft-batch", "--ft-record-mode=none")
    replay.assert_outcomes(passed=3, xfailed=1)
    assert server.requests == []
    replayed = without_run_details(report(pytester))
    live_report = without_run_details(live_report)
    assert replayed == live_report
    table = lambda out: [l for l in out.stdout.lines if l.startswith(("base ", "tuned "))]
    unreplayed = lambda lines: [re.sub(r"\s+\d+/\d+(?=\s|$)", "", line) for line in lines]  # all but "replayed"
    assert unreplayed(table(live)) == unreplayed(table(replay))
