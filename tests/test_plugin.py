"""End-to-end: suites run through pytest (pytester) against the fake OpenAI server."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"
BASE = "gpt-4o-mini-2024-07-18"

SENTIMENT = f"""
suite: sentiment
models:
  base: {BASE}
  tuned: {TUNED}
system: "Voce e um classificador de sentimentos."
params: {{temperature: 0, max_tokens: 5}}
grader: exact
cases:
  - id: adorei
    input: "Adorei o produto! LABEL=POSITIVO"
    expected: POSITIVO
  - id: pessimo
    messages: [{{role: user, content: "O atendimento foi pessimo LABEL=NEGATIVO BASEWRONG"}}]
    expected: NEGATIVO
    grader: {{type: regex, pattern: "^NEG"}}
  - id: entrega
    input: "Chegou no prazo LABEL=NEUTRO"
    expected: NEUTRO
"""


def write(pytester, name: str, text: str):
    path = pytester.path / name
    path.write_text(textwrap.dedent(text))
    return path


def report_of(pytester, *args) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest("--ft-report=report.json", "-p", "no:cacheprovider", *args)
    path = pytester.path / "report.json"
    return result, json.loads(path.read_text()) if path.exists() else {}


def test_each_case_is_an_item_with_a_file_and_id_node_id(pytester, server):
    write(pytester, "sentiment.ft.yaml", SENTIMENT)
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["sentiment.ft.yaml::adorei", "sentiment.ft.yaml::pessimo",
                                 "sentiment.ft.yaml::entrega", "3 tests collected*"])
    assert server.requests == []  # collecting sends nothing


def test_strict_suite_passes_when_the_tuned_model_passes_every_case(pytester, server):
    write(pytester, "sentiment.ft.yaml", SENTIMENT)
    result, report = report_of(pytester)
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    assert len(server.chat_requests(TUNED)) == 3 and len(server.chat_requests(BASE)) == 3
    suite = report["suites"][0]
    assert suite["models"]["base"]["passed"] == 2 and suite["models"]["tuned"]["passed"] == 3
    assert suite["fixed"] == ["pessimo"] and suite["regressions"] == []
    result.stdout.fnmatch_lines(["*suite sentiment (sentiment.ft.yaml): gate PASSED*",
                                 "*fixed by tuning (1): pessimo*", "*regressions: none*"])
    # the system message and the suite's params reach the server
    body = server.chat_requests(TUNED)[0]["body"]
    assert body["messages"][0] == {"role": "system", "content": "Voce e um classificador de sentimentos."}
    assert body["temperature"] == 0 and body["max_tokens"] == 5


def test_a_tuned_miss_fails_its_item_showing_expected_tuned_and_base(pytester, server):
    write(pytester, "s.ft.yaml", SENTIMENT.replace("Chegou no prazo LABEL=NEUTRO", "Chegou LABEL=NEUTRO TUNEDWRONG"))
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*sentiment::entrega: the tuned model missed*",
                                 "*expected: NEUTRO*", "*base:*NEUTRO*[[]pass*", "*tuned:*WRONG*[[]miss*",
                                 "*regressions (1): entrega*"])


def test_thresholds_gate_the_exit_code_not_the_misses(pytester, server):
    gated = SENTIMENT.replace("grader: exact\n", "grader: exact\nthresholds: {accuracy: 0.6, min_gain: 0.2}\n")
    gated = gated.replace("Chegou no prazo LABEL=NEUTRO", "Chegou LABEL=NEUTRO TUNEDWRONG BASEWRONG")
    write(pytester, "s.ft.yaml", gated)
    result, report = report_of(pytester)
    result.assert_outcomes(passed=2, xfailed=1)
    assert result.ret == 0, result.stdout.str()
    assert report["suites"][0]["gate"] == {"passed": True, "failures": [],
                                           "models": {"base": ["accuracy 0.333 < 0.600"], "tuned": []}}
    # the miss stays visible, with its answers
    result = pytester.runpytest("-rx")
    result.stdout.fnmatch_lines(["XFAIL*s.ft.yaml::entrega*the tuned model missed*"])

    write(pytester, "s.ft.yaml", gated.replace("accuracy: 0.6", "accuracy: 0.9"))
    result, report = report_of(pytester)
    result.assert_outcomes(passed=2, xfailed=1)
    assert result.ret == 1
    assert report["suites"][0]["gate"]["passed"] is False
    assert report["suites"][0]["gate"]["failures"] == ["accuracy 0.667 < 0.900"]
    result.stdout.fnmatch_lines(["*gate FAILED*", "GATE FAILED: accuracy 0.667 < 0.900"])


def test_min_gain_gate_and_command_line_min_accuracy(pytester, server):
    gated = SENTIMENT.replace("grader: exact\n", "grader: exact\nthresholds: {min_gain: 0.5}\n")
    write(pytester, "s.ft.yaml", gated)
    result, report = report_of(pytester)
    assert result.ret == 1
    assert report["suites"][0]["gate"]["failures"] == ["gain over base +33.3 pp < +0.500"]
    write(pytester, "s.ft.yaml", SENTIMENT.replace("Chegou no prazo LABEL=NEUTRO", "x LABEL=NEUTRO TUNEDWRONG"))
    assert report_of(pytester, "--ft-min-accuracy=0.6")[0].ret == 0
    assert report_of(pytester, "--ft-min-accuracy=0.7")[0].ret == 1


def test_cost_gate_and_prices(pytester, server):
    write(pytester, "s.ft.yaml", SENTIMENT.replace("grader: exact\n", "grader: exact\nthresholds: {max_cost_usd: 0.5}\n"))
    pytester.makefile(".yaml", prices=f"""
        "{TUNED}": {{input: 10000, output: 20000}}
        """)
    result, report = report_of(pytester, "--ft-prices=prices.yaml")
    tuned = report["suites"][0]["models"]["tuned"]
    expected_cost = (tuned["prompt_tokens"] * 10000 + tuned["completion_tokens"] * 20000) / 1e6
    assert tuned["cost_usd"] == pytest.approx(expected_cost)
    assert expected_cost > 0.5 and result.ret == 1
    assert report["suites"][0]["gate"]["failures"][0].startswith("cost $")
    # built-in prices: a ft: id is priced at its base's fine-tuned rates
    result, report = report_of(pytester)
    base, tuned = report["suites"][0]["models"]["base"], report["suites"][0]["models"]["tuned"]
    assert tuned["cost_usd"] == pytest.approx((tuned["prompt_tokens"] * 0.30 + tuned["completion_tokens"] * 1.20) / 1e6)
    assert base["cost_usd"] == pytest.approx((base["prompt_tokens"] * 0.15 + base["completion_tokens"] * 0.60) / 1e6)
    assert result.ret == 0


def test_a_model_without_price_costs_na_with_a_warning(pytester, server):
    write(pytester, "s.ft.yaml", SENTIMENT.replace(f"base: {BASE}", "base: my-local-model"))
    result, report = report_of(pytester)
    assert report["suites"][0]["models"]["base"]["cost_usd"] is None
    assert report["unpriced_models"] == ["my-local-model"]
    result.stdout.fnmatch_lines(["base*my-local-model*n/a*",
                                 "warning: no price known for 'my-local-model'*--ft-prices*"])


def test_json_report_contract(pytester, server):
    write(pytester, "s.ft.yaml", SENTIMENT)
    _, report = report_of(pytester)
    suite = report["suites"][0]
    assert suite["suite"] == "sentiment" and suite["file"] == "s.ft.yaml"
    assert suite["gate"] == {"passed": True, "failures": [], "models": {
        "base": ["base (gpt-4o-mini-2024-07-18) missed 1 case(s) and the suite has no thresholds"], "tuned": []}}
    for role, model in (("base", BASE), ("tuned", TUNED)):
        entry = suite["models"][role]
        assert entry["model"] == model and entry["cases"] == 3
        assert set(entry) >= {"model", "cases", "passed", "accuracy", "prompt_tokens", "completion_tokens", "cost_usd"}
    assert suite["models"]["base"]["accuracy"] == pytest.approx(2 / 3)
    case = next(c for c in suite["cases"] if c["id"] == "pessimo")
    assert case["base"]["output"] == "WRONG" and case["base"]["passed"] is False and case["base"]["score"] == 0.0
    assert case["tuned"]["output"] == "NEGATIVO" and case["tuned"]["passed"] is True and case["tuned"]["score"] == 1.0


def test_k_and_deselect_send_only_the_selected_cases(pytester, server):
    write(pytester, "s.ft.yaml", SENTIMENT)
    result = pytester.runpytest("-k", "adorei or entrega", "--deselect", "s.ft.yaml::entrega")
    result.assert_outcomes(passed=1)
    assert {r["body"]["messages"][-1]["content"] for r in server.chat_requests()} == {"Adorei o produto! LABEL=POSITIVO"}


def test_exitfirst_stops_and_cancels_what_was_not_sent(pytester, server):
    cases = "\n".join(f"  - {{id: c{i}, input: 'x{i} LABEL=A {'TUNEDWRONG' if i == 0 else 'SLOW=300'}', expected: A}}"
                      for i in range(40))
    write(pytester, "s.ft.yaml", f"models: {{tuned: {TUNED}}}\ncases:\n{cases}\n")
    result = pytester.runpytest("-x", "--ft-concurrency=4")
    result.assert_outcomes(failed=1)
    assert len(server.chat_requests()) < 20


CASES_FILE = [
    {"messages": [{"role": "system", "content": "Classifique."}, {"role": "user", "content": "bom LABEL=POSITIVO"},
                  {"role": "assistant", "content": "POSITIVO"}]},
    {"messages": [{"role": "user", "content": "ruim LABEL=NEGATIVO"}, {"role": "assistant", "content": "NEGATIVO"}]},
]


def test_cases_file_turns_each_jsonl_line_into_a_case(pytester, server):
    pytester.makefile(".jsonl", heldout="\n".join(json.dumps(x) for x in CASES_FILE))
    write(pytester, "h.ft.yaml", f"models: {{tuned: {TUNED}}}\ncases_file: heldout.jsonl\n")
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(["h.ft.yaml::line1 PASSED*", "h.ft.yaml::line2 PASSED*"])

    def asked(model):  # this suite's requests: one an earlier test cut off (-x) may land late
        inputs = {"bom LABEL=POSITIVO", "ruim LABEL=NEGATIVO"}
        return [r["body"]["messages"] for r in server.chat_requests(model)
                if any(m.get("content") in inputs for m in r["body"]["messages"])]

    assert len(asked(TUNED)) == 2 and all(sent[-1]["role"] == "user" for sent in asked(TUNED))  # not the answer
    assert len(asked(BASE)) == 2  # base named by the ft: id


BAD_SUITES = {
    "unknown_key": ("cases:\n  - id: a\n    input: x\n    expected: y\n    expectd: z\n", 5, "expectd: unknown key"),
    "no_expected": ("cases:\n  - id: a\n    input: x\n", 2, "expected: case 'a' has no 'expected'"),
    "duplicate_id": ("cases:\n  - {id: a, input: x, expected: y}\n  - {id: a, input: x, expected: y}\n", 3,
                     "id: duplicate case id 'a' (first at line 3)"),
    "unknown_grader": ("grader: exactly\ncases:\n  - {id: a, input: x, expected: y}\n", 1, "grader"),
    "bad_regex": ("cases:\n  - id: a\n    input: x\n    expected: y\n    grader: {type: regex, pattern: '(unclosed'}\n",
                  5, "grader.pattern"),
    "missing_cases_file": ("cases_file: nowhere.jsonl\n", 1, "cases_file: cannot read"),
    "yaml_syntax": ("cases:\n  - id: a\n    input: [x\n", 3, "YAML syntax error"),
    "colliding_recordings": ("cases:\n  - {id: a b, input: x, expected: y}\n  - {id: a_b, input: x, expected: y}\n", 3,
                             "id: cases 'a b' and 'a_b' would share the recording a_b.yaml: rename one"),
    "bad_threshold": ("thresholds: {accuracy: 1.5}\ncases:\n  - {id: a, input: x, expected: y}\n", 1,
                      "thresholds.accuracy: must be between 0 and 1"),
}


@pytest.mark.parametrize("name", sorted(BAD_SUITES))
def test_bad_suite_fails_its_collection_with_file_line_and_key(pytester, server, name):
    text, line, message = BAD_SUITES[name]
    write(pytester, "bad.ft.yaml", f"models: {{tuned: {TUNED}}}\n" + text)
    write(pytester, "good.ft.yaml", SENTIMENT)
    result = pytester.runpytest()
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of invalid suite*", f"bad.ft.yaml:{line + 1}: {message}*",
                                 f"INVALID SUITE: bad.ft.yaml:{line + 1}: {message}*"])
    assert "Traceback" not in result.stdout.str()
    assert result.ret == 1


def test_without_a_tuned_model_the_error_says_how_to_give_one(pytester, server):
    write(pytester, "s.ft.yaml", "cases:\n  - {id: a, input: x, expected: y}\n")
    result = pytester.runpytest()
    assert result.ret == 1
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["s.ft.yaml: models.tuned: no tuned model: pass --ft-model=ft:...*"])
    assert "Traceback" not in result.stdout.str()
    result = pytester.runpytest(f"--ft-model={TUNED}")
    result.assert_outcomes(failed=1)  # the fake server answers OK, not y


def test_command_line_models_win_over_the_suite(pytester, server):
    write(pytester, "s.ft.yaml", SENTIMENT)
    pytester.runpytest("--ft-model=ft:gpt-4o-mini-2024-07-18:acme:v2:zzz", "--ft-base-model=gpt-4.1-nano")
    assert {r["body"]["model"] for r in server.chat_requests()} == {"ft:gpt-4o-mini-2024-07-18:acme:v2:zzz",
                                                                     "gpt-4.1-nano"}


def test_requests_run_concurrently_up_to_the_limit(pytester, server):
    cases = "\n".join(f"  - {{id: c{i}, input: 'x{i} LABEL=A SLOW=200', expected: A}}" for i in range(24))
    write(pytester, "s.ft.yaml", f"models: {{tuned: {TUNED}}}\ncases:\n{cases}\n")
    start = time.perf_counter()
    result = pytester.runpytest("--ft-concurrency=8")
    elapsed = time.perf_counter() - start
    result.assert_outcomes(passed=24)
    assert server.max_in_flight == 8
    # 48 requests of 200 ms, 8 at a time: 6 waves, far below the 9.6 s of one at a time
    assert elapsed < 4.8


@pytest.mark.parametrize("fault", ["FAULT=429x2", "FAULT=500x2", "FAULT=DROPx1"])
def test_transient_failures_are_retried(pytester, server, fault):
    write(pytester, "s.ft.yaml", f"models: {{tuned: {TUNED}}}\ncases:\n  - {{id: a, input: 'x LABEL=A {fault}', expected: A}}\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    times = 1 + int(fault.rsplit("x", 1)[1])
    assert len(server.chat_requests(TUNED)) == times


@pytest.mark.parametrize("fault, message", [
    ("FAULT=500x99", "tuned model '{TUNED}': HTTP 500: The server had an error (server_error)"),
    ("FAULT=400", "tuned model '{TUNED}': HTTP 400: The model `{TUNED}` does not exist (model_not_found)"),
    ("FAULT=BADJSONx99", "tuned model '{TUNED}': the response is not JSON: '<html>502 Bad Gateway</html>'"),
])
def test_a_request_that_keeps_failing_is_an_error_with_the_api_message(pytester, server, fault, message):
    write(pytester, "s.ft.yaml", f"models: {{tuned: {TUNED}}}\ncases:\n  - {{id: a, input: 'x LABEL=A {fault}', expected: A}}\n"
                                 "  - {id: b, input: 'y LABEL=B', expected: B}\n")
    result, report = report_of(pytester, "--ft-retries=2")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of s::a*", message.format(TUNED=TUNED) + "*"])
    assert result.ret == 1
    assert report["suites"][0]["errored"] == ["a"]
    assert not report["suites"][0]["gate"]["passed"]


def test_retry_after_and_timeouts(pytester, server):
    write(pytester, "s.ft.yaml", f"models: {{tuned: {TUNED}}}\ncases:\n  - {{id: slow, input: 'x LABEL=A SLOW=1500', expected: A}}\n")
    result = pytester.runpytest("--ft-timeout=0.3", "--ft-retries=1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*tuned model*request timed out*"])


def test_judge_grader_calls_the_judge_concurrently_and_counts_it_apart(pytester, server):
    write(pytester, "s.ft.yaml", f"""
        models: {{tuned: {TUNED}}}
        judge: gpt-4o-2024-08-06-judge
        grader: {{type: judge, rubric: "Is the answer polite?", threshold: 0.5}}
        cases:
          - {{id: good, input: "GOOD LABEL=fine", expected: fine}}
          - {{id: bad, input: "LABEL=rude", expected: polite}}
        """)
    result, report = report_of(pytester)
    suite = report["suites"][0]
    assert suite["judge"]["model"] == "gpt-4o-2024-08-06-judge" and suite["judge"]["requests"] == 4
    assert suite["models"]["tuned"]["requests"] == 2
    assert {c["id"]: c["tuned"]["passed"] for c in suite["cases"]} == {"good": True, "bad": False}
    result.stdout.fnmatch_lines(["judge gpt-4o-2024-08-06-judge: 4 calls*"])


def test_judge_grader_without_a_judge_model_is_a_collection_error(pytester, server):
    write(pytester, "s.ft.yaml", f"models: {{tuned: {TUNED}}}\ngrader: {{type: judge, rubric: r}}\n"
                                 "cases:\n  - {id: a, input: x, expected: y}\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*s.ft.yaml: judge: a 'judge' grader needs a judge model*"])
    result = pytester.runpytest("--ft-judge-model=my-judge", "--ft-disable-recording")
    assert {r["body"]["model"] for r in server.chat_requests()} >= {"my-judge"}


def test_models_on_different_endpoints(pytester, server):
    from openai_server import FakeOpenAI

    with FakeOpenAI() as vllm:
        write(pytester, "s.ft.yaml", f"""
            models:
              base: {BASE}
              tuned: {{model: my-org/sentiment-lora, base_url: "{vllm.url}", api_key_env: VLLM_KEY}}
            cases:
              - {{id: a, input: "LABEL=A", expected: A}}
            """)
        result = pytester.runpytest()
        result.assert_outcomes(passed=1)
        assert [r["body"]["model"] for r in vllm.chat_requests()] == ["my-org/sentiment-lora"]
        assert [r["body"]["model"] for r in server.chat_requests()] == [BASE]
        headers = {k.lower(): v for k, v in server.chat_requests()[0]["headers"].items()}
        assert headers["authorization"] == "Bearer sk-" "test-key-0123456789abcdefghijklmnop"
        vllm_headers = {k.lower(): v for k, v in vllm.chat_requests()[0]["headers"].items()}
        assert "sk-test-key" not in vllm_headers["authorization"]  # its own key variable, unset here


def test_the_api_key_is_never_printed_or_written(pytester, server):
    write(pytester, "s.ft.yaml", SENTIMENT.replace("Chegou no prazo LABEL=NEUTRO", "x LABEL=N FAULT=400"))
    result, _ = report_of(pytester, "-v", "--junitxml=junit.xml")
    assert result.ret == 1
    key = "sk-" "test-key-0123456789abcdefghijklmnop"
    assert key not in result.stdout.str() + result.stderr.str()
    for path in pytester.path.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace"), path


def test_junitxml_carries_both_outputs_and_scores(pytester, server):
    write(pytester, "s.ft.yaml", SENTIMENT)
    pytester.runpytest("--junitxml=junit.xml")
    xml = (pytester.path / "junit.xml").read_text()
    assert '<property name="ft.base.output" value="WRONG"' in xml
    assert '<property name="ft.tuned.output" value="NEGATIVO"' in xml
    assert '<property name="ft.tuned.score" value="1.0"' in xml


def test_xdist_gives_the_same_report_as_a_serial_run(pytester, server):
    cases = "\n".join(f"  - {{id: c{i}, input: 'x{i} LABEL=L{i % 3} {'BASEWRONG' if i % 4 == 0 else ''}', "
                      f"expected: L{i % 3}}}" for i in range(30))
    write(pytester, "s.ft.yaml", f"models: {{tuned: {TUNED}}}\nthresholds: {{accuracy: 0.9}}\ncases:\n{cases}\n")
    write(pytester, "t.ft.yaml", SENTIMENT)
    serial = pytester.runpytest_subprocess("--ft-report=serial.json", "--ft-disable-recording")
    parallel = pytester.runpytest_subprocess("-n", "2", "--ft-report=parallel.json", "--ft-disable-recording")
    assert serial.ret == parallel.ret == 0
    parallel.stdout.fnmatch_lines(["*2 workers*", "*suite sentiment (t.ft.yaml): gate PASSED*"])

    def comparable(path):
        report = json.loads((pytester.path / path).read_text())
        suites = sorted(report["suites"], key=lambda s: s["suite"])
        for suite in suites:
            suite["cases"] = sorted(suite["cases"], key=lambda c: c["id"])
            suite["fixed"].sort()
            for model in suite["models"].values():  # times are measured, not computed
                del model["latency_p50_ms"], model["latency_p95_ms"]
            for case in suite["cases"]:
                for role in suite["models"]:
                    assert case[role].pop("latency_ms") > 0
        return suites

    assert comparable("serial.json") == comparable("parallel.json")
    assert len(server.chat_requests()) == 2 * 2 * 33  # each case once per model, in both runs


def test_fixtures_complete_through_the_runner_and_count_tokens(pytester, server):
    pytester.makepyfile(test_py="""
        def test_tuned_says_hi(ft_complete, ft_models):
            assert ft_models["tuned"].model.startswith("ft:")
            assert ft_models["base"].model == "gpt-4o-mini-2024-07-18"
            assert ft_complete("hello LABEL=oi") == "oi"
            assert ft_complete([{"role": "user", "content": "LABEL=ola"}], model="base", temperature=0) == "ola"
        """)
    result, report = report_of(pytester, f"--ft-model={TUNED}")
    result.assert_outcomes(passed=1)
    assert report["fixtures"]["models"][TUNED]["requests"] == 1
    assert report["fixtures"]["models"][BASE]["requests"] == 1
    assert server.chat_requests(BASE)[0]["body"]["temperature"] == 0
    result.stdout.fnmatch_lines(["calls from Python tests (ft_complete):"])


def test_fixtures_skip_without_a_tuned_model(pytester, server):
    pytester.makepyfile(test_py="def test_x(ft_complete):\n    ft_complete('x')\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no tuned model configured: pass --ft-model*"])


def test_options_also_come_from_the_ini_file(pytester, server):
    pytester.makeini(f"""
        [pytest]
        ft_model = {TUNED}
        ft_base_model = gpt-4.1-nano
        ft_concurrency = 2
        ft_report = out/ini-report.json
        """)
    write(pytester, "s.ft.yaml", "cases:\n  - {id: a, input: LABEL=A, expected: A}\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert {r["body"]["model"] for r in server.chat_requests()} == {TUNED, "gpt-4.1-nano"}
    assert json.loads((pytester.path / "out/ini-report.json").read_text())["passed"] is True


def test_bad_option_values_are_usage_errors(pytester, server):
    write(pytester, "s.ft.yaml", SENTIMENT)
    result = pytester.runpytest("--ft-concurrency=lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ft-concurrency: expected a number, got 'lots'*"])
    pytester.makefile(".yaml", prices="gpt-x: {input: cheap, output: 1}\n")
    result = pytester.runpytest("--ft-prices=prices.yaml")
    result.stderr.fnmatch_lines(["*prices.yaml: gpt-x: prices must be numbers*"])


def test_ft_data_fixture_guards_the_training_data(pytester, server):
    pytester.makefile(".jsonl", train='{"messages": [{"role": "user", "content": "Adorei o produto! LABEL=POSITIVO"}, '
                                      '{"role": "assistant", "content": "POSITIVO"}]}\n')
    write(pytester, "sentiment.ft.yaml", SENTIMENT)
    pytester.makepyfile(test_guard="""
        def test_no_eval_case_leaks_into_training(ft_data):
            report = ft_data.check_leak("train.jsonl", ["sentiment.ft.yaml"])
            assert [leak.case for leak in report.leaks] == ["adorei"]
        """)
    pytester.runpytest("test_guard.py").assert_outcomes(passed=1)


HEAVY = ("vcr", "httpx2", "httpcore2", "openai", "tabulate", "jinja2",
         "pytest_ft.run.runner", "pytest_ft.recording.cassette", "pytest_ft.report.render.terminal")


def modules_imported(pytester, *args) -> set[str]:
    """The modules a pytest run in a fresh process had imported by its end."""
    pytester.makeconftest("""
        import json, sys

        def pytest_unconfigure(config):
            with open("modules.json", "w") as out:
                json.dump(sorted(sys.modules), out)
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert result.ret == 0, result.stdout.str()
    return set(json.loads((pytester.path / "modules.json").read_text()))


