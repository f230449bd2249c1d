"""The tool_call grader: right tools, right arguments, right count; every expected form and every spec error."""

from __future__ import annotations

import asyncio
import json

import pytest

from pytest_ft.graders import GRADERS, Grade, GradeContext, GraderError, build_grader
from pytest_ft.graders import tool_call as module

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "units": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
TOOLS = [WEATHER, TIME]


def call(name: str, arguments=None, *, raw: str | None = None) -> dict:
    """A tool call as the runner puts it in ctx.tool_calls; ``raw`` alone: what the model sent, unparsed."""
    if raw is None:
        return {"id": f"call_{name}", "name": name, "arguments": arguments,
                "raw_arguments": json.dumps(arguments), "error": None}
    try:
        return {"id": f"call_{name}", "name": name, "arguments": json.loads(raw), "raw_arguments": raw, "error": None}
    except ValueError as exc:
        return {"id": f"call_{name}", "name": name, "arguments": None, "raw_arguments": raw,
                "error": f"not valid JSON ({exc})"}


def grade(expected, calls, output: str = "", tools=None, **options) -> Grade:
    g = build_grader({"type": "tool_call", **options})
    return asyncio.run(g(output, expected, GradeContext(tool_calls=calls, tools=tools)))


def spec_error(**options) -> GraderError:
    with pytest.raises(GraderError) as info:
        build_grader({"type": "tool_call", **options})
    return info.value


def expected_error(expected) -> GraderError:
    """A case's expected value the grader cannot use: caught by check_expected, and by grading."""
    g = build_grader("tool_call")
    with pytest.raises(GraderError) as info:
        g.check_expected(expected)
    with pytest.raises(GraderError):
        asyncio.run(g("", expected, GradeContext(tool_calls=[call("get_weather", {})])))
    assert info.value.key == "expected"
    return info.value


RECIFE = [{"name": "get_weather", "arguments": {"city": "Recife", "units": "c"}}]


# --------------------------------------------------------------------------- the grader's surface


def test_registered_as_an_async_grader_without_judge():
    g = build_grader("tool_call")
    assert "tool_call" in GRADERS
    assert g.name == "tool_call" and g.uses_judge is False and g.judge_model is None
    assert build_grader({"type": "tool_call"}) is build_grader({"type": "tool_call"})


# --------------------------------------------------------------------------- tools and arguments


def test_right_call_passes():
    r = grade(RECIFE, [call("get_weather", {"units": "c", "city": "Recife"})])
    assert r == Grade(True, 1.0, 'get_weather(units="c", city="Recife") as expected')  # the call as the model sent it


def test_wrong_tool():
    r = grade(RECIFE, [call("get_time", {"tz": "UTC"})])
    assert (r.passed, r.score, r.reason) == (False, 1 / 3, "expected tool get_weather, got get_time")


def test_a_call_without_a_name_is_a_wrong_tool():
    r = grade(RECIFE, [call("", {"city": "Recife", "units": "c"})])
    assert (r.passed, r.score, r.reason) == (False, 1 / 3, "expected tool get_weather, got (no name)")


def test_wrong_argument_value_names_its_path():
    r = grade(RECIFE, [call("get_weather", {"city": "recife", "units": "c"})])
    assert (r.passed, r.score) == (False, 2 / 3)
    assert r.reason == 'get_weather.arguments.city: expected "Recife", got "recife"'
    nested = [{"name": "book", "arguments": {"trip": {"to": "Natal", "seats": [1, 2]}}}]
    r = grade(nested, [call("book", {"trip": {"to": "Natal", "seats": [1, 3]}})])
    assert r.reason == "book.arguments.trip.seats[1]: expected 2, got 3"


def test_several_differences_report_the_first_and_count_the_rest():
    r = grade(RECIFE, [call("get_weather", {"city": "Natal", "units": "f"})])
    assert r.reason == 'get_weather.arguments.city: expected "Recife", got "Natal" (+1 more)'


