"""Tool calls end to end: suites send tools, answers keep their calls, the tool_call grader grades them.

Against the fake OpenAI server, whose ``replies`` make each model answer a case with chosen tool
calls: right, the wrong tool, wrong arguments, malformed argument JSON, parallel calls, or no call.
"""

from __future__ import annotations

import json
import textwrap

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:tools:abc123"
BASE = "gpt-4o-mini-2024-07-18"

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time in a city",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}},
]

SUITE = f"""
suite: tools
models: {{base: {BASE}, tuned: "{TUNED}"}}
tools: {json.dumps(TOOLS)}
tool_choice: auto
parallel_tool_calls: true
grader: tool_call
thresholds: {{accuracy: 0.8}}
cases:
  - id: right
    input: "weather in Recife? W1"
    expected: [{{name: get_weather, arguments: {{city: Recife}}}}]
  - id: wrong-tool
    input: "weather in Natal? W2"
    expected: [{{name: get_weather, arguments: {{city: Natal}}}}]
  - id: wrong-args
    input: "weather in Belem? W3"
    expected: [{{name: get_weather, arguments: {{city: Belem}}}}]
  - id: malformed
    input: "weather in Olinda? W4"
    expected: [{{name: get_weather, arguments: {{city: Olinda}}}}]
  - id: parallel
    input: "weather and time in Recife? W5"
    expected: [{{name: get_weather, arguments: {{city: Recife}}}}, {{name: get_time, arguments: {{city: Recife}}}}]
  - id: no-call
    input: "tell me a joke W6"
    expected: none
  - id: time
    input: "what time is it in Natal? W7"
    expected: {{name: get_time, arguments: {{city: Natal}}}}
"""


def script(server):
    """Tuned gets every case right but the last; base goes wrong in every way there is."""
    weather = lambda city: ("get_weather", {"city": city})  # noqa: E731
    server.replies.update({
        "W1": {"ft:": {"calls": [weather("Recife")]}, "gpt": {"calls": [weather("Recife")]}},
        "W2": {"ft:": {"calls": [weather("Natal")]}, "gpt": {"calls": [("get_time", {"city": "Natal"})]}},
        "W3": {"ft:": {"calls": [weather("Belem")]}, "gpt": {"calls": [weather("belem")]}},
        "W4": {"ft:": {"calls": [weather("Olinda")]}, "gpt": {"calls": [("get_weather", '{"city": "Olin')]}},
        "W5": {"ft:": {"calls": [("get_time", {"city": "Recife"}), weather("Recife")]},
               "gpt": {"calls": [weather("Recife")]}},
        "W6": {"ft:": "Why did the chicken cross the road?", "gpt": {"calls": [weather("anywhere")]}},
        "W7": {"ft:": {"content": "Let me look.", "calls": [weather("Natal")]},
               "gpt": {"calls": [("get_time", {"city": "Natal"})]}},
    })


def run(pytester, *args):
    result = pytester.runpytest("--ft-report=report.json", "--ft-markdown=report.md", "--ft-html=report.html",
                                "-p", "no:cacheprovider", *args)
    return result, json.loads((pytester.path / "report.json").read_text())


