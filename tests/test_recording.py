"""Record and replay: vcrpy cassettes per case, matching, modes, secrets, xdist, stale files."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
import yaml
from conftest import without_run_details

from pytest_ft.recording import audit as cassettes_cli
from pytest_ft.cli import main as cli_main

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"
BASE = "gpt-4o-mini-2024-07-18"
KEY = "sk-" "test-key-0123456789abcdefghijklmnop"


def suite(cases: str, extra: str = "") -> str:
    return f"suite: rec\nmodels: {{tuned: {TUNED}}}\nparams: {{temperature: 0}}\n{extra}cases:\n" + textwrap.dedent(cases)


CASES = """\
  - {id: a, input: "one LABEL=A", expected: A}
  - {id: b, input: "two LABEL=B BASEWRONG", expected: B}
"""


def run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "--ft-report=report.json", *args)


def report(pytester) -> dict:
    return json.loads((pytester.path / "report.json").read_text())


def test_first_run_records_one_cassette_per_case_and_the_second_replays(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    first = run(pytester)
    first.assert_outcomes(passed=2)
    assert len(server.chat_requests()) == 4
    files = sorted(p.relative_to(pytester.path).as_posix() for p in (pytester.path / "cassettes").rglob("*.yaml"))
    assert files == ["cassettes/rec/a.yaml", "cassettes/rec/b.yaml"]
    cassette = yaml.safe_load((pytester.path / "cassettes/rec/b.yaml").read_text())
    bodies = [json.loads(i["request"]["body"]) for i in cassette["interactions"]]
    assert {b["model"] for b in bodies} == {TUNED, BASE}  # base and tuned calls of the case, together
    assert report(pytester)["calls"] == {"replayed": 0, "live": 4}

    server.reset()
    second = run(pytester)
    second.assert_outcomes(passed=2)
    assert server.chat_requests() == []
    assert report(pytester)["calls"] == {"replayed": 4, "live": 0}
    second.stdout.fnmatch_lines(["model calls: 4 replayed from recordings, 0 live"])


def test_cassettes_are_readable_text(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    text = (pytester.path / "cassettes/rec/a.yaml").read_text()
    assert '"content": "one LABEL=A"' in text  # decoded, pretty JSON, not base64 or gzip
    assert "!!binary" not in text and "\\n" not in text


def test_replay_with_no_key_and_no_network_gives_identical_tables(pytester, server, monkeypatch):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES, "thresholds: {accuracy: 0.5}\n"))
    live = run(pytester)
    live_report = report(pytester)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens on the discard port
    replay = run(pytester, "--ft-record-mode=none")
    replay.assert_outcomes(passed=2)
    replayed = without_run_details(report(pytester))
    live_report = without_run_details(live_report)
    assert replayed == live_report
    table = [line for line in live.stdout.lines if line.startswith(("base ", "tuned "))]
    assert [re.sub(r"\s+\d+/\d+(?=\s|$)", "", line) for line in table] == \
           [re.sub(r"\s+\d+/\d+(?=\s|$)", "", line) for line in replay.stdout.lines if line.startswith(("base ", "tuned "))]


def test_none_mode_fails_an_unrecorded_case_naming_case_model_and_cassette(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    (pytester.path / "s.ft.yaml").write_text(suite(CASES + '  - {id: c, input: "new LABEL=C", expected: C}\n'))
    server.reset()
    result = run(pytester, "--ft-record-mode=none")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([f"tuned model '{TUNED}': case 'c': no recording of this request in "
                                 f"*cassettes/rec/c.yaml (record mode 'none' replays only*"])
    assert server.requests == []  # no connection left the machine
    assert not (pytester.path / "cassettes/rec/c.yaml").exists()


def test_a_changed_prompt_parameter_or_model_misses_but_key_order_does_not(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    server.reset()
    # same content, other key order and spacing: replays
    reordered = CASES.replace('{id: a, input: "one LABEL=A", expected: A}', '{expected: A,   input: "one LABEL=A", id: a}')
    (pytester.path / "s.ft.yaml").write_text(suite(reordered).replace("params: {temperature: 0}",
                                                                      "params:\n  temperature: 0.0"))
    run(pytester, "--ft-record-mode=none").assert_outcomes(passed=2)

    for changed in (suite(CASES.replace("one LABEL=A", "one! LABEL=A")),
                    suite(CASES).replace("temperature: 0", "temperature: 0.5"),
                    suite(CASES).replace(TUNED, TUNED + "-v2")):
        (pytester.path / "s.ft.yaml").write_text(changed)
        result = run(pytester, "--ft-record-mode=none")
        assert result.parseoutcomes().get("errors") >= 1, changed


def test_once_rerecords_exactly_what_changed_and_drops_the_stale_call(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    b_before = (pytester.path / "cassettes/rec/b.yaml").read_text()
    server.reset()
    (pytester.path / "s.ft.yaml").write_text(suite(CASES.replace("one LABEL=A", "uno LABEL=A")))
    run(pytester).assert_outcomes(passed=2)
    assert [r["body"]["messages"][-1]["content"] for r in server.chat_requests()] == ["uno LABEL=A"] * 2
    assert (pytester.path / "cassettes/rec/b.yaml").read_text() == b_before  # untouched
    a = yaml.safe_load((pytester.path / "cassettes/rec/a.yaml").read_text())
    assert len(a["interactions"]) == 2 and "one LABEL" not in json.dumps(a)


def test_new_episodes_keeps_old_calls_and_all_rerecords(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    (pytester.path / "s.ft.yaml").write_text(suite(CASES.replace("one LABEL=A", "uno LABEL=A")))
    run(pytester, "--ft-record-mode=new_episodes")
    a = yaml.safe_load((pytester.path / "cassettes/rec/a.yaml").read_text())
    assert len(a["interactions"]) == 4  # the old prompt's calls are kept
    server.reset()
    run(pytester, "--ft-record-mode=all").assert_outcomes(passed=2)
    assert len(server.chat_requests()) == 4  # everything asked again
    a = yaml.safe_load((pytester.path / "cassettes/rec/a.yaml").read_text())
    assert len(a["interactions"]) == 4  # re-recorded calls replace their old versions, not duplicate them


def test_errors_are_never_recorded(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite('  - {id: a, input: "x LABEL=A FAULT=429x1", expected: A}\n'))
    run(pytester).assert_outcomes(passed=1)
    cassette = yaml.safe_load((pytester.path / "cassettes/rec/a.yaml").read_text())
    assert [i["response"]["status"]["code"] for i in cassette["interactions"]] == [200, 200]
    server.reset()
    run(pytester, "--ft-record-mode=none").assert_outcomes(passed=1)


def test_many_concurrent_cases_each_get_their_own_answer(pytester, server):
    cases = "".join(f'  - {{id: c{i}, input: "x{i} LABEL=L{i} SLOW={(i * 37) % 90}", expected: L{i}}}\n'
                    for i in range(60))
    (pytester.path / "s.ft.yaml").write_text(suite(cases))
    run(pytester, "--ft-concurrency=32").assert_outcomes(passed=60)
    assert server.max_in_flight > 8
    for i in range(60):
        text = (pytester.path / f"cassettes/rec/c{i}.yaml").read_text()
        assert f"LABEL=L{i} " in text and f'"content": "L{i}"' in text
        assert f"LABEL=L{i + 1} " not in text
    run(pytester, "--ft-record-mode=none", "--ft-concurrency=32").assert_outcomes(passed=60)


def test_identical_repeated_requests_replay_in_order(pytester, server):
    pytester.makepyfile(test_fixture_sampling=f"""
        def test_sampled_twice(ft_complete):
            first = ft_complete("same question COUNT")
            second = ft_complete("same question COUNT")
            assert (first, second) == ("answer 1", "answer 2")
        """)
    run(pytester, f"--ft-model={TUNED}").assert_outcomes(passed=1)
    server.reset()
    run(pytester, f"--ft-model={TUNED}", "--ft-record-mode=none").assert_outcomes(passed=1)
    assert server.requests == []
    assert (pytester.path / "cassettes/test_fixture_sampling/test_sampled_twice.yaml").exists()


def test_no_secret_reaches_a_cassette_or_report(pytester, monkeypatch):
    from openai_server import FakeOpenAI

    with FakeOpenAI(leaky=True) as leaky:
        monkeypatch.setenv("OPENAI_BASE_URL", leaky.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_ORG_ID", "org-" "MyOrganization0123456789")
        monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_" "MyProject0123456789abcdef")
        (pytester.path / "s.ft.yaml").write_text(suite(CASES, "judge: gpt-4o-judge\n").replace(
            "cases:", "grader: {type: judge, rubric: 'GOOD?'}\ncases:"))
        pytester.makepyfile(test_fixture="def test_f(ft_complete):\n    ft_complete('hi LABEL=x')\n")
        result = run(pytester, "--junitxml=junit.xml", f"--ft-model={TUNED}")
        result.assert_outcomes(passed=3)
        sent = {k.lower(): v for k, v in leaky.chat_requests()[0]["headers"].items()}
        assert sent["openai-organization"] == "org-" "MyOrganization0123456789"  # the client did send them
    written = [p for p in pytester.path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any("cassettes" in p.parts for p in written)
    secrets = [KEY, "org-MyOrganization", "proj_MyProject", "org-LeakyOrganization", "proj_LeakyProject",
               "__cf_bm", "LeakyCookie", "req_0123456789abcdef"]
    for path in written:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"{secret} in {path}"
        if path.suffix == ".yaml" and "cassettes" in path.parts:
            lowered = text.lower()
            for header in ("authorization", "api-key", "openai-organization", "openai-project", "cookie"):
                assert header not in lowered, f"{header} in {path}"
    output = result.stdout.str() + result.stderr.str()
    assert KEY not in output and "org-MyOrganization" not in output


def test_xdist_records_and_replays(pytester, server):
    cases = "".join(f'  - {{id: c{i}, input: "x{i} LABEL=L{i}", expected: L{i}}}\n' for i in range(20))
    (pytester.path / "s.ft.yaml").write_text(suite(cases))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=20)
    assert len(list((pytester.path / "cassettes/rec").glob("*.yaml"))) == 20
    server.reset()
    result = pytester.runpytest_subprocess("-n", "2", "--ft-record-mode=none", "--ft-report=report.json")
    result.assert_outcomes(passed=20)
    assert server.requests == []
    assert report(pytester)["calls"] == {"replayed": 40, "live": 0}


def test_cassette_dir_option_moves_the_recordings(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester, "--ft-cassette-dir=recordings")
    assert sorted(p.name for p in (pytester.path / "recordings/rec").iterdir()) == ["a.yaml", "b.yaml"]
    assert not (pytester.path / "cassettes").exists()


def test_disable_recording_writes_nothing(pytester, server):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester, "--ft-disable-recording").assert_outcomes(passed=2)
    assert not (pytester.path / "cassettes").exists()


def test_cassettes_command_lists_and_prunes_stale_and_missing(pytester, server, capsys):
    (pytester.path / "s.ft.yaml").write_text(suite(CASES))
    run(pytester)
    (pytester.path / "s.ft.yaml").write_text(suite(CASES.replace("id: a", "id: a2")))
    (pytester.path / "other").mkdir()
    (pytester.path / "other/broken.ft.yaml").write_text("cases: [")
    audit = cassettes_cli.audit([pytester.path])
    assert [p.name for p in audit.stale] == ["a.yaml"]
    assert [(case, p.name) for _, case, p in audit.missing] == [("a2", "a2.yaml")]
    assert len(audit.invalid) == 1 and "broken.ft.yaml" in audit.invalid[0]

    capsys.readouterr()
    assert cli_main(["cassettes", str(pytester.path), "--json"]) == 1  # a suite does not load
    out = json.loads(capsys.readouterr().out)
    assert out["recorded"] == 1 and out["removed"] == 0 and out["stale"][0].endswith("cassettes/rec/a.yaml")
    (pytester.path / "other/broken.ft.yaml").unlink()
    assert cli_main(["cassettes", str(pytester.path), "--prune"]) == 0
    text = capsys.readouterr().out
    assert "1 case(s) recorded, 1 without a recording, 1 stale recording(s)" in text
    assert "missing" in text and "s.ft.yaml::a2" in text and "removed" in text
    assert not (pytester.path / "cassettes/rec/a.yaml").exists()
    assert (pytester.path / "cassettes/rec/b.yaml").exists()
