"""Replacing a retiring fine-tune: freeze its answers, then gate candidates against them.

The whole workflow through the fake OpenAI server: ``pytest-ft freeze`` records the old model,
the model is shut down (the server answers 404 for it), and one pytest run evaluates two
candidates against its frozen answers — agreement, what each kept and lost, latency, the
retirement warning, the cost section and the gate.
"""

from __future__ import annotations

import datetime
import json
import textwrap

import pytest

from pytest_ft.cli import main

OLD = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:old1"  # the fine-tune being shut down
NEW = "ft:gpt-4.1-mini-2025-04-14:acme:sentiment:new2"  # a new fine-tune
BASE = "gpt-4.1-nano-2025-04-14"  # a cheaper base, prompted
LABELS = ["POSITIVO", "NEGATIVO", "NEUTRO"]


def prompts() -> list[dict]:
    """Ten unlabelled production prompts. The new fine-tune misses one, the prompted base three."""
    lines = []
    for i in range(10):
        markers = f"LABEL={LABELS[i % 3]}"
        if i == 4:
            markers += " WRONGFOR=new2"
        if i in (1, 4, 7):
            markers += " WRONGFOR=nano"
        lines.append({"messages": [{"role": "system", "content": "Classifique o sentimento."},
                                   {"role": "user", "content": f"review {i} {markers}"}],
                      "metadata": {"id": f"r{i}"}})
    return lines


def write(path, text: str):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def frozen(pytester, server, capsys):
    """The old model's answers to the prompts, frozen while it still answers; then it is gone."""
    (pytester.path / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts()))
    server.delay_ms["old1"] = 40
    code = main(["freeze", str(pytester.path / "prompts.jsonl"), "--model", OLD, "--out",
                 str(pytester.path / "frozen.jsonl"), "--base-url", server.url, "--param", "temperature=0"])
    assert code == 0, capsys.readouterr()
    server.retired.add(OLD)
    server.requests.clear()
    today = datetime.date.today()
    write(pytester.path / "retirements.yaml", f"""
        ft:gpt-4o-mini-2024-07-18: {{retires: {today + datetime.timedelta(days=30)}, source: test}}
        gpt-4.1-nano-2025-04-14: {{retires: {today + datetime.timedelta(days=400)}, source: test}}
        ft:gpt-4.1-mini-2025-04-14: {{retires: {today + datetime.timedelta(days=200)}, source: test}}
    """)
    return pytester.path / "frozen.jsonl"


def run(pytester, *args):
    result = pytester.runpytest("--ft-report=report.json", "--ft-markdown=report.md", "--ft-html=report.html",
                                "--ft-retirements=retirements.yaml", "-p", "no:cacheprovider", *args)
    return result, json.loads((pytester.path / "report.json").read_text())