def test_a_run_without_suites_does_not_import_the_http_and_recording_stack(pytester):
    """pytest-ft is loaded by every pytest run of the environment it is installed in: a project's
    plain tests must not pay for vcrpy, httpx, openai and the report renderers (~0.3 s a start)."""
    pytester.makepyfile(test_plain="def test_x():\n    assert 1 + 1 == 2\n")
    loaded = modules_imported(pytester, "--ft-report=report.json")
    assert "pytest_ft.plugin" in loaded  # the plugin itself is there: the check is not vacuous
    assert sorted(loaded & set(HEAVY)) == []
    assert not (pytester.path / "report.json").exists()  # no suite, no report (and no stale one)

    pytester.makefile(".ft.yaml", s="cases:\n  - {id: a, input: hi, expected: hi}\n")
    loaded = modules_imported(pytester, "--co")
    assert {"vcr", "pytest_ft.run.runner"} <= loaded  # a suite brings them in


def test_a_replay_does_not_import_the_openai_client(pytester, server):
    write(pytester, "sentiment.ft.yaml", SENTIMENT)
    assert "openai" in modules_imported(pytester)  # recording: the client sends the requests
    calls = len(server.chat_requests())
    assert calls > 0
    loaded = modules_imported(pytester, "--ft-record-mode=none", "--ft-report=replay.json")
    assert "openai" not in loaded and "pytest_ft.run.runner" in loaded
    assert len(server.chat_requests()) == calls
    report = json.loads((pytester.path / "replay.json").read_text())
    assert report["calls"]["replayed"] == calls and report["calls"]["live"] == 0