def test_equal_is_strict_on_json_types():
    expected = [{"name": "set", "arguments": {"on": True, "level": 1}}]
    assert grade(expected, [call("set", {"on": True, "level": 1.0})]).passed  # 1 and 1.0 are the same number
    r = grade(expected, [call("set", {"on": 1, "level": 1})])
    assert not r.passed and r.reason == "set.arguments.on: expected true, got 1"
    r = grade(expected, [call("set", {"on": True, "level": "1"})])
    assert not r.passed and r.reason == 'set.arguments.level: expected 1, got "1"'


def test_missing_argument_fails_under_equal_and_subset():
    got = [call("get_weather", {"city": "Recife"})]
    for mode in ("equal", "subset"):
        r = grade(RECIFE, got, arguments=mode)
        assert (r.passed, r.score, r.reason) == (False, 2 / 3, "get_weather.arguments.units: missing")


def test_extra_argument_fails_under_equal_passes_under_subset():
    got = [call("get_weather", {"city": "Recife", "units": "c", "days": 3})]
    r = grade(RECIFE, got)
    assert (r.passed, r.score, r.reason) == (False, 2 / 3, "get_weather.arguments.days: unexpected")
    assert grade(RECIFE, got, arguments="subset") == Grade(
        True, 1.0, 'get_weather(city="Recife", units="c", days=3) as expected')
    nested = [{"name": "book", "arguments": {"trip": {"to": "Natal"}}}]
    assert grade(nested, [call("book", {"trip": {"to": "Natal", "seats": 2}})], arguments="subset").passed
    r = grade(nested, [call("book", {"trip": {"to": "Recife", "seats": 2}})], arguments="subset")
    assert r.reason == 'book.arguments.trip.to: expected "Natal", got "Recife"'


def test_arguments_left_out_accept_any_object():
    expected = [{"name": "get_weather"}]
    assert grade(expected, [call("get_weather", {"city": "anything"})]) == Grade(
        True, 1.0, 'get_weather(city="anything") as expected')
    assert grade({"name": "get_time"}, [call("get_time", {})]) == Grade(True, 1.0, "get_time() as expected")
    r = grade(expected, [call("get_weather", [1, 2])])
    assert (r.passed, r.score, r.reason) == (False, 2 / 3, "get_weather.arguments: expected a JSON object, got [1, 2]")
    r = grade(expected, [call("get_weather", raw='{"city": ')])
    assert (r.passed, r.score) == (False, 2 / 3) and r.reason.startswith("get_weather.arguments: not valid JSON (")


def test_empty_expected_arguments_mean_no_arguments():
    expected = [{"name": "get_time", "arguments": {}}]
    assert grade(expected, [call("get_time", {})]).passed
    assert grade(expected, [call("get_time", {"tz": "UTC"})]).reason == "get_time.arguments.tz: unexpected"


# --------------------------------------------------------------------------- what the model sent, however broken


def test_malformed_json_arguments_are_a_miss_with_the_parse_error():
    raw = '{"city": "Rec" "units": "c"}'
    with pytest.raises(ValueError) as parse:
        json.loads(raw)
    r = grade(RECIFE, [call("get_weather", raw=raw)])
    assert (r.passed, r.score) == (False, 2 / 3)
    assert r.reason == f"get_weather.arguments: not valid JSON ({parse.value}): {raw!r}"
    assert r.reason.startswith("get_weather.arguments: not valid JSON (Expecting ',' delimiter: line 1 column 16")


def test_malformed_json_is_a_miss_in_every_mode():
    got = [call("get_weather", raw='{"city": "Rec')]
    for options in ({"arguments": "subset"}, {"arguments": "schema"}, {"order": "strict"}):
        r = grade(RECIFE, got, tools=TOOLS, **options)
        assert (r.passed, r.score) == (False, 2 / 3), options
        assert r.reason.startswith("get_weather.arguments: not valid JSON (Unterminated string"), options


def test_arguments_missing_altogether():
    got = [{"id": "c1", "name": "get_weather", "arguments": None, "raw_arguments": "", "error": "no arguments"}]
    assert grade(RECIFE, got).reason == "get_weather.arguments: no arguments"
    assert grade(RECIFE, [{"name": "get_weather"}]).reason == "get_weather.arguments: no arguments"


# --------------------------------------------------------------------------- several calls


