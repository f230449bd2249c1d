"""``pytest-ft schema``: the JSON Schema editors use for ``*.ft.yaml`` files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from pytest_ft.cli import main as cli_main

EXAMPLES = sorted((Path(__file__).parent.parent / "example_suites").glob("*.ft.yaml"))
GOOD_CASE = {"id": "a", "input": "x", "expected": "y"}


@pytest.fixture(scope="module")
def validator(tmp_path_factory):
    out = tmp_path_factory.mktemp("schema") / "ft-suite.schema.json"
    assert cli_main(["schema", "--output", str(out)]) == 0
    schema = json.loads(out.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_printed(capsys):
    assert cli_main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "pytest-ft suite (*.ft.yaml)"


@pytest.mark.parametrize("suite", EXAMPLES, ids=lambda p: p.name)
def test_example_suites_are_valid(validator, suite):
    assert list(validator.iter_errors(yaml.safe_load(suite.read_text()))) == []


def test_a_full_suite_is_valid(validator):
    suite = {"suite": "s", "description": "d", "models": {"base": "m", "tuned": {"model": "ft:m", "base_url": "http://x",
             "api_key_env": "K", "params": {"temperature": 0}}, "fewshot": {"model": "m", "few_shot": 3},
             "previous": None}, "system": "s", "params": {"max_tokens": 5}, "grader": {"type": "regex", "pattern": "^a"},
             "thresholds": {"accuracy": 0.9, "min_gain": -0.1, "max_cost_usd": 1, "max_regressions": 0,
                            "max_p_value": 0.05},
             "judge": "gpt-4o", "repeat": 3, "pass_if": 2, "batch": False, "train": {"file": "t.jsonl", "seed": 1},
             "cases": [GOOD_CASE, {"id": 7, "messages": [{"role": "user", "content": "x"}], "expected": {"a": 1},
                                   "grader": "json", "pass_if": "all"}]}
    assert list(validator.iter_errors(suite)) == []


@pytest.mark.parametrize("suite", [
    {"cases": [GOOD_CASE], "unknown_key": 1},
    {"cases": [{"id": "a", "input": "x"}]},  # no expected
    {"cases": [{"id": "a", "input": "x"}], "models": {"tuned": "t"}},  # no expected, and no reference
    {"cases": [GOOD_CASE], "thresholds": {"min_agreement": 2}},
    {"cases": [{**GOOD_CASE, "colour": "red"}]},
    {"cases": [{"id": "a", "messages": [{"role": "robot", "content": "x"}], "expected": "y"}]},
    {"cases": [{**GOOD_CASE, "id": "../escape"}]},
    {"cases": [GOOD_CASE], "thresholds": {"accuracy": 1.5}},
    {"cases": [GOOD_CASE], "thresholds": {"min_gain": -5}},
    {"cases": [GOOD_CASE], "thresholds": {"max_regressions": -1}},
    {"cases": [GOOD_CASE], "repeat": 0},
    {"cases": [GOOD_CASE], "pass_if": "most"},
    {"cases": [GOOD_CASE], "models": {"tuned": {"name": "m"}}},
    {"suite": "s"},  # neither cases nor cases_file
    {"cases": [GOOD_CASE], "cases_file": "x.jsonl"},  # both
], ids=str)
def test_broken_suites_are_rejected(validator, suite):
    assert list(validator.iter_errors(suite)) != []


def test_cases_may_omit_expected_when_a_reference_model_answers(validator):
    suite = {"models": {"reference": {"model": "ft:gpt-4o-mini-2024-07-18:acme:x:1", "answers": "frozen.jsonl"},
                        "tuned": "t"}, "agreement": "exact", "thresholds": {"min_agreement": 0.9,
                                                                            "max_latency_p95_ms": 800},
             "cases": [{"id": "a", "input": "x"}]}
    assert list(validator.iter_errors(suite)) == []


def test_the_loader_and_the_schema_know_the_same_keys():
    from pytest_ft.suite import load, schema

    assert load.SUITE_KEYS == schema.keys(schema.Suite)
    assert load.CASE_KEYS == schema.keys(schema.Case)
    assert load.MODEL_KEYS == schema.keys(schema.ModelEntry)
    assert load.TRAIN_KEYS == schema.keys(schema.Train)
    assert set(load.THRESHOLD_RANGES) == schema.keys(schema.Thresholds)