def test_candidates_are_gated_against_the_frozen_answers_of_a_model_that_is_gone(pytester, server, frozen):
    server.delay_ms["new2"] = 120  # the new fine-tune is accurate but slower
    # Labelled by the old model's answers (cases_file = the frozen file); a gate the new model passes.
    write(pytester.path / "keep.ft.yaml", f"""
        suite: keep
        models:
          reference: {{model: "{OLD}", answers: frozen.jsonl}}
          tuned: "{NEW}"
          base: {{model: {BASE}, system: "Responda POSITIVO, NEGATIVO ou NEUTRO."}}
        grader: exact
        params: {{temperature: 0}}
        thresholds: {{min_agreement: 0.85, max_regressions: 1, max_latency_p95_ms: 60000}}
        cases_file: frozen.jsonl
    """)
    # Unlabelled prompts: the reference's answer is the expected one; a gate the new model fails.
    write(pytester.path / "strict.ft.yaml", f"""
        suite: strict
        models:
          reference: {{model: "{OLD}", answers: frozen.jsonl}}
          tuned: "{NEW}"
          base: {BASE}
        agreement: {{type: choices, labels: {LABELS}}}
        thresholds: {{min_agreement: 0.95}}
        cases_file: prompts.jsonl
    """)
    result, report = run(pytester)
    assert result.ret == 1  # strict failed its gate
    keep, strict = sorted(report["suites"], key=lambda s: s["suite"])

    # Nothing asked the model that is gone: its answers came from the frozen file.
    assert {r["body"]["model"] for r in server.chat_requests()} == {NEW, BASE}
    assert len(server.chat_requests()) == 2 * 2 * 10

    assert keep["gate"] == {"passed": True, "failures": [], "models": {
        "base": ["agreement with the reference 70.0% < 85.0%",
                 "3 case(s) regressed against the reference " + OLD + " (max 1): r1, r4, r7"],
        "tuned": []}}
    ref, tuned, base = (keep["models"][r] for r in ("reference", "tuned", "base"))
    assert (ref["accuracy"], ref["replayed"]) == (1.0, 10)  # its own frozen answers
    assert (tuned["accuracy"], tuned["agreement"], tuned["agreed"]) == (0.9, 0.9, 9)
    assert (base["accuracy"], base["agreement"]) == (0.7, 0.7)
    assert keep["reference"]["candidates"]["tuned"] == {"kept": [f"r{i}" for i in range(10) if i != 4],
                                                        "lost": ["r4"], "newly_right": []}
    # Latency: the reference's as frozen, the candidates' as measured; the slow candidate shows it.
    assert 40 <= ref["latency_p50_ms"] <= ref["latency_p95_ms"]
    assert tuned["latency_p50_ms"] >= 120 and tuned["latency_p95_ms"] >= 120
    assert base["latency_p50_ms"] < tuned["latency_p50_ms"]  # the same server, without the 120 ms
    # Cost of the change: per 1,000 requests for each, and the cheapest that passes the gate.
    cost = keep["cost_benefit"]
    assert set(cost["per_1000_requests_usd"]) == {"reference", "tuned", "base"}
    assert cost["per_1000_requests_usd"]["base"] < cost["per_1000_requests_usd"]["tuned"]
    assert cost["cheapest_passing"] == "tuned"  # base is cheaper, but fails the gate

    assert strict["gate"]["passed"] is False
    assert strict["gate"]["failures"] == ["agreement with the reference 90.0% < 95.0%"]
    assert strict["models"]["reference"]["accuracy"] is None  # nothing to grade the reference against
    assert strict["models"]["reference"]["unscored"] == 10
    assert strict["models"]["tuned"]["accuracy"] == 0.9  # right = agreeing with the reference
    assert [c["labelled"] for c in strict["cases"]] == [False] * 10
    assert strict["reference"]["candidates"]["base"]["lost"] == ["r1", "r4", "r7"]

    # The retiring reference is named, with its date, in every output.
    warning = report["retirements"]
    assert [(w["model"], w["days_left"]) for w in warning] == [(OLD, 30)]
    assert "record its answers now" in warning[0]["message"]
    assert (base["days_left"], tuned["days_left"], ref["days_left"]) == (400, 200, 30)
    out = result.stdout.str()
    assert f"warning: {OLD} retires on" in out
    assert "against the reference " + OLD in out and "tuned: agreement 90.0%, kept 9, lost 1, newly right 0" in out
    assert "cheapest model that passes the gate: tuned" in out
    assert "GATE FAILED: agreement with the reference 90.0% < 95.0%" in out
    markdown = (pytester.path / "report.md").read_text()
    assert "agreement with reference" in markdown and "latency p50 / p95 ms" in markdown
    assert "retires on" in markdown and "lost (1): r4" in markdown
    html = (pytester.path / "report.html").read_text()
    assert "agreement with reference" in html and "record its answers now" in html