PARALLEL = [{"name": "get_weather", "arguments": {"city": "Recife"}}, {"name": "get_time", "arguments": {"tz": "UTC"}}]


def test_parallel_calls_in_another_order_pass_with_order_any():
    got = [call("get_time", {"tz": "UTC"}), call("get_weather", {"city": "Recife"})]
    assert grade(PARALLEL, got) == Grade(True, 1.0, 'get_time(tz="UTC"), get_weather(city="Recife") as expected')


def test_parallel_calls_in_another_order_fail_with_order_strict():
    got = [call("get_time", {"tz": "UTC"}), call("get_weather", {"city": "Recife"})]
    r = grade(PARALLEL, got, order="strict")
    assert (r.passed, r.score) == (False, 1 / 3)  # no name matched at its position; the count is right
    assert r.reason == "call 1: expected tool get_weather, got get_time (+1 more)"
    in_order = [call("get_weather", {"city": "Recife"}), call("get_time", {"tz": "UTC"})]
    assert grade(PARALLEL, in_order, order="strict").passed
    r = grade(PARALLEL, [in_order[0], call("get_time", {"tz": "BRT"})], order="strict")
    assert (r.score, r.reason) == ((1 + 0.5 + 1) / 3, 'get_time.arguments.tz: expected "UTC", got "BRT"')


def test_order_any_finds_the_best_pairing_of_calls_to_the_same_tool():
    expected = [{"name": "get_weather", "arguments": {"city": "Recife"}},
                {"name": "get_weather", "arguments": {"city": "Natal"}}]
    got = [call("get_weather", {"city": "Natal"}), call("get_weather", {"city": "Recife"})]
    assert grade(expected, got).passed
    r = grade(expected, [call("get_weather", {"city": "Olinda"}), call("get_weather", {"city": "Natal"})])
    assert (r.passed, r.score) == (False, (1 + 0.5 + 1) / 3)
    assert r.reason == 'call 1: get_weather.arguments.city: expected "Recife", got "Olinda"'


def test_order_any_moves_an_earlier_pairing_to_make_room():
    # "any arguments" first would take the Recife call if pairs were chosen greedily
    expected = [{"name": "get_weather"}, {"name": "get_weather", "arguments": {"city": "Recife"}}]
    got = [call("get_weather", {"city": "Recife"}), call("get_weather", {"city": "Natal"})]
    assert grade(expected, got).score == 1.0
    assert grade(expected, got, order="strict").score == (1 + 0.5 + 1) / 3


def test_an_extra_call():
    got = [call("get_weather", {"city": "Recife"}), call("get_time", {"tz": "UTC"})]
    r = grade([PARALLEL[0]], got)
    assert (r.passed, r.score, r.reason) == (False, (1 / 2 + 1 + 0) / 3, "2 calls, expected 1: extra get_time")
    r = grade([PARALLEL[0]], got, order="strict")
    assert (r.passed, r.score, r.reason) == (False, (1 / 2 + 1 + 0) / 3, "2 calls, expected 1: extra get_time")


def test_a_missing_call():
    r = grade(PARALLEL, [call("get_weather", {"city": "Recife"})])
    assert (r.passed, r.score) == (False, (1 / 2 + 1 + 0) / 3)
    assert r.reason == '1 call, expected 2: missing get_time(tz="UTC")'


def test_wrong_tool_comes_before_the_count_and_the_arguments():
    got = [call("get_weather", {"city": "Natal"}), call("get_date", {}), call("get_date", {})]
    r = grade(PARALLEL, got)
    assert r.score == (1 / 3 + 0 + 0) / 3
    assert r.reason == "expected tool get_time, got get_date (+2 more)"


# --------------------------------------------------------------------------- no call


@pytest.mark.parametrize("expected", [[], None, "none", "None", " NONE "])
def test_expected_no_call_and_none_made(expected):
    for calls in (None, []):
        assert grade(expected, calls, output="I can't help with that.") == Grade(True, 1.0,
                                                                                 "no tool call, as expected")
    g = build_grader("tool_call")
    assert asyncio.run(g("text", expected)).passed  # no ctx: no call


