"""Malformed and hostile suites: every problem is a SuiteError ``file:line: key: message`` from
load_suite, never another exception, a hang, or memory that grows with the expansion of aliases.

The suites are written to tmp_path here: a ``*.ft.yaml`` under tests/ would be collected.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from pytest_ft.suite import load as suite_mod
from pytest_ft.suite import SuiteError, load_suite

CASE = "cases:\n  - {id: a, input: x, expected: y}\n"
OK_LINE = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def write(tmp_path: Path, text: str, name: str = "s.ft.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> SuiteError:
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    return info.value


def bomb() -> str:
    """A "billion laughs", 9 levels deep: nine strings, nine aliases of them, nine aliases of those..."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]" for prev, name in zip("abcdefgh", "bcdefghi")]
    return "".join(f"  {line}\n" for line in lines)


HOSTILE = {
    # mapping keys
    "list_key_at_top": ("? [a, b]\n: 1\n" + CASE,
                        "1: a mapping key must be a single value, not a list or a mapping"),
    "mapping_key_in_case": ("cases:\n  - id: a\n    input: x\n    expected: y\n    ? {k: v}\n    : 1\n",
                            "5: a mapping key must be a single value"),
    # messages
    "role_is_a_list": ("cases:\n  - id: a\n    messages:\n      - {role: user, content: x}\n"
                       + "      - {role: [user], content: x}\n    expected: y\n",
                       "5: messages[1].role: unknown role ['user']"),
    "content_is_a_number": ("cases:\n  - id: a\n    messages: [{role: user, content: 5}]\n    expected: y\n",
                            "3: messages[0].content: must be a string, null or a list of content parts"),
    "content_is_a_mapping": ("cases:\n  - id: a\n    messages: [{role: user, content: {text: x}}]\n    expected: y\n",
                             "3: messages[0].content: must be a string, null or a list of content parts"),
    "content_parts_not_mappings": ("cases:\n  - id: a\n    messages: [{role: user, content: [x]}]\n    expected: y\n",
                                   "3: messages[0].content: must be a string, null or a list of content parts"),
    # thresholds: finite, and in their range
    "max_regressions_inf": ("thresholds: {max_regressions: .inf}\n" + CASE,
                            "1: thresholds.max_regressions: must be a finite number"),
    "accuracy_nan": ("thresholds: {accuracy: .nan}\n" + CASE, "1: thresholds.accuracy: must be a finite number"),
    "max_p_value_nan": ("thresholds: {max_p_value: .nan}\n" + CASE, "1: thresholds.max_p_value: must be a finite"),
    "max_cost_inf": ("thresholds: {max_cost_usd: .inf}\n" + CASE, "1: thresholds.max_cost_usd: must be a finite"),
    "min_gain_minus_inf": ("thresholds: {min_gain: -.inf}\n" + CASE, "1: thresholds.min_gain: must be a finite"),
    "min_gain_above_1": ("thresholds: {min_gain: 1.5}\n" + CASE, "1: thresholds.min_gain: must be between -1 and 1"),
    "min_gain_below_minus_1": ("thresholds: {min_gain: -2}\n" + CASE, "1: thresholds.min_gain: must be between -1"),
    "negative_cost": ("thresholds: {max_cost_usd: -0.5}\n" + CASE, "1: thresholds.max_cost_usd: must be 0 or more"),
    "fractional_regressions": ("thresholds: {max_regressions: 1.5}\n" + CASE,
                               "1: thresholds.max_regressions: must be a whole number, 0 or more"),
    # alias bombs and nesting; the line is the anchor ('d') being repeated when the count ran over
    "bomb_in_description": ("description:\n" + bomb() + CASE,
                            "5: aliases of this anchor expand the suite past 10,390 nodes (10 times the 39 written + 10,000)"),
    "bomb_in_params": ("params:\n" + bomb() + CASE, "5: aliases of this anchor expand the suite past"),
    "long_text_aliased_often": ("params:\n  t: &t '" + "x" * 5000 + "'\n  stop: [" + ", ".join(["*t"] * 3000) + "]\n"
                                + CASE, "2: aliases of this anchor expand the suite past"),
    "recursive_alias": ("params: &p {a: *p}\n" + CASE, "1: an alias inside its own anchor never ends"),
    "nested_too_deep": ("params: {p: " + "[" * 300 + "]" * 300 + "}\n" + CASE, "1: nested more than 100 levels deep"),
    # request keys pytest-ft sets or relies on
    "params_model": ("params: {temperature: 0, model: m-b}\n" + CASE, "1: params.model: reserved: pytest-ft sets it"),
    "case_params_messages": ("cases:\n  - id: a\n    input: x\n    expected: y\n    params:\n      messages: []\n",
                             "6: params.messages: reserved: pytest-ft sets it"),
    "model_params_stream": ("models:\n  tuned:\n    model: m\n    params: {stream: true}\n" + CASE,
                            "4: models.tuned.params.stream: reserved: pytest-ft reads whole answers"),
    "judge_params_stream_options": ("judge: {model: j, params: {stream_options: {}}}\n" + CASE,
                                    "1: judge.params.stream_options: reserved"),
    "params_n": ("params: {n: 3}\n" + CASE, "1: params.n: reserved: pytest-ft grades one answer per request"),
    # case ids
    "id_with_double_colon": ("cases:\n  - {id: 'a::b', input: x, expected: y}\n", "2: id: 'a::b': may not"),
    "id_with_slash": ("cases:\n  - {id: ../x, input: x, expected: y}\n", "2: id: '../x': may not"),
    "id_with_backslash": ("cases:\n  - {id: 'a\\b', input: x, expected: y}\n", "2: id: 'a\\\\b': may not"),
    "id_starting_with_dot": ("cases:\n  - {id: .hidden, input: x, expected: y}\n", "2: id: '.hidden': may not"),
    "id_with_tab": ('cases:\n  - {id: "a\\tb", input: x, expected: y}\n', "2: id: 'a\\tb': may not"),
    "id_with_nul": ('cases:\n  - {id: "a\\0b", input: x, expected: y}\n', "2: id: 'a\\x00b': may not"),
    "id_too_long": ("cases:\n  - {id: " + "x" * 201 + ", input: x, expected: y}\n", "2: id: 'xxxx"),
    "id_a_list": ("cases:\n  - {id: [a], input: x, expected: y}\n", "2: id: must be a non-empty string"),
    # suite names
    "suite_name_with_slash": ("suite: a/b\n" + CASE, "1: suite: 'a/b': may not"),
    "suite_name_dot_dot": ("suite: ..\n" + CASE, "1: suite: '..': may not"),
    "suite_name_with_newline": ('suite: "a\\nb"\n' + CASE, "1: suite: 'a\\nb': may not"),
    "suite_name_too_long": ("suite: " + "s" * 201 + "\n" + CASE, "1: suite: 'ssss"),
    "suite_name_empty": ("suite: ''\n" + CASE, "1: suite: must be a non-empty string"),
    # values a JSON request or report cannot hold
    "set_tag": ("params: {stop: !!set {a, b}}\n" + CASE, "1: set: a suite holds only strings, numbers, lists"),
    "binary_tag": ("params: {seed: !!binary aGVsbG8=}\n" + CASE, "1: binary: a suite holds only"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_suite_is_a_suite_error_at_its_line(tmp_path, name):
    text, expected = HOSTILE[name]
    path = write(tmp_path, text)
    assert str(error_of(path)).startswith(f"{path}:{expected}")


# A cases_file line is checked by the same rules as an inline case.
BAD_LINES = {
    "metadata_a_string": ({**OK_LINE, "metadata": "x"}, "metadata: must be an object"),
    "id_climbing_out": ({**OK_LINE, "id": "../../x"}, "id: '../../x': may not"),
    "metadata_id_with_nul": ({**OK_LINE, "metadata": {"id": "a\x00b"}}, "id: 'a\\x00b': may not"),
    "id_with_double_colon": ({**OK_LINE, "id": "a::b"}, "id: 'a::b': may not"),
    "id_too_long": ({**OK_LINE, "id": "x" * 201}, "id: 'xxxx"),
    "message_a_string": ({"messages": ["hello", *OK_LINE["messages"]]},
                         "messages[0]: each message needs a 'role' and 'content'"),
    "message_a_number": ({"messages": [*OK_LINE["messages"][:1], 5, *OK_LINE["messages"][1:]]},
                         "messages[1]: each message needs a 'role' and 'content'"),
    "role_a_list": ({"messages": [{"role": ["user"], "content": "q"}, OK_LINE["messages"][1]]},
                    "messages[0].role: unknown role ['user']"),
    "content_a_number": ({"messages": [{"role": "user", "content": 5}, OK_LINE["messages"][1]]},
                         "messages[0].content: must be a string"),
    "not_an_object": ([1, 2], "must be a JSON object with a 'messages' list"),
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_a_bad_cases_file_line_is_a_suite_error_naming_the_data_line(tmp_path, name):
    line, message = BAD_LINES[name]
    data = tmp_path / "cases.jsonl"
    data.write_text(json.dumps(OK_LINE) + "\n" + json.dumps(line) + "\n")
    path = write(tmp_path, "cases_file: cases.jsonl\n")
    assert str(error_of(path)).startswith(f"{path}:1: cases_file: {data}:2: {message}")


def special_file(tmp_path: Path, kind: str) -> Path:
    if kind == "directory":
        (tmp_path / "dir").mkdir()
        return tmp_path / "dir"
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(tmp_path / "fifo")
        return tmp_path / "fifo"
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    return Path("/dev/zero")


@pytest.mark.parametrize("kind", ["directory", "fifo", "dev_zero"])
def test_a_cases_file_or_suite_that_is_not_a_regular_file_is_refused_unread(tmp_path, kind):
    target = special_file(tmp_path, kind)
    path = write(tmp_path, f"cases_file: {target}\n")
    assert str(error_of(path)) == f"{path}:1: cases_file: cannot read {target}: not a regular file"
    assert str(error_of(target)) == f"{target}: cannot read suite: not a regular file"


@pytest.mark.parametrize("limit, kind", [("MAX_CASES_FILE_BYTES", "cases_file"), ("MAX_SUITE_BYTES", "suite")])
def test_a_file_over_the_size_limit_is_refused_naming_the_limit(tmp_path, limit, kind):
    big = tmp_path / ("big.jsonl" if kind == "cases_file" else "big.ft.yaml")
    with open(big, "wb") as handle:
        handle.truncate(getattr(suite_mod, limit) + 1)  # sparse: no disk used
    if kind == "cases_file":
        path = write(tmp_path, "cases_file: big.jsonl\n")
        expected = f"{path}:1: cases_file: cannot read {big}: larger than the limit of 1 GiB"
    else:
        path, expected = big, f"{big}: cannot read suite: larger than the limit of 64 MiB"
    assert str(error_of(path)) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_a_file_larger_than_it_says_is_read_only_up_to_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(suite_mod, "MAX_CASES_FILE_BYTES", 5)
    path = write(tmp_path, "cases_file: /proc/self/status\n")  # a regular file of size 0
    assert str(error_of(path)).endswith("cannot read /proc/self/status: larger than the limit of 5 bytes")


PROMPT = "You classify the sentiment of a review. " * 50  # 2 KB
VALID = {
    "a_prompt_aliased_by_2000_cases": f"system: &sys '{PROMPT}'\ncases:\n" + "".join(
        f"  - {{id: c{i}, messages: [{{role: system, content: *sys}}, {{role: user, content: x}}], expected: y}}\n"
        for i in range(2000)),
    "content_parts_and_null_content": "cases:\n  - id: a\n    messages: [{role: user, content: [{type: text, text: hi}]},"
                                      " {role: assistant, content: null}, {role: user, content: x}]\n    expected: y\n",
    "thresholds_at_their_bounds": "thresholds: {accuracy: 1, min_gain: -1, max_cost_usd: 0, max_regressions: 0,"
                                  " max_p_value: 0}\n" + CASE,
    "ordinary_params": "params: {temperature: 0, max_tokens: 5, stop: ['\\n'], response_format: {type: text},"
                       " seed: 7, logit_bias: {50256: -100}}\n" + CASE,
    "a_merge_key": "cases:\n  - {id: a, input: x, expected: y, params: &d {temperature: 0}}\n"
                   "  - {id: b, input: x, expected: y, params: {<<: *d, max_tokens: 5}}\n",
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_ordinary_suites_still_load(tmp_path, name):
    assert load_suite(write(tmp_path, VALID[name])).cases


def test_ids_and_names_that_are_fine_stay_as_written(tmp_path):
    suite = load_suite(write(tmp_path, "suite: 'Sentiment v2: pt-BR (ação)'\ncases:\n"
                             "  - {id: 7, input: x, expected: y}\n  - {id: ' caso 1: ação, v1.2 ', input: x, expected: y}\n"
                             f"  - {{id: {'i' * 200}, input: x, expected: y}}\n"))
    assert suite.name == "Sentiment v2: pt-BR (ação)"
    assert [case.id for case in suite.cases] == ["7", "caso 1: ação, v1.2", "i" * 200]


def test_a_date_is_kept_as_the_text_written(tmp_path):
    suite = load_suite(write(tmp_path, "params: {metadata: {day: 2024-01-01}}\n" + CASE))
    assert suite.params == {"metadata": {"day": "2024-01-01"}}
    json.dumps(suite.params)  # what the request body needs