def test_tools_are_sent_and_tool_call_answers_are_graded_as_calls(pytester, server):
    script(server)
    (pytester.path / "tools.ft.yaml").write_text(textwrap.dedent(SUITE))
    result, report = run(pytester, "-rx")
    assert result.ret == 0, result.stdout.str()  # tuned passes 6 of 7: the gate holds
    body = server.chat_requests(TUNED)[0]["body"]
    assert body["tools"] == TOOLS and body["tool_choice"] == "auto" and body["parallel_tool_calls"] is True

    suite = report["suites"][0]
    cases = {c["id"]: c for c in suite["cases"]}
    assert [cases[i]["tuned"]["verdict"] for i in cases] == ["pass"] * 6 + ["fail"]
    assert suite["models"]["tuned"]["passed"] == 6 and suite["models"]["base"]["passed"] == 2
    base = {i: cases[i]["base"] for i in cases}
    assert "expected tool get_weather, got get_time" in base["wrong-tool"]["reason"]
    assert 'get_weather.arguments.city: expected "Belem", got "belem"' in base["wrong-args"]["reason"]
    assert "not valid JSON" in base["malformed"]["reason"] and base["malformed"]["verdict"] == "fail"
    assert "expected no call" in base["no-call"]["reason"] or "called get_weather" in base["no-call"]["reason"]
    assert base["parallel"]["verdict"] == "fail" and 0 < base["parallel"]["score"] < 1  # partial credit
    # The answer keeps its structure: parsed arguments, and the raw string when it is not JSON.
    malformed = base["malformed"]["tool_calls"][0]
    assert (malformed["name"], malformed["arguments"], malformed["raw_arguments"]) == \
        ("get_weather", None, '{"city": "Olin')
    assert cases["parallel"]["tuned"]["tool_calls"][1]["arguments"] == {"city": "Recife"}
    assert cases["no-call"]["tuned"]["output"] == "Why did the chicken cross the road?"
    assert "tool_calls" not in cases["no-call"]["tuned"]
    # Reports show the calls as people read them: the failure message, Markdown's misses, the HTML.
    assert cases["right"]["tuned"]["output"] == '→ get_weather({"city": "Recife"})'
    assert cases["time"]["tuned"]["output"] == 'Let me look.\n→ get_weather({"city": "Natal"})'
    result.stdout.fnmatch_lines(["*tools::time: the tuned model missed*"])
    failure = pytester.runpytest("-k", "time", "--runxfail", "-p", "no:cacheprovider", "--ft-record-mode=none")
    failure.stdout.fnmatch_lines(['*expected: {"name": "get_time", "arguments": {"city": "Natal"}}',
                                  '*tuned:*Let me look. ⏎ → get_weather({"city": "Natal"})*expected tool get_time*'])
    markdown = (pytester.path / "report.md").read_text()
    assert "Cases the tuned model missed (1)" in markdown
    assert 'Let me look.<br>→ get\\_weather({"city": "Natal"})' in markdown
    assert "→ get_weather({&quot;city&quot;: &quot;Olin)" in (pytester.path / "report.html").read_text()

    # Replayed offline: the same calls, the same verdicts.
    server.reset()
    replay, again = run(pytester, "--ft-record-mode=none")
    assert replay.ret == 0 and server.chat_requests() == []
    assert [c["base"]["tool_calls"] for c in again["suites"][0]["cases"]] == \
        [c["base"]["tool_calls"] for c in suite["cases"]]
    assert [c["base"]["reason"] for c in again["suites"][0]["cases"]] == [c["base"]["reason"] for c in suite["cases"]]


def test_a_function_calling_cases_file_is_a_suite_of_tool_call_cases(pytester, server):
    script(server)
    lines = [
        {"tools": TOOLS, "messages": [{"role": "user", "content": "weather in Recife? W1"},
                                      {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
                                          "name": "get_weather", "arguments": "{\"city\": \"Recife\"}"}}]}]},
        {"tools": TOOLS, "messages": [{"role": "user", "content": "tell me a joke W6"},
                                      {"role": "assistant", "content": "A joke."}]},
    ]
    (pytester.path / "heldout.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (pytester.path / "fc.ft.yaml").write_text(f'models: {{base: {BASE}, tuned: "{TUNED}"}}\ncases_file: heldout.jsonl\n')
    result, report = run(pytester)
    assert result.ret == 0, result.stdout.str()
    cases = report["suites"][0]["cases"]
    assert [c["tuned"]["verdict"] for c in cases] == ["pass", "pass"]  # graded as calls: "A joke." is no call
    assert [c["base"]["verdict"] for c in cases] == ["pass", "fail"]
    assert server.chat_requests(TUNED)[0]["body"]["tools"] == TOOLS


def test_bad_tool_keys_are_suite_errors_naming_the_key(pytester, server):
    for text, message in [
        ("tools: {a: 1}\n", "tools: must be a non-empty list"),
        ("tools: [{type: function, function: {name: 'bad name'}}]\n", "tools[0].function.name: must be 1-64"),
        (f"tools: {json.dumps(TOOLS)}\ntool_choice: {{type: function, function: {{name: nope}}}}\n",
         "tool_choice: names 'nope', which is not among the tools"),
        ("response_format: {type: yaml}\n", "response_format: must be {type: text | json_object | json_schema}"),
        ("parallel_tool_calls: maybe\n", "parallel_tool_calls: must be true or false"),
    ]:
        (pytester.path / "s.ft.yaml").write_text(f'models: {{base: {BASE}, tuned: "{TUNED}"}}\n{text}'
                                                 "cases: [{id: a, input: x, expected: y}]\n")
        result = pytester.runpytest("-p", "no:cacheprovider")
        assert result.ret == 1 and message in result.stdout.str(), (text, result.stdout.str())
    assert server.chat_requests() == []