@pytest.mark.parametrize("expected", [[], None, "none"])
def test_expected_no_call_and_the_model_calls(expected):
    r = grade(expected, [call("get_weather", {"city": "Recife"})])
    assert r == Grade(False, 0.0, "called get_weather, expected no call")
    r = grade(expected, [call("get_weather", {}), call("get_time", {})])
    assert r == Grade(False, 0.0, "called get_weather, get_time, expected no call")


def test_expected_a_call_and_the_model_answers_in_text():
    r = grade(RECIFE, None, output="It is sunny in Recife.")
    assert r == Grade(False, 0.0, 'no tool call; expected get_weather(city="Recife", units="c"), '
                                  "answered 'It is sunny in Recife.'")
    assert grade(RECIFE, []).reason == 'no tool call; expected get_weather(city="Recife", units="c")'
    assert grade([{"name": "get_weather"}, {"name": "get_time", "arguments": {}}], None).reason == \
        "no tool call; expected get_weather(...), get_time()"
    assert asyncio.run(build_grader("tool_call")("", RECIFE)).score == 0.0  # no ctx: no call


# --------------------------------------------------------------------------- threshold


def test_threshold_lets_partial_credit_pass_and_keeps_the_reason():
    got = [call("get_weather", {"city": "recife", "units": "c"})]
    r = grade(RECIFE, got, threshold=0.6)
    assert (r.passed, r.score, r.reason) == (True, 2 / 3, 'get_weather.arguments.city: expected "Recife", got "recife"')
    assert not grade(RECIFE, got, threshold=0.7).passed
    assert grade(RECIFE, got, threshold="0.5").passed  # YAML's number-as-text, as for every grader


# --------------------------------------------------------------------------- schema mode


def test_schema_mode_validates_against_the_tools_own_parameters():
    valid = [call("get_weather", {"city": "Natal", "units": "f"})]
    # expected arguments are not compared: any arguments that fit the tool's schema are right
    assert grade(RECIFE, valid, tools=TOOLS, arguments="schema") == Grade(
        True, 1.0, 'get_weather(city="Natal", units="f") as expected')
    assert grade([{"name": "get_weather"}], valid, tools=TOOLS, arguments="schema").passed


def test_schema_mode_wrong_type_names_the_path():
    r = grade([{"name": "get_weather"}], [call("get_weather", {"city": 5})], tools=TOOLS, arguments="schema")
    assert (r.passed, r.score, r.reason) == (False, 2 / 3, "get_weather.arguments.city: 5 is not of type 'string'")
    r = grade([{"name": "get_weather"}], [call("get_weather", {"city": "Natal", "units": "k"})], tools=TOOLS,
              arguments="schema")
    assert r.reason == "get_weather.arguments.units: 'k' is not one of ['c', 'f']"


def test_schema_mode_missing_required_and_extra_property():
    r = grade([{"name": "get_weather"}], [call("get_weather", {"units": "c"})], tools=TOOLS, arguments="schema")
    assert (r.passed, r.score, r.reason) == (False, 2 / 3, "get_weather.arguments: 'city' is a required property")
    r = grade([{"name": "get_weather"}], [call("get_weather", {"city": "Natal", "days": 3})], tools=TOOLS,
              arguments="schema")
    assert not r.passed and r.reason.startswith("get_weather.arguments: Additional properties are not allowed")


def test_schema_mode_a_tool_without_parameters_takes_any_object():
    tools = [{"type": "function", "function": {"name": "ping"}}]
    assert grade([{"name": "ping"}], [call("ping", {})], tools=tools, arguments="schema").passed
    r = grade([{"name": "ping"}], [call("ping", [])], tools=tools, arguments="schema")
    assert r.reason == "ping.arguments: [] is not of type 'object'"