def test_the_reference_replays_from_its_recordings_while_the_candidates_run_live(pytester, server):
    write(pytester.path / "s.ft.yaml", f"""
        models: {{reference: "{OLD}", tuned: "{NEW}", base: {BASE}}}
        cases:
          - {{id: a, input: "x LABEL=SIM"}}
          - {{id: b, input: "y LABEL=NAO WRONGFOR=new2"}}
    """)
    (pytester.path / "retirements.yaml").write_text("{}\n")
    first, report = run(pytester)
    assert first.ret == 1  # without thresholds every miss fails: the tuned model lost b
    assert report["suites"][0]["reference"]["candidates"]["tuned"]["lost"] == ["b"]
    server.retired.add(OLD)
    server.requests.clear()
    # A new candidate: its calls are live, the reference's are replayed from the recordings.
    (pytester.path / "s.ft.yaml").write_text((pytester.path / "s.ft.yaml").read_text().replace(NEW, NEW + "x"))
    second, report = run(pytester)
    suite = report["suites"][0]
    assert {r["body"]["model"] for r in server.chat_requests()} == {NEW + "x"}  # base replayed, the old one too
    assert suite["models"]["reference"]["replayed"] == 2 and suite["models"]["tuned"]["replayed"] == 0
    assert suite["models"]["tuned"]["agreement"] == 0.5
    assert suite["models"]["reference"]["latency_p50_ms"] is not None  # kept with the recording


def test_without_the_reference_an_unlabelled_case_is_an_error_and_nothing_is_scored(pytester, server):
    (pytester.path / "retirements.yaml").write_text("{}\n")
    server.retired.add(OLD)  # gone, and never recorded
    write(pytester.path / "s.ft.yaml", f"""
        models: {{reference: "{OLD}", tuned: "{NEW}", base: {BASE}}}
        thresholds: {{min_agreement: 0.5}}
        cases:
          - {{id: a, input: "x LABEL=SIM"}}
    """)
    result, report = run(pytester)
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"*reference model '{OLD}': HTTP 404: The model `{OLD}` does not exist*"])
    suite = report["suites"][0]
    assert suite["errored"] == ["a"]
    case = suite["cases"][0]
    assert case["tuned"]["verdict"] == "unscored" and case["tuned"]["agreement"] is None
    assert suite["gate"]["failures"][0].startswith("1 case(s) could not be evaluated")
    assert "agreement with the reference n/a < 50.0%" in suite["gate"]["failures"]


def test_ft_reference_names_the_model_being_replaced_from_the_command_line(pytester, server):
    (pytester.path / "retirements.yaml").write_text("{}\n")
    write(pytester.path / "s.ft.yaml", f"""
        models: {{tuned: "{NEW}", base: {BASE}}}
        cases:
          - {{id: a, input: "x LABEL=SIM", expected: SIM}}
          - {{id: b, input: "y LABEL=NAO WRONGFOR=old1", expected: NAO}}
    """)
    result, report = run(pytester, f"--ft-reference={OLD}")
    suite = report["suites"][0]
    assert list(suite["models"]) == ["reference", "base", "tuned"]
    # b: the reference was wrong and the new model right
    assert suite["reference"]["candidates"]["tuned"] == {"kept": ["a"], "lost": [], "newly_right": ["b"]}
    assert suite["models"]["tuned"]["agreement"] == 0.5


@pytest.mark.parametrize("suite, message", [
    ("models: {tuned: t, base: b}\ncases: [{id: a, input: x}]\n", "has no 'expected' (give one, or name the model"),
    ("models: {tuned: t, base: b}\nagreement: exact\ncases: [{id: a, input: x, expected: y}]\n",
     "agreement: grades agreement with the reference model"),
    ("models: {tuned: t, base: b, reference: {model: r, answers: missing.jsonl}}\ncases: [{id: a, input: x}]\n",
     "models.reference.answers: no such file"),
    ("models: {tuned: t, base: b, reference: {model: r, answers: bad.jsonl}}\ncases: [{id: a, input: x}]\n",
     "models.reference.answers:"),
    ("models: {tuned: t, base: b}\nthresholds: {min_agreement: 1.5}\ncases: [{id: a, input: x, expected: y}]\n",
     "thresholds.min_agreement: must be between 0 and 1"),
], ids=["no-expected-no-reference", "agreement-without-reference", "answers-missing", "answers-broken",
        "min-agreement-range"])
def test_reference_mistakes_are_suite_errors_naming_the_key(pytester, server, suite, message):
    (pytester.path / "bad.jsonl").write_text('{"messages": [{"role": "user", "content": "x"}]}\nnot json\n')
    write(pytester.path / "s.ft.yaml", suite)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == 1
    assert message in result.stdout.str()
    assert server.chat_requests() == []
