"""Hostile servers, broken recordings and interrupted runs: nothing secret is written, and no
failure is ever reported as a pass."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from hostile_server import HostileServer

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"
BASE = "gpt-4o-mini-2024-07-18"
# Built from pieces: no literal here looks like a real credential.
KEY = "sk-" "proj-" + "Kq7" * 12
ORG = "org-" + "Zt4w" * 5
PROJECT = "proj_" + "Hy8r" * 5
OTHER_KEY = "vllmtoken-" + "a1b2" * 6  # a key of no known shape, read through api_key_env
PASSWORD = "s3cret" "Passw0rd"
SECRETS = (KEY, ORG, PROJECT, OTHER_KEY, PASSWORD)


@pytest.fixture(scope="module")
def hostile():
    with HostileServer() as server:
        yield server


@pytest.fixture
def secrets_env(monkeypatch, hostile, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_ORG_ID", ORG)
    monkeypatch.setenv("OPENAI_PROJECT_ID", PROJECT)
    monkeypatch.setenv("VLLM_TOKEN", OTHER_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", hostile.url)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "step_summary.md"))
    return hostile


def write(pytester, name: str, text: str) -> Path:
    path = pytester.path / name
    path.write_text(textwrap.dedent(text))
    return path


def report(pytester, name: str = "report.json") -> dict:
    return json.loads((pytester.path / name).read_text())


def run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "--ft-report=report.json", *args)


# -- secrets ----------------------------------------------------------------------------------

def test_no_credential_reaches_any_file_or_the_terminal_at_any_log_level(pytester, secrets_env, tmp_path):
    with_password = secrets_env.url.replace("http://", f"http://reviewer:{PASSWORD}@")
    write(pytester, "leak.ft.yaml", f"""
        suite: leak
        models:
          base: {{model: {BASE}, base_url: "{with_password}"}}
          tuned: {{model: {TUNED}, api_key_env: VLLM_TOKEN}}
          previous: {BASE}
        thresholds: {{accuracy: 0.0}}
        cases:
          - {{id: e401, input: "ECHO401", expected: OK}}
          - {{id: e400, input: "ECHO400", expected: OK}}
          - {{id: e500, input: "ECHO500", expected: OK}}
          - {{id: text401, input: "ECHO401TEXT", expected: OK}}
          - {{id: answer, input: "ECHOANSWER", expected: OK}}
          - {{id: fine, input: "hello", expected: OK}}
        """)
    outputs = ["--ft-markdown=out/report.md", "--ft-html=out/report.html", "--junitxml=out/junit.xml",
               "-rA", "-v", "--log-level=DEBUG", "--log-file=out/debug.log", "--log-file-level=DEBUG",
               "--ft-retries=0"]
    first = run(pytester, *outputs)
    data = report(pytester)
    suite = data["suites"][0]
    assert sorted(suite["errored"]) == ["e400", "e401", "e500", "text401"]
    assert data["passed"] is False
    errors = {case["id"]: " ".join(case["errors"]) for case in suite["cases"] if case["errors"]}
    assert ("HTTP 401: bad request from authorization: Bearer REDACTED openai-organization: REDACTED "
            "openai-project: REDACTED") in errors["e401"]  # the API's message, masked
    assert "HTTP 401: Unauthorized: authorization: Basic REDACTED" in errors["text401"]  # a plain-text message
    assert "HTTP 500" in errors["e500"] and "HTTP 400" in errors["e400"]
    answer = next(case for case in suite["cases"] if case["id"] == "answer")
    assert "REDACTED" in answer["tuned"]["output"]

    second = run(pytester, *outputs, "--ft-record-mode=none")  # the replay, from what the first wrote
    assert second.parseoutcomes().get("xfailed") == first.parseoutcomes().get("xfailed") == 1
    echoed = [r["headers"] for r in secrets_env.requests]
    for secret in (KEY, ORG, PROJECT, OTHER_KEY):
        assert any(secret in str(h) for h in echoed)  # each was sent, and echoed back

    written = [p for p in pytester.path.rglob("*") if p.is_file() and p.name != "leak.ft.yaml"]
    written += [tmp_path / "step_summary.md"]
    assert {p.name for p in written} >= {"report.json", "report.md", "report.html", "junit.xml", "debug.log",
                                         "answer.yaml", "fine.yaml", "step_summary.md"}
    for text, where in [(p.read_text(errors="replace"), p) for p in written] + [
            (first.stdout.str() + first.stderr.str(), "terminal (recording)"),
            (second.stdout.str() + second.stderr.str(), "terminal (replay)")]:
        for secret in SECRETS:
            assert secret not in text, f"{secret[:6]}… in {where}"
    cassette = yaml.safe_load((pytester.path / "cassettes/leak/fine.yaml").read_text())
    assert all("@" not in i["request"]["uri"] for i in cassette["interactions"])


# -- answers that cannot be read ----------------------------------------------------------------

@pytest.mark.parametrize("marker, message", [
    ("NOTJSON", "the response is not JSON"),
    ("BROKENJSON", "the response is not JSON"),
    ('USAGE="lots"', "impossible usage"),
    ('USAGE={"prompt_tokens": "5", "completion_tokens": 1}', "impossible token count prompt_tokens"),
    ('USAGE={"prompt_tokens": -5, "completion_tokens": 1}', "impossible token count prompt_tokens"),
    ('USAGE={"prompt_tokens": 5, "completion_tokens": 1e300}', "impossible token count completion_tokens"),
    ('USAGE={"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": true}}', "cached_tokens"),
])
def test_an_answer_that_cannot_be_read_is_the_cases_error_and_never_recorded(pytester, secrets_env,
                                                                               marker, message):
    write(pytester, "bad.ft.yaml", f"""
        suite: bad
        models: {{base: {BASE}, tuned: {TUNED}}}
        cases:
          - {{id: good, input: "hello", expected: OK}}
          - id: bad
            input: '{marker}'
            expected: OK
        """)
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"base model '{BASE}': *{message}*"])
    data = report(pytester)
    assert data["passed"] is False and data["suites"][0]["errored"] == ["bad"]
    assert data["suites"][0]["models"]["tuned"]["prompt_tokens"] == 5  # only the good case's usage
    assert not (pytester.path / "cassettes/bad/bad.yaml").exists()

    replay = run(pytester, "--ft-record-mode=none")  # replays as a missing recording, not a traceback
    replay.assert_outcomes(passed=1, errors=1)
    replay.stdout.fnmatch_lines([f"base model '{BASE}': case 'bad': no recording of this request*"])


def test_a_recording_whose_answer_is_broken_is_the_cases_error(pytester, server):
    write(pytester, "s.ft.yaml", f"""
        suite: s
        models: {{base: {BASE}, tuned: {TUNED}}}
        cases:
          - {{id: a, input: "LABEL=A", expected: A}}
          - {{id: b, input: "LABEL=B", expected: B}}
        """)
    run(pytester).assert_outcomes(passed=2)
    cassette = pytester.path / "cassettes/s/a.yaml"
    data = yaml.safe_load(cassette.read_text())
    data["interactions"][0]["response"]["body"]["string"] = "{broken"
    cassette.write_text(yaml.safe_dump(data))
    result = run(pytester, "--ft-record-mode=none")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the recording *a.yaml holds an answer that is not JSON*"])
    assert report(pytester)["passed"] is False and report(pytester)["suites"][0]["errored"] == ["a"]
    assert cassette.read_text() == yaml.safe_dump(data)  # never written over


def test_a_trickling_answer_is_bounded_by_the_timeout(pytester, secrets_env):
    write(pytester, "slow.ft.yaml", f"""
        suite: slow
        models: {{base: {BASE}, tuned: {TUNED}}}
        cases:
          - {{id: trickle, input: "TRICKLE", expected: OK}}
        """)
    result = run(pytester, "--ft-timeout=1", "--ft-retries=0", "--ft-disable-recording")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*request timed out (no complete answer within 1 s*"])


# -- any failure of a case is its ERROR ---------------------------------------------------------

def test_an_unexpected_failure_in_the_runner_is_the_cases_error_and_fails_the_gate(pytester, server, monkeypatch):
    from pytest_ft.run.runner import Runner

    real = Runner.run_case

    async def run_case(self, job):
        if job.case_id == "b":
            raise RuntimeError("something nobody expected")
        return await real(self, job)

    monkeypatch.setattr(Runner, "run_case", run_case)
    write(pytester, "s.ft.yaml", f"""
        suite: s
        models: {{base: {BASE}, tuned: {TUNED}}}
        thresholds: {{accuracy: 0.0}}
        cases:
          - {{id: a, input: "LABEL=A", expected: A}}
          - {{id: b, input: "LABEL=B", expected: B}}
        """)
    result = run(pytester, "--ft-markdown=report.md")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["RuntimeError: something nobody expected"])
    assert "Traceback" not in result.stdout.str()
    data = report(pytester)
    suite = data["suites"][0]
    assert data["passed"] is False and suite["errored"] == ["b"] and len(suite["cases"]) == 2
    assert "Gate failed" in (pytester.path / "report.md").read_text()
    assert result.ret == 1


def test_a_cassette_dir_that_cannot_be_written_is_the_cases_error(pytester, server):
    write(pytester, "s.ft.yaml", f"""
        suite: s
        models: {{base: {BASE}, tuned: {TUNED}}}
        cases:
          - {{id: a, input: "LABEL=A", expected: A}}
        """)
    (pytester.path / "cassettes").write_text("a file where the folder should be")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["cannot write the recording *"])
    assert report(pytester)["passed"] is False


@pytest.mark.parametrize("option, target, message", [
    ("--ft-cassette-dir", "a_file", "--ft-cassette-dir: * is not a folder"),
    ("--ft-report", "a_folder", "--ft-report: * is a folder*"),
    ("--ft-html", "a_folder", "--ft-html: * is a folder*"),
    ("--ft-markdown", "a_file/report.md", "--ft-markdown: * lies under a file*"),
    ("--ft-timeout", "nan", "--ft-timeout: expected a number, got 'nan'"),
    ("--ft-min-accuracy", "nan", "--ft-min-accuracy: expected a number, got 'nan'"),
    ("--ft-timeout", "0", "--ft-timeout must be more than 0, got 0"),
    ("--ft-max-regressions", "-1", "--ft-max-regressions must be 0 or more, got -1"),
    ("--ft-repeat", "101", "--ft-repeat must be at most 100, got 101"),
    ("--ft-pass-if", "some", "--ft-pass-if: expected majority, all, any or a number, got 'some'"),
    ("--ft-record-mode", "sometimes", "--ft-record-mode: invalid choice: 'sometimes'*"),
])
def test_bad_options_are_usage_errors_naming_the_option(pytester, server, option, target, message):
    (pytester.path / "a_file").write_text("x")
    (pytester.path / "a_folder").mkdir()
    result = pytester.runpytest("-p", "no:cacheprovider", f"{option}={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_two_suite_files_recording_into_one_folder_is_an_error_naming_both(pytester, server):
    for name in ("one", "two"):
        write(pytester, f"{name}.ft.yaml", f"""
            suite: same
            models: {{base: {BASE}, tuned: {TUNED}}}
            cases:
              - {{id: a, input: "LABEL=A", expected: A}}
            """)
    write(pytester, "other.ft.yaml", f"""
        models: {{base: {BASE}, tuned: {TUNED}}}
        cases:
          - {{id: a, input: "LABEL=A", expected: A}}
        """)
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*two.ft.yaml: suite: one.ft.yaml records into the same folder cassettes/same*"])
    assert report(pytester)["passed"] is False
    assert sorted(p.name for p in (pytester.path / "cassettes").rglob("*.yaml")) == ["a.yaml", "a.yaml"]


# -- runs that did not finish --------------------------------------------------------------------

SUITE = f"""
    suite: s
    models: {{base: {BASE}, tuned: {TUNED}}}
    cases:
      - {{id: a, input: "LABEL=A", expected: A}}
      - {{id: b, input: "LABEL=B", expected: B}}
    """


def test_an_interrupted_run_reports_that_it_did_not_pass(pytester, server):
    write(pytester, "a.ft.yaml", SUITE)
    write(pytester, "test_zz_interrupt.py", "def test_ctrl_c():\n    raise KeyboardInterrupt\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--ft-report=report.json",
                                           "--ft-markdown=report.md", "--ft-html=report.html")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    data = report(pytester)
    assert data["passed"] is False and data["interrupted"].startswith("interrupted")
    assert data["suites"][0]["gate"]["passed"] is True  # what ran was fine; the run still did not pass
    assert "The run did not finish" in (pytester.path / "report.md").read_text()
    assert "NOT FINISHED" in (pytester.path / "report.html").read_text()
    result.stdout.fnmatch_lines(["RUN NOT FINISHED: interrupted*"])


def test_a_run_stopped_by_maxfail_does_not_pass(pytester, server):
    write(pytester, "a.ft.yaml", SUITE)
    write(pytester, "test_aa_fails.py", "def test_fails():\n    assert False\n")
    result = run(pytester, "-x")
    assert result.ret == 1
    data = report(pytester)
    assert data["suites"] == [] or data["passed"] is False
    assert data["passed"] is False and data["interrupted"].startswith("stopped early")


def test_while_the_run_goes_on_its_report_says_it_has_not_passed(pytester, server):
    (pytester.path / "report.json").write_text(json.dumps({"passed": True}))  # an old run's
    write(pytester, "a.ft.yaml", SUITE)
    write(pytester, "test_probe.py", """
        import json, pathlib

        def test_report_during_the_run():
            report = json.loads(pathlib.Path("report.json").read_text())
            assert report["passed"] is False and "has not finished" in report["interrupted"]
        """)
    result = run(pytester)
    result.assert_outcomes(passed=3)
    assert report(pytester)["passed"] is True and report(pytester)["interrupted"] is None


def test_recording_names_stay_within_file_system_limits():
    from pytest_ft.recording.cassette import cassette_path

    long_a, long_b = "x" * 5000 + "a", "x" * 5000 + "b"
    a, b = cassette_path(Path("c"), "s" * 300, long_a), cassette_path(Path("c"), "s" * 300, long_b)
    assert a != b and len(a.name) <= 210 and len(a.parent.name) <= 200
    assert cassette_path(Path("c"), "s", "short") == Path("c/s/short.yaml")  # names that fit are kept


# -- a broken suite fails alone ---------------------------------------------------------------------

# "Billion laughs": nine levels of nine aliases, 9**9 strings once expanded.
BOMB = "[&a1 [" + ", ".join(["lol"] * 9) + "], " + ", ".join(
    f"&a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(2, 10)) + "]"
ONE_CASE = "cases: [{id: a, input: x, expected: x}]\n"
BROKEN_SUITES = {  # name: (suite text after its models, the line the error must name)
    "complex_key": ("? [a, b]\n: 1\n" + ONE_CASE, 2),
    "role_list": ("cases:\n  - id: a\n    messages: [{role: [user], content: x}]\n    expected: x\n", 4),
    "infinite_threshold": ("thresholds: {max_regressions: .inf}\n" + ONE_CASE, 2),
    "nan_threshold": ("thresholds: {min_gain: .nan}\n" + ONE_CASE, 2),
    "metadata_string": ("cases_file: data.jsonl\n", 2),
    "dev_zero": ("cases_file: /dev/zero\n", 2),
    "alias_bomb": (f"description: {BOMB}\n" + ONE_CASE, 2),
    "params_bomb": (f"params: {{x: {BOMB}}}\n" + ONE_CASE, 2),
    "reserved_param": ("params: {model: m-b}\n" + ONE_CASE, 2),
    "colon_id": ("cases: [{id: 'a::b', input: x, expected: x}]\n", 2),
}


def test_each_broken_suite_is_its_own_error_and_the_others_run(pytester, server):
    (pytester.path / "data.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "x"}, {
        "role": "assistant", "content": "x"}], "metadata": "not an object"}) + "\n")
    for name, (text, _) in BROKEN_SUITES.items():
        (pytester.path / f"{name}.ft.yaml").write_text(f"models: {{base: {BASE}, tuned: {TUNED}}}\n" + text)
    write(pytester, "good.ft.yaml", SUITE)
    result = run(pytester)
    assert "Interrupted" not in result.stdout.str() and "INTERNALERROR" not in result.stdout.str()
    result.assert_outcomes(passed=2, errors=len(BROKEN_SUITES))
    data = report(pytester)
    assert data["passed"] is False and [s["suite"] for s in data["suites"]] == ["s"]
    invalid = {Path(e["file"]).name.split(".")[0]: e for e in data["invalid_suites"]}
    assert set(invalid) == set(BROKEN_SUITES)
    for name, (_, line) in BROKEN_SUITES.items():
        assert invalid[name]["line"] == line, invalid[name]
        assert "cannot load the suite" not in invalid[name]["message"], invalid[name]  # found, not caught


@pytest.mark.parametrize("ini, message", [
    ("ft_concurrency = many", "ft_concurrency (ini): invalid literal for int()*"),
    ("ft_timeout = 0", "ft_timeout (ini) must be more than 0, got 0"),
    ("ft_min_accuracy = 1.5", "ft_min_accuracy (ini) must be at most 1, got 1.5"),
    ("ft_pass_if = most", "ft_pass_if (ini): expected majority, all, any or a number, got 'most'"),
    ("ft_record_mode = sometimes", "ft_record_mode (ini): expected one of once, new_episodes, none, all*"),
])
def test_bad_ini_options_are_usage_errors_naming_the_key(pytester, ini, message):
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_ini_options_are_typed(pytester):
    from pytest_ft.config import Options

    pytester.makeini("[pytest]\nft_concurrency = 8\nft_timeout = 2.5\nft_batch = true\nft_pass_if = 2\n"
                     "ft_report = out/r.json\n")
    config = pytester.parseconfig()
    options = Options.from_config(config)
    assert (options.concurrency, options.timeout, options.batch, options.pass_if) == (8, 2.5, True, 2)
    assert options.report == pytester.path / "out/r.json"