def test_schemas_option_overrides_the_tools_and_implies_schema_mode():
    schemas = {"get_weather": {"type": "object", "properties": {"city": {"enum": ["Recife", "Natal"]}},
                               "required": ["city"]}}
    # without 'arguments', schemas means schema mode; the override wins over the tool's own parameters
    r = grade(RECIFE, [call("get_weather", {"city": "Olinda"})], tools=TOOLS, schemas=schemas)
    assert (r.passed, r.reason) == (False, "get_weather.arguments.city: 'Olinda' is not one of ['Recife', 'Natal']")
    assert grade(RECIFE, [call("get_weather", {"city": "Natal", "days": 3})], tools=TOOLS, schemas=schemas).passed
    # the request needs no tools when schemas names the tool, and other tools still come from the request
    assert grade(RECIFE, [call("get_weather", {"city": "Natal"})], schemas=schemas, arguments="schema").passed
    r = grade([{"name": "get_time"}], [call("get_time", {"tz": 3})], tools=TOOLS, schemas=schemas)
    assert r.reason == "get_time.arguments.tz: 3 is not of type 'string'"


def test_schemas_option_reads_files_relative_to_the_suite(tmp_path):
    (tmp_path / "weather.yaml").write_text("type: object\nrequired: [city]\n", encoding="utf-8")
    g = build_grader({"type": "tool_call", "schemas": {"get_weather": "weather.yaml"}}, base_dir=tmp_path)
    assert asyncio.run(g("", RECIFE, GradeContext(tool_calls=[call("get_weather", {"city": "x"})]))).passed
    r = asyncio.run(g("", RECIFE, GradeContext(tool_calls=[call("get_weather", {})])))
    assert r.reason == "get_weather.arguments: 'city' is a required property"


def test_schema_mode_unknown_tools():
    # the model calls a tool the request does not offer: a wrong tool, not an error
    r = grade([{"name": "get_weather"}], [call("launch_rocket", {})], tools=TOOLS, arguments="schema")
    assert (r.passed, r.score, r.reason) == (False, 1 / 3, "expected tool get_weather, got launch_rocket")
    # the case expects a tool nothing describes: the suite's mistake, an error
    g = build_grader({"type": "tool_call", "arguments": "schema"})
    with pytest.raises(GraderError) as info:
        asyncio.run(g("", [{"name": "launch_rocket"}], GradeContext(tool_calls=[call("launch_rocket", {})],
                                                                     tools=TOOLS)))
    assert info.value.key == "schemas" and "no schema for tool 'launch_rocket'" in info.value.message
    with pytest.raises(GraderError):
        asyncio.run(g("", [{"name": "get_weather"}], GradeContext(tool_calls=[call("get_weather", {})])))


def test_schema_mode_invalid_parameters_in_the_request_are_an_error():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "strng"}}}]
    g = build_grader({"type": "tool_call", "arguments": "schema"})
    with pytest.raises(GraderError) as info:
        asyncio.run(g("", [{"name": "f"}], GradeContext(tool_calls=[call("f", {})], tools=tools)))
    assert info.value.key == "tools" and "tool 'f'" in info.value.message


def test_tool_schemas_are_compiled_once():
    params = {"type": "object", "properties": {"q": {"type": "string"}}}
    first = module._compiled(params, "search")
    assert module._compiled(params, "search") is first  # the same object: found by id
    assert module._compiled(json.loads(json.dumps(params)), "search") is first  # an equal one: found by its JSON
    tools = [{"type": "function", "function": {"name": "search", "parameters": params}}]
    assert grade([{"name": "search"}], [call("search", {"q": "x"})], tools=tools, arguments="schema").passed
    assert module._BY_ID[id(params)][1] is first


# --------------------------------------------------------------------------- expected forms


def test_openai_message_form_as_expected():
    expected = [{"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Recife", "units": "c"}'}}]
    assert grade(expected, [call("get_weather", {"city": "Recife", "units": "c"})]).passed
    r = grade(expected, [call("get_weather", {"city": "Natal", "units": "c"})])
    assert r.reason == 'get_weather.arguments.city: expected "Recife", got "Natal"'
    single = {"type": "function", "function": {"name": "get_time", "arguments": ""}}  # "" is no arguments
    assert grade(single, [call("get_time", {})]).passed
    assert not grade(single, [call("get_time", {"tz": "UTC"})]).passed
    assert grade({"function": {"name": "get_time"}}, [call("get_time", {"tz": "UTC"})]).passed  # any arguments


def test_a_single_call_mapping_is_a_one_item_list():
    got = [call("get_weather", {"city": "Recife", "units": "c"})]
    assert grade(RECIFE[0], got) == grade(RECIFE, got)
    assert grade({"name": "get_weather", "arguments": '{"city": "Recife", "units": "c"}'}, got).passed
    assert grade(tuple(RECIFE), got).passed


def test_expected_is_normalised_once_per_case():
    g = build_grader({"type": "tool_call", "order": "strict"})
    expected = [{"type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}}]
    ctx = GradeContext(tool_calls=[call("get_time", {"tz": "UTC"})])
    assert asyncio.run(g("", expected, ctx)).passed
    expected[0]["function"]["arguments"] = '{"tz": "BRT"}'  # the same object: the normalised form is reused
    assert asyncio.run(g("", expected, ctx)).passed
    assert not asyncio.run(g("", json.loads(json.dumps(expected)), ctx)).passed


@pytest.mark.parametrize(("expected", "message"), [
    (True, "expected is a boolean (True)"),
    (False, "for no tool call write none, [] or null"),
    ("get_weather", "got the string 'get_weather'"),
    (5, "got int"),
    (["get_weather"], "expected[0]: must be a call mapping {name, arguments}, got str"),
    ([{"name": "a"}, {"arguments": {}}], "expected[1].name: must be a tool name, got None"),
    ([{"name": ""}], "expected[0].name: must be a tool name"),
    ({"name": 3}, "expected.name: must be a tool name, got 3"),
    ({"name": "f", "arguments": [1]}, "expected.arguments: must be an object"),
    ({"name": "f", "arguments": "[1]"}, "expected.arguments: must be an object"),
    ({"name": "f", "arguments": "{bad"}, "expected.arguments: not valid JSON (Expecting property name"),
    ({"name": "f", "args": {}}, "expected: unknown key 'args'"),
    ({"type": "custom", "function": {"name": "f"}}, "expected.type: must be 'function', got 'custom'"),
    ([{"type": "function", "function": "f"}], "expected[0].function: must be a mapping"),
    ([{"type": "function"}], "expected[0].function: must be a mapping"),
    ([{"type": "function", "function": {"name": "f", "arguments": "{"}}],
     "expected[0].function.arguments: not valid JSON"),
    ([{"type": "function", "function": {"name": "f", "parameters": {}}}],
     "expected[0].function: unknown key 'parameters'"),
    ([{"type": "function", "name": "f"}], "expected[0]: unknown key 'name'"),
    ([{"type": "function", "function": {"arguments": "{}"}}], "expected[0].function.name: must be a tool name"),
])
def test_bad_expected(expected, message):
    assert message in expected_error(expected).message


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(("options", "key", "message"), [
    ({"arguments": "loose"}, "arguments", "must be one of 'equal', 'subset', 'schema' or null"),
    ({"order": "random"}, "order", "must be one of 'any', 'strict'"),
    ({"threshold": 1.5}, "threshold", "threshold must be between 0 and 1"),
    ({"threshold": -0.1}, "threshold", "threshold must be between 0 and 1"),
    ({"threshold": True}, "threshold", "must be a number"),
    ({"schemas": ["get_weather"]}, "schemas", "must be a mapping"),
    ({"schemas": {"f": {"type": "object"}}, "arguments": "equal"}, "schemas",
     "'schemas' is only used with arguments 'schema' (arguments is 'equal')"),
    ({"schemas": {"f": {"type": "object"}}, "arguments": "subset"}, "schemas", "only used with arguments 'schema'"),
    ({"schemas": {"get_weather": {"type": "strng"}}}, "schemas.get_weather", "invalid JSON Schema"),
    ({"schemas": {"get-weather": {"type": "strng"}}}, 'schemas["get-weather"]', "invalid JSON Schema"),
    ({"schemas": {"f": 5}}, "schemas.f", "must be a JSON Schema (a mapping) or the path of a file"),
    ({"schemas": {"f": "no/such/file.json"}}, "schemas.f", "cannot read schema file"),
    ({"ignore_case": True}, "ignore_case", "unknown option 'ignore_case' for grader 'tool_call'"),
])
def test_bad_options(options, key, message):
    error = spec_error(**options)
    assert error.key == key
    assert message in error.message
