"""Graders: each one's pass and fail, every option, and every spec error build_grader must catch."""

from __future__ import annotations

import asyncio
import importlib
import json
import random
import sys
import textwrap

import pytest

from pytest_ft.graders import (
    GRADERS, Grade, GradeContext, GraderError, JudgeUnavailable, SyncGrader, build_grader, lcs_length, levenshtein,
    register,
)


def grade(spec, output, expected=None, ctx=None, base_dir=None) -> Grade:
    grader = spec if callable(spec) else build_grader(spec, base_dir=base_dir)
    return asyncio.run(grader(output, expected, ctx if ctx is not None else GradeContext(messages=[])))


def spec_error(spec, base_dir=None) -> GraderError:
    with pytest.raises(GraderError) as info:
        build_grader(spec, base_dir=base_dir)
    return info.value


def expected_error(spec, expected) -> GraderError:
    """A case's expected value that the grader cannot use: caught by check_expected and by grading."""
    grader = build_grader(spec)
    with pytest.raises(GraderError) as info:
        grader.check_expected(expected)
    with pytest.raises(GraderError):
        grade(grader, "anything", expected)
    assert info.value.key == "expected"
    return info.value


class FakeJudge:
    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.calls: list[tuple[list[dict], str | None]] = []

    async def __call__(self, messages, model=None):
        self.calls.append((messages, model))
        return self.answers.pop(0)


def judge_ctx(*answers: str) -> tuple[GradeContext, FakeJudge]:
    judge = FakeJudge(*answers)
    return GradeContext(messages=[{"role": "user", "content": "Is this review positive? 'Great food'"}],
                        judge=judge), judge


# --------------------------------------------------------------------------- results, errors, building


def test_grade_to_dict_and_frozen():
    g = Grade(True, 0.5, "half")
    assert g.to_dict() == {"passed": True, "score": 0.5, "reason": "half"}
    with pytest.raises(AttributeError):
        g.passed = False  # type: ignore[misc]


def test_grader_error_carries_key_and_prefixes():
    err = GraderError("bad", key="pattern")
    assert isinstance(err, ValueError) and str(err) == "bad" and err.key == "pattern"
    assert err.with_prefix("graders[1]").key == "graders[1].pattern"
    assert GraderError("bad").with_prefix("graders[0]").key == "graders[0]"
    assert GraderError("bad", "[2].type").with_prefix("graders[0]").key == "graders[0][2].type"


def test_build_accepts_name_mapping_and_list():
    assert grade("exact", "yes", "yes").passed
    assert grade({"type": "exact", "ignore_case": True}, "YES", "yes").passed
    both = [{"type": "regex", "pattern": "^y"}, {"type": "contains", "values": "es"}]
    assert grade(both, "yes").passed
    assert not grade(both, "no").passed


def test_build_is_cached_per_spec_and_base_dir(tmp_path):
    spec = {"type": "regex", "pattern": "^NEG", "ignore_case": True}
    assert build_grader(spec) is build_grader(dict(spec))
    assert build_grader(spec) is not build_grader({**spec, "ignore_case": False})
    assert build_grader(spec) is not build_grader(spec, base_dir=tmp_path)
    # True == 1 in Python; the cache must not let `ignore_case: 1` through after `ignore_case: true`.
    build_grader({"type": "exact", "ignore_case": True})
    assert spec_error({"type": "exact", "ignore_case": 1}).key == "ignore_case"


def test_unknown_type_lists_known_and_suggests():
    err = spec_error({"type": "regx"})
    assert err.key == "type"
    assert "unknown grader type 'regx'" in str(err) and "did you mean 'regex'?" in str(err)
    assert "exact" in str(err) and "similarity" in str(err)
    assert spec_error("nope").key == "type"


def test_bad_spec_shapes():
    assert spec_error({"pattern": "x"}).key == "type"
    assert "needs a 'type'" in str(spec_error({"pattern": "x"}))
    assert spec_error({"type": 3}).key == "type"
    err = spec_error(42)
    assert err.key is None and "type name, a mapping" in str(err)
    assert spec_error([]).key is None


def test_unknown_option_names_it_and_suggests():
    err = spec_error({"type": "exact", "ignorecase": True})
    assert err.key == "ignorecase"
    assert "unknown option 'ignorecase' for grader 'exact'" in str(err) and "did you mean 'ignore_case'?" in str(err)


def test_wrong_option_types():
    err = spec_error({"type": "exact", "ignore_case": "yes"})
    assert err.key == "ignore_case" and "must be true or false, got 'yes'" in str(err)
    err = spec_error({"type": "contains", "mode": "some"})
    assert err.key == "mode" and "must be one of 'all', 'any'" in str(err)
    err = spec_error({"type": "similarity", "threshold": True})
    assert err.key == "threshold" and "must be a number" in str(err)
    err = spec_error({"type": "choices", "labels": [True, False]})  # YAML `labels: [YES, NO]`
    assert err.key == "labels" and "list of strings" in str(err) and "quote them" in str(err)
    assert spec_error({"type": "all", "graders": {"type": "exact"}}).key == "graders"


def test_numeric_strings_accepted_for_number_options():
    # YAML 1.1 reads `tolerance: 1e-3` as the string "1e-3".
    assert grade({"type": "numeric", "tolerance": "1e-3"}, "1.0005", 1).passed
    assert spec_error({"type": "numeric", "tolerance": "lots"}).key == "tolerance"


def test_missing_required_option():
    err = spec_error({"type": "judge"})
    assert err.key == "rubric" and "needs option 'rubric'" in str(err)


def test_register_user_grader_with_checked_options():
    @register("starts_with_test")
    def starts_with(*, prefix: str, ignore_case: bool = False):
        async def grade_one(output, expected, ctx):
            a, b = (output.lower(), prefix.lower()) if ignore_case else (output, prefix)
            return Grade(a.startswith(b), float(a.startswith(b)), f"prefix {prefix!r}")
        return grade_one

    try:
        grader = build_grader({"type": "starts_with_test", "prefix": "Dear"})
        assert grader.uses_judge is False
        assert grade(grader, "Dear Sir", None).passed
        assert not grade(grader, None, None).passed  # None output is ""
        assert grade({"type": "starts_with_test", "prefix": "dear", "ignore_case": True}, "DEAR x").passed
        assert spec_error({"type": "starts_with_test"}).key == "prefix"
        assert spec_error({"type": "starts_with_test", "prefix": 3}).key == "prefix"
    finally:
        del GRADERS["starts_with_test"]


def test_user_factory_may_return_a_plain_function():
    @register("short_test")
    def short(*, limit: int = 5):
        def grade_one(output, expected, ctx):
            return len(output) <= limit, f"{len(output)} characters"
        grade_one.uses_judge = False
        return grade_one

    @register("broken_factory_test")
    def broken():
        return 42

    try:
        assert grade("short_test", "abc") == Grade(True, 1.0, "3 characters")
        assert not grade({"type": "short_test", "limit": 2}, "abc").passed
        build_grader("short_test").check_expected(None)
        assert spec_error({"type": "short_test", "limit": 2.5}).key == "limit"
        assert "not a grader" in str(spec_error("broken_factory_test"))
    finally:
        del GRADERS["short_test"], GRADERS["broken_factory_test"]


USER_GRADERS_MODULE = """
    from pytest_ft.graders import Grade, SyncGrader, grader

    @grader("ends_with_test")
    def ends_with(*, suffix: str, ignore_case: bool = False):
        fold = str.casefold if ignore_case else str.strip

        def check(output, expected):
            ok = fold(output.rstrip()).endswith(fold(suffix))
            return Grade(ok, float(ok), f"{'ends' if ok else 'does not end'} with {suffix!r}")

        return SyncGrader("ends_with_test", check)
"""


def test_grader_decorator_registers_from_a_user_module(tmp_path, monkeypatch):
    (tmp_path / "ft_decorated_graders.py").write_text(textwrap.dedent(USER_GRADERS_MODULE))
    monkeypatch.syspath_prepend(tmp_path)
    try:
        importlib.import_module("ft_decorated_graders")
        grader = build_grader({"type": "ends_with_test", "suffix": "Regards"})
        assert isinstance(grader, SyncGrader) and grader.uses_judge is False
        assert grade(grader, "Best Regards\n") == Grade(True, 1.0, "ends with 'Regards'")
        assert not grade(grader, "Best regards").passed
        assert grade({"type": "ends_with_test", "suffix": "regards", "ignore_case": True}, "Best Regards").passed
        assert spec_error({"type": "ends_with_test"}).key == "suffix"
        err = spec_error({"type": "ends_with_test", "suffix": True})  # YAML `suffix: yes`
        assert err.key == "suffix" and "must be a string, got True" in str(err) and "quote them" in str(err)
    finally:
        GRADERS.pop("ends_with_test", None)
        sys.modules.pop("ft_decorated_graders", None)


SHOUTING_CONFTEST = """
    from pytest_ft.graders import Grade

    def pytest_ft_register_graders(register):
        def shouting(*, min_share: float = 1.0):
            def grade(output, expected, ctx):
                letters = [c for c in output if c.isalpha()]
                share = sum(c.isupper() for c in letters) / len(letters) if letters else 0.0
                return Grade(share >= min_share, share, f"{share:.0%} capitals")
            return grade

        register("shouting", shouting)
"""

SHOUTING_SUITE = """
    models: {tuned: ft:gpt-4o-mini-2024-07-18:acme:shout:abc123}
    grader: {type: shouting, min_share: 0.9}
    cases:
      - {id: loud, input: "LABEL=HELLO", expected: anything}
      - {id: quiet, input: "LABEL=hello", expected: anything}
"""


def test_a_conftest_registers_a_grader_through_the_hook(pytester, server):
    # In a subdirectory, the conftest loads during collection, after pytest_configure: the
    # hook is historic so it is still called, before the suite next to it is read.
    (pytester.path / "shout").mkdir()
    (pytester.path / "shout" / "conftest.py").write_text(textwrap.dedent(SHOUTING_CONFTEST))
    (pytester.path / "shout" / "s.ft.yaml").write_text(textwrap.dedent(SHOUTING_SUITE))
    try:
        result = pytester.runpytest("-p", "no:cacheprovider", "-v")
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*s.ft.yaml::loud PASSED*", "*s.ft.yaml::quiet FAILED*"])
        assert {r["body"]["messages"][-1]["content"] for r in server.chat_requests()} == {"LABEL=HELLO", "LABEL=hello"}
        (pytester.path / "shout" / "s.ft.yaml").write_text(
            textwrap.dedent(SHOUTING_SUITE).replace("min_share: 0.9", "min_share: lots"))
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.stdout.fnmatch_lines(["*grader.min_share: option 'min_share' of grader 'shouting' must be a number*"])
    finally:
        GRADERS.pop("shouting", None)


def test_none_output_is_empty_string():
    assert grade("exact", None, "").passed
    assert grade({"type": "regex", "pattern": "^$"}, None).passed


# --------------------------------------------------------------------------- exact


def test_exact_pass_and_fail_reason():
    assert grade("exact", "  POSITIVO\n", "POSITIVO") == Grade(True, 1.0, "exact match")
    assert grade("exact", "positivo", "POSITIVO") == Grade(False, 0.0, "expected 'POSITIVO', got 'positivo'")


def test_exact_options():
    assert grade({"type": "exact", "ignore_case": True}, "Positivo", "POSITIVO").passed
    assert grade("exact", "New   York", "New York").passed
    assert not grade({"type": "exact", "collapse_whitespace": False}, "New   York", "New York").passed
    assert grade({"type": "exact", "collapse_whitespace": False}, " New York ", "New York").passed
    assert not grade({"type": "exact", "strip": False}, " yes", "yes").passed
    assert grade({"type": "exact", "strip": False, "collapse_whitespace": False}, "yes", "yes").passed
    assert not grade("exact", "Paris.", "Paris").passed
    assert grade({"type": "exact", "ignore_trailing_punctuation": True}, "Paris. ", "Paris").passed
    assert grade({"type": "exact", "ignore_trailing_punctuation": True}, "Paris!?", "Paris").passed


def test_exact_expected_forms():
    assert grade("exact", "B", ["A", "B"]).passed
    assert grade("exact", "C", ["A", "B"]).reason == "expected one of 'A', 'B', got 'C'"
    assert grade("exact", "42", 42).passed
    long = "x" * 200
    reason = grade("exact", long, "y").reason
    assert len(reason) < 120 and "…" in reason


def test_exact_bad_expected():
    assert "quote it" in str(expected_error("exact", False))  # YAML `expected: no`
    assert "empty (null)" in str(expected_error("exact", None))
    expected_error("exact", {"a": 1})
    expected_error("exact", [])


# --------------------------------------------------------------------------- choices

LABELS = {"type": "choices", "labels": ["POSITIVO", "NEGATIVO", "NEUTRO"]}


def test_choices_pass_normalised():
    assert grade(LABELS, " positivo.\n", "POSITIVO") == Grade(True, 1.0, "label 'POSITIVO'")


def test_choices_invalid_and_wrong_label():
    assert grade(LABELS, "xyz", "POSITIVO").reason == "invalid label 'xyz' (not one of POSITIVO, NEGATIVO, NEUTRO)"
    assert grade(LABELS, "negativo", "POSITIVO") == Grade(False, 0.0, "expected 'POSITIVO', got 'NEGATIVO'")
    assert grade(LABELS, "neutro", ["POSITIVO", "NEUTRO"]).passed


def test_choices_options():
    strict = {**LABELS, "ignore_case": False, "ignore_trailing_punctuation": False}
    assert grade(strict, "POSITIVO", "POSITIVO").passed
    assert grade(strict, "positivo", "POSITIVO").reason.startswith("invalid label 'positivo'")
    assert grade(strict, "POSITIVO.", "POSITIVO").reason.startswith("invalid label")
    assert not grade({**LABELS, "collapse_whitespace": False, "labels": ["A B"]}, "A  B", "A B").passed
    assert not grade({**LABELS, "strip": False}, " POSITIVO", "POSITIVO").passed


def test_choices_spec_errors():
    assert spec_error({"type": "choices"}).key == "labels"
    assert spec_error({"type": "choices", "labels": []}).key == "labels"
    err = spec_error({"type": "choices", "labels": ["pos", "POS"]})
    assert err.key == "labels" and "same after normalisation" in str(err)
    assert spec_error({"type": "choices", "labels": ["a", " "]}).key == "labels"
    assert spec_error({"type": "choices", "labels": "POS"}).key == "labels"


def test_choices_expected_must_be_a_label():
    err = expected_error(LABELS, "POSITIVE")
    assert "'POSITIVE' is not one of the labels (POSITIVO, NEGATIVO, NEUTRO)" in str(err)


# --------------------------------------------------------------------------- contains / not_contains


def test_contains_defaults_to_expected_all():
    assert grade("contains", "The capital is Paris.", "Paris").passed
    g = grade("contains", "Paris is lovely", ["Paris", "France"])
    assert g == Grade(False, 0.5, "missing 'France' in 'Paris is lovely'")


def test_contains_options():
    assert grade({"type": "contains", "mode": "any"}, "Paris is lovely", ["Rome", "Paris"]) == \
        Grade(True, 1.0, "1 of 2 found")
    g = grade({"type": "contains", "mode": "any"}, "Berlin", ["Rome", "Paris"])
    assert g == Grade(False, 0.0, "none of 'Rome', 'Paris' in 'Berlin'")
    assert not grade("contains", "PARIS", "paris").passed
    assert grade({"type": "contains", "ignore_case": True}, "PARIS", "paris").passed
    values = {"type": "contains", "values": ["refund", "order"]}
    assert grade(values, "Your refund for order 12", "ignored").passed
    assert grade({"type": "contains", "values": "refund"}, "a refund", None).passed


def test_not_contains():
    assert grade("not_contains", "All good", "SYSTEM PROMPT") == Grade(True, 1.0, "absent: 'SYSTEM PROMPT'")
    g = grade({"type": "not_contains", "values": ["damn", "hell"]}, "what the hell")
    assert g == Grade(False, 0.5, "found forbidden 'hell' in 'what the hell'")
    assert grade({"type": "not_contains", "values": ["a", "b"], "mode": "any"}, "only a").passed
    g = grade({"type": "not_contains", "values": ["a", "b"], "mode": "any"}, "a b")
    assert g.reason == "found all of 'a', 'b' in 'a b'" and not g.passed
    assert not grade({"type": "not_contains", "ignore_case": True}, "HELL", "hell").passed


def test_contains_errors():
    assert spec_error({"type": "contains", "values": []}).key == "values"
    assert spec_error({"type": "not_contains", "values": ["x", ""]}).key == "values"
    assert spec_error({"type": "contains", "values": 3}).key == "values"
    expected_error("contains", "")
    expected_error("contains", None)


# --------------------------------------------------------------------------- regex


def test_regex_pass_and_fail_reason():
    assert grade({"type": "regex", "pattern": r"NEG\w+"}, "Sentiment: NEGATIVE", None) == \
        Grade(True, 1.0, "matched 'NEGATIVE'")
    assert grade({"type": "regex", "pattern": "^NEG"}, "positive", None).reason == "no match for /^NEG/ 'positive'"


def test_regex_uses_expected_as_pattern():
    assert grade("regex", "order #123", r"#\d+").passed
    assert not grade("regex", "order", r"#\d+").passed
    assert grade({"type": "regex", "pattern": "x"}, "x", "this is ignored").passed
    err = expected_error("regex", "(")
    assert "invalid regex '('" in str(err)
    expected_error("regex", None)
    expected_error("regex", 3)


def test_regex_options():
    assert grade({"type": "regex", "pattern": "^neg", "ignore_case": True}, "NEGATIVE").passed
    assert not grade({"type": "regex", "pattern": "^b"}, "a\nb").passed
    assert grade({"type": "regex", "pattern": "^b", "multiline": True}, "a\nb").passed
    assert not grade({"type": "regex", "pattern": "a.b"}, "a\nb").passed
    assert grade({"type": "regex", "pattern": "a.b", "dotall": True}, "a\nb").passed
    assert grade({"type": "regex", "pattern": "b"}, "abc").passed
    g = grade({"type": "regex", "pattern": "b", "match": "match"}, "abc")
    assert g.reason == "no match for /b/ at the start of 'abc'"
    assert grade({"type": "regex", "pattern": "a", "match": "match"}, "abc").passed
    assert grade({"type": "regex", "pattern": r"\d+", "match": "fullmatch"}, "123\n").passed
    assert not grade({"type": "regex", "pattern": r"\d+", "match": "fullmatch"}, "123 apples").passed
    assert not grade({"type": "regex", "pattern": r"\d+", "match": "fullmatch", "strip": False}, "123\n").passed


def test_regex_spec_errors():
    err = spec_error({"type": "regex", "pattern": "(unclosed"})
    assert err.key == "pattern" and "missing ), unterminated subpattern" in str(err)
    assert spec_error({"type": "regex", "pattern": "x", "match": "prefix"}).key == "match"
    assert spec_error({"type": "regex", "pattern": 5}).key == "pattern"


# --------------------------------------------------------------------------- json


def test_json_equal_ignores_key_order():
    assert grade("json", '{"b": 2, "a": 1}', {"a": 1, "b": 2}) == Grade(True, 1.0, "JSON equal")
    assert grade("json", '[1, 2]', "[1, 2]").passed  # expected as JSON text


def test_json_tolerates_fences_and_prose_unless_strict():
    fenced = 'Here you go:\n```json\n{"a": 1}\n```\n'
    assert grade("json", fenced, {"a": 1}).passed
    assert grade("json", '```\n{"a": 1}', {"a": 1}).passed  # unterminated fence
    assert grade("json", 'The result is {"a": 1}. Hope it helps', {"a": 1}).passed
    g = grade({"type": "json", "strict": True}, fenced, {"a": 1})
    assert not g.passed and g.reason.startswith("not JSON: Expecting value")


def test_json_not_json():
    assert grade("json", "sorry, I can't", {"a": 1}) == \
        Grade(False, 0.0, "not JSON: Expecting value: line 1 column 1 (char 0)")
    assert grade("json", "  ", {"a": 1}).reason == "not JSON: empty answer"


def test_json_equal_differences_and_partial_score():
    g = grade("json", '{"name": "Ana", "age": 31, "extra": 1}', {"name": "Ana", "age": 30})
    assert not g.passed
    assert g.reason == "$.age: expected 30, got 31; $.extra: unexpected"
    assert g.score == pytest.approx(1 / 3)
    assert not grade("json", '{"ok": 1}', {"ok": True}).passed  # JSON true is not 1
    assert grade("json", '{"x": 1.0}', {"x": 1}).passed
    g = grade("json", '{"items": [1]}', {"items": [1, 2]})
    assert g.reason == "$.items: expected 2 items, got 1"
    g = grade("json", '[{"a": 1}, {"a": 3}]', [{"a": 1}, {"a": 2}])
    assert g.reason == "$[1].a: expected 2, got 3" and g.score == 0.5
    assert grade("json", '{"weird key": 2}', {"weird key": 1}).reason == '$["weird key"]: expected 1, got 2'
    g = grade("json", "[]", {"a": 1})
    assert g.reason == "$: expected an object, got []"
    many = grade("json", "{}", {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    assert many.reason.endswith("(+2 more)")


def test_json_subset():
    subset = {"type": "json", "mode": "subset"}
    assert grade(subset, '{"a": {"b": 1, "c": 2}, "d": 3}', {"a": {"b": 1}}).passed
    g = grade(subset, '{"a": {"b": 2}}', {"a": {"b": 1}, "z": 0})
    assert g == Grade(False, 0.0, "$.a.b: expected 1, got 2; $.z: missing")
    assert grade(subset, '[{"id": 1, "x": 0}]', [{"id": 1}]).passed


def test_json_schema_inline():
    spec = {"type": "json", "schema": {"type": "object", "required": ["sentiment"],
                                       "properties": {"sentiment": {"enum": ["pos", "neg"]}}}}
    assert grade(spec, '{"sentiment": "pos"}') == Grade(True, 1.0, "matches the schema")
    g = grade(spec, '{"sentiment": "meh"}')
    assert not g.passed and g.reason.startswith("schema: $.sentiment: 'meh' is not one of")
    assert grade(spec, "nope").reason.startswith("not JSON")


def test_json_schema_from_file(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "s.json").write_text(json.dumps({"type": "array", "items": {"type": "integer"}}))
    (tmp_path / "s.yaml").write_text("type: object\nrequired: [id]\n")
    spec = {"type": "json", "mode": "schema", "schema": "schemas/s.json"}
    assert grade(spec, "[1, 2]", base_dir=tmp_path).passed
    assert not grade(spec, '[1, "x"]', base_dir=tmp_path).passed
    assert not grade({"type": "json", "schema": "s.yaml"}, "{}", base_dir=tmp_path).passed


def test_json_spec_errors(tmp_path):
    err = spec_error({"type": "json", "schema": {"type": "objekt"}})
    assert err.key == "schema" and "invalid JSON Schema" in str(err)
    err = spec_error({"type": "json", "mode": "schema"})
    assert err.key == "schema" and "needs a 'schema'" in str(err)
    err = spec_error({"type": "json", "mode": "equal", "schema": {"type": "object"}})
    assert err.key == "schema" and "only used with mode 'schema'" in str(err)
    err = spec_error({"type": "json", "schema": "missing.json"}, base_dir=tmp_path)
    assert err.key == "schema" and "cannot read schema file" in str(err)
    (tmp_path / "bad.json").write_text("{nope")
    assert spec_error({"type": "json", "schema": "bad.json"}, base_dir=tmp_path).key == "schema"
    assert spec_error({"type": "json", "mode": "exactish"}).key == "mode"
    assert "not JSON text" in str(expected_error("json", "{oops"))
    expected_error("json", None)


# --------------------------------------------------------------------------- numeric


@pytest.mark.parametrize("answer, value", [
    ("The answer is 42.", 42), ("-3.5 degrees", -3.5), ("Total: $1,234.50", 1234.5), ("+7", 7),
    ("\u22122", -2), ("gpt-4 says 5", 4), ("1e3 grams", 1000), ("about .5", 0.5), ("1,2,3", 1),
    ("12,3456", 12),
])
def test_numeric_reads_first_number(answer, value):
    assert grade("numeric", answer, value).passed


def test_numeric_fail_reasons():
    assert grade("numeric", "41", 42) == Grade(False, 0.0, "expected 42, got 41")
    assert grade("numeric", "no idea", 42) == Grade(False, 0.0, "no number in 'no idea'")
    assert grade("numeric", "41", 42).score == 0.0
    assert grade({"type": "numeric", "tolerance": 0.5}, "41", 42).reason == "expected 42, got 41 (tolerance 0.5)"


def test_numeric_tolerances():
    assert grade({"type": "numeric", "tolerance": 0.1}, "1.1", 1.0).passed  # despite 1.1 - 1.0 > 0.1 in floats
    assert not grade({"type": "numeric", "tolerance": 0.1}, "1.2", 1.0).passed
    g = grade({"type": "numeric", "rel_tolerance": 0.01}, "990", 1000)
    assert g == Grade(True, 1.0, "990 is within 10 of 1000")
    assert not grade({"type": "numeric", "rel_tolerance": 0.01}, "989", 1000).passed
    either = {"type": "numeric", "tolerance": 2, "rel_tolerance": 0.001}
    assert grade(either, "998", 1000).passed


def test_numeric_decimal_comma():
    spec = {"type": "numeric", "decimal_comma": True}
    assert grade(spec, "Total: 1.234,5 €", 1234.5).passed
    assert grade(spec, "3,5", 3.5).passed
    assert grade(spec, "-0,25", "-0,25").passed
    assert grade("numeric", "3,5", 3).passed


def test_numeric_expected_and_spec_errors():
    assert grade("numeric", "1234.5", "1,234.5").passed
    assert "must be a number" in str(expected_error("numeric", "many"))
    expected_error("numeric", True)
    expected_error("numeric", None)
    assert spec_error({"type": "numeric", "tolerance": -1}).key == "tolerance"
    assert spec_error({"type": "numeric", "rel_tolerance": -0.1}).key == "rel_tolerance"


# --------------------------------------------------------------------------- similarity


def test_similarity_token_f1():
    g = grade({"type": "similarity", "threshold": 0.5}, "the cat sat", "the cat ran")
    assert g.passed and g.score == pytest.approx(2 / 3) and g.reason == "token_f1 0.67 >= 0.5"
    g = grade("similarity", "the cat sat", "the cat ran")
    assert g.reason == "token_f1 0.67 < 0.8: expected 'the cat ran', got 'the cat sat'"
    assert grade("similarity", "Sat, the cat!", "the cat sat").score == 1.0  # order and punctuation ignored
    assert grade("similarity", "", "").score == 1.0
    assert grade("similarity", "", "x").score == 0.0


def test_similarity_rouge_l_and_edit():
    rouge = {"type": "similarity", "metric": "rouge_l"}
    assert grade(rouge, "a b c d", "a b c d").score == 1.0
    assert grade(rouge, "d c b a", "a b c d").score == pytest.approx(0.25)
    edit = {"type": "similarity", "metric": "edit"}
    assert grade(edit, "kitten", "sitting").score == pytest.approx(1 - 3 / 7)
    assert grade(edit, "Color", "colour").passed  # 1 - 1/6 with case ignored


def test_similarity_options():
    assert grade("similarity", "HELLO world", "hello world").passed
    assert grade({"type": "similarity", "ignore_case": False}, "HELLO world", "hello world").score == 0.5
    assert grade("similarity", "hello there", ["goodbye", "hello there"]).score == 1.0
    g = grade("similarity", "the dog", ["the cat", "a dog barked"])  # the reason names the closest reference
    assert g.score == 0.5 and g.reason == "token_f1 0.50 < 0.8: expected 'the cat', got 'the dog'"
    assert spec_error({"type": "similarity", "threshold": 1.5}).key == "threshold"
    assert "between 0 and 1" in str(spec_error({"type": "similarity", "threshold": -0.1}))
    assert spec_error({"type": "similarity", "metric": "bleu"}).key == "metric"
    expected_error("similarity", None)


def test_bit_parallel_distances_match_dynamic_programming():
    def lev(a, b):
        prev = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            cur = [i]
            for j, y in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
            prev = cur
        return prev[-1]

    def lcs(a, b):
        prev = [0] * (len(b) + 1)
        for x in a:
            cur = [0]
            for j, y in enumerate(b, 1):
                cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
            prev = cur
        return prev[-1]

    rnd = random.Random(7)
    for _ in range(1500):
        a = "".join(rnd.choice("abc") for _ in range(rnd.randint(0, 10)))
        b = "".join(rnd.choice("abcd") for _ in range(rnd.randint(0, 10)))
        assert levenshtein(a, b) == lev(a, b), (a, b)
        assert lcs_length(a, b) == lcs(a, b), (a, b)


# --------------------------------------------------------------------------- judge

RUBRIC = {"type": "judge", "rubric": "Answers whether the review is positive."}


def test_judge_passes_on_valid_json_and_sees_the_case():
    ctx, judge = judge_ctx('{"score": 0.9, "reason": "Correct and concise."}')
    g = grade(RUBRIC, "Yes, positive.", "positive", ctx)
    assert g == Grade(True, 0.9, "judge 0.90: Correct and concise.")
    (messages, model), = judge.calls
    assert model is None and messages[0]["role"] == "system" and '"score"' in messages[0]["content"]
    prompt = messages[1]["content"]
    for part in ("Great food", "<reference_answer>\npositive", "<answer_to_assess>\nYes, positive.",
                 "Answers whether the review is positive."):
        assert part in prompt


def test_judge_answer_forms():
    cases = [
        ('```json\n{"score": 0.8, "reason": "ok"}\n```', True, 0.8),
        ('Sure. {"score": "0.75", "reason": "fine"}', True, 0.75),
        ('{"score": "80%", "reason": "x"}', True, 0.8),
        ('{"score": "8/10", "reason": "x"}', True, 0.8),
        ('{"score": 7, "reason": "on a 0-10 scale"}', True, 0.7),
        ('{"score": 65, "reason": "percent"}', False, 0.65),
        ('{"score": 0.2, "explanation": "wrong"}', False, 0.2),
    ]
    for answer, passed, score in cases:
        ctx, _ = judge_ctx(answer)
        g = grade(RUBRIC, "x", "y", ctx)
        assert (g.passed, g.score) == (passed, pytest.approx(score)), answer


def test_a_judge_reply_not_understood_is_unscored_not_a_miss():
    for answer, detail in [("I think it's good", "Expecting value"), ('{"score": 150}', "out of range"),
                           ('{"score": -1}', "out of range"), ('{"score": "high"}', "not a number"),
                           ('{"verdict": "pass"}', "no 'score'"), ('{"score": "3/0"}', "divides by zero"),
                           ('{"score": "120%"}', "out of range")]:
        ctx, _ = judge_ctx(answer)
        g = grade(RUBRIC, "x", "y", ctx)
        assert g.unscored and not g.passed and g.score == 0.0
        assert g.reason.startswith("judge reply not understood:") and detail in g.reason, g.reason


def test_judge_options():
    ctx, judge = judge_ctx('{"score": 0.6, "reason": "meh"}', '{"score": 0.6, "reason": "meh"}')
    assert not grade(RUBRIC, "x", "y", ctx).passed  # default threshold 0.7
    assert grade({**RUBRIC, "threshold": 0.5}, "x", "y", ctx).passed
    ctx, judge = judge_ctx('{"score": 1, "reason": "ok"}')
    grader = build_grader({**RUBRIC, "model": "gpt-4.1", "include_expected": False})
    assert grader.uses_judge and grader.judge_model == "gpt-4.1"
    assert grade(grader, "x", "SECRET REFERENCE", ctx).passed
    (messages, model), = judge.calls
    assert model == "gpt-4.1" and "SECRET REFERENCE" not in messages[1]["content"]
    ctx, judge = judge_ctx('{"score": 1}')
    grade(RUBRIC, "x", {"label": "pos"}, ctx)
    assert '"label": "pos"' in judge.calls[0][0][1]["content"]


def test_judge_without_judge_model_is_an_error():
    with pytest.raises(JudgeUnavailable, match="configures none"):
        grade(RUBRIC, "x", "y", GradeContext(messages=[]))
    assert issubclass(JudgeUnavailable, RuntimeError)


def test_judge_spec_errors():
    assert spec_error({"type": "judge", "rubric": "  "}).key == "rubric"
    assert spec_error({"type": "judge", "rubric": 3}).key == "rubric"
    assert spec_error({**RUBRIC, "threshold": 2}).key == "threshold"
    assert spec_error({**RUBRIC, "model": ""}).key == "model"
    assert spec_error({**RUBRIC, "include_expected": "no"}).key == "include_expected"


# --------------------------------------------------------------------------- python

USER_MODULE = """
    import asyncio
    from pytest_ft.graders import Grade

    def is_upper(output, expected):
        return output.isupper()

    def overlap(output, expected, scale=1.0):
        return min(1.0, scale * len(set(output) & set(expected)) / len(set(expected)))

    def with_reason(output, expected):
        return output == expected, "compared by hand"

    def as_dict(output, expected):
        return {"score": 0.5, "reason": "half"}

    def as_grade(output, expected):
        return Grade(True, 0.9, "custom")

    async def slow(output, expected, delay=0):
        await asyncio.sleep(delay)
        return True

    def broken(output, expected):
        raise RuntimeError("boom")

    def forgets_return(output, expected):
        pass

    def too_high(output, expected):
        return 2.0

    def sneaky_async(output, expected):
        return slow(output, expected)

    class Checker:
        def method(self, output, expected):
            return True

    checker = Checker()
    NOT_CALLABLE = 3
"""


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("suite")
    (directory / "ft_user_graders.py").write_text(textwrap.dedent(USER_MODULE))
    (directory / "ft_broken_graders.py").write_text("import does_not_exist_anywhere\n")
    yield directory
    sys.modules.pop("ft_user_graders", None)


def py(function: str, **options) -> dict:
    return {"type": "python", "function": f"ft_user_graders:{function}", **options}


def test_python_return_forms(user_dir):
    assert grade(py("is_upper"), "YES", None, base_dir=user_dir) == \
        Grade(True, 1.0, "ft_user_graders:is_upper returned True")
    assert not grade(py("is_upper"), "yes", None, base_dir=user_dir).passed
    assert grade(py("with_reason"), "a", "b", base_dir=user_dir) == Grade(False, 0.0, "compared by hand")
    assert grade(py("as_dict", threshold=0.5), "a", "b", base_dir=user_dir) == Grade(True, 0.5, "half")
    assert not grade(py("as_dict"), "a", "b", base_dir=user_dir).passed
    assert grade(py("as_grade"), "a", "b", base_dir=user_dir) == Grade(True, 0.9, "custom")
    assert grade(py("slow", delay=0), "a", "b", base_dir=user_dir).passed
    assert grade(py("checker.method"), "a", "b", base_dir=user_dir).passed
    assert grade({"type": "python", "function": "ft_user_graders.is_upper"}, "OK", None, base_dir=user_dir).passed


def test_python_float_scores_and_options(user_dir):
    g = grade(py("overlap"), "ab", "abcd", base_dir=user_dir)
    assert g == Grade(False, 0.5, "ft_user_graders:overlap scored 0.50 (< 1)")
    assert grade(py("overlap", threshold=0.5), "ab", "abcd", base_dir=user_dir).passed
    assert grade(py("overlap", scale=2), "ab", "abcd", base_dir=user_dir).score == 1.0


def test_python_errors_at_grade_time_propagate(user_dir):
    with pytest.raises(RuntimeError, match="boom"):
        grade(py("broken"), "a", "b", base_dir=user_dir)
    with pytest.raises(TypeError, match="returned NoneType"):
        grade(py("forgets_return"), "a", "b", base_dir=user_dir)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        grade(py("too_high"), "a", "b", base_dir=user_dir)
    with pytest.raises(TypeError, match="async def"):
        grade(py("sneaky_async"), "a", "b", base_dir=user_dir)


def test_python_spec_errors(user_dir):
    err = spec_error({"type": "python", "function": "no_such_module_xyz:f"}, base_dir=user_dir)
    assert err.key == "function" and "No module named 'no_such_module_xyz'" in str(err)
    err = spec_error({"type": "python", "function": "ft_broken_graders:f"}, base_dir=user_dir)
    assert err.key == "function" and "does_not_exist_anywhere" in str(err)
    err = spec_error(py("missing"), base_dir=user_dir)
    assert err.key == "function" and "has no attribute 'missing'" in str(err)
    assert "not callable" in str(spec_error(py("NOT_CALLABLE"), base_dir=user_dir))
    assert "package.module:callable" in str(spec_error({"type": "python", "function": "nodots"}))
    assert spec_error({"type": "python"}).key == "function"
    err = spec_error(py("is_upper", strictness=2), base_dir=user_dir)
    assert err.key == "strictness" and "unexpected keyword argument 'strictness'" in str(err)
    assert spec_error(py("overlap", threshold=3), base_dir=user_dir).key == "threshold"
    assert str(user_dir) not in sys.path  # base_dir is only on sys.path while importing


# --------------------------------------------------------------------------- combinations


def test_all_reports_first_failure_and_skips_the_judge():
    spec = {"type": "all", "graders": [RUBRIC, {"type": "regex", "pattern": "^POS"}]}
    ctx, judge = judge_ctx('{"score": 1, "reason": "good"}')
    g = grade(spec, "NEG", None, ctx)
    assert g == Grade(False, 0.0, "regex: no match for /^POS/ 'NEG'")
    assert judge.calls == []  # the cheap grader failed first: no judge call paid for
    g = grade(spec, "POS", None, ctx)
    assert g == Grade(True, 1.0, "regex: matched 'POS'; judge: judge 1.00: good")
    assert build_grader(spec).uses_judge


def test_any():
    spec = {"type": "any", "graders": ["exact", {"type": "contains", "values": "yes", "ignore_case": True}]}
    assert grade(spec, "Yes, sure", "yes") == Grade(True, 1.0, "contains: found: 'yes'")
    g = grade(spec, "no", "yes")
    assert not g.passed and g.reason == "none passed: exact: expected 'yes', got 'no'; contains: missing 'yes' in 'no'"
    assert not build_grader(spec).uses_judge


def test_weighted():
    spec = {"type": "weighted", "threshold": 0.6, "graders": [
        {"type": "exact", "weight": 2}, {"type": "similarity", "metric": "edit"}, RUBRIC]}
    ctx, judge = judge_ctx('{"score": 0.5, "reason": "half right"}')
    g = grade(spec, "abcd", "abcx", ctx)
    assert g.score == pytest.approx((2 * 0 + 0.75 + 0.5) / 4) and not g.passed
    assert g.reason.startswith("weighted 0.31 < 0.6 (exact 0.00×2, similarity 0.75×1, judge 0.50×1); exact:")
    assert "judge: judge 0.50: half right" in g.reason
    ctx, _ = judge_ctx('{"score": 1, "reason": "ok"}')
    assert grade({**spec, "threshold": 0.3}, "abcd", "abcx", ctx).passed
    ctx, _ = judge_ctx('{"score": 1, "reason": "ok"}')
    assert grade({"type": "weighted", "graders": ["exact", RUBRIC]}, "a", "b", ctx).score == 0.5  # default 0.7: fail


def test_plain_list_and_nesting():
    either_end = [{"type": "regex", "pattern": "^A"}, {"type": "regex", "pattern": "Z$"}]
    spec = ["contains", {"type": "any", "graders": either_end}]
    assert grade(spec, "A-ok", "ok").passed
    assert grade(spec, "ok-Z", "ok").passed
    assert not grade(spec, "ok", "ok").passed
    assert build_grader(["exact"]) is build_grader("exact")  # a one-grader list is that grader
    assert build_grader({"type": "all", "graders": ["exact"]}) is build_grader("exact")


def test_combination_errors_have_nested_keys():
    err = spec_error({"type": "all", "graders": ["exact", {"type": "regex", "pattern": "("}]})
    assert err.key == "graders[1].pattern" and "invalid regex" in str(err)
    err = spec_error({"type": "any", "graders": [{"type": "all", "graders": [{"type": "nope"}]}]})
    assert err.key == "graders[0].graders[0].type"
    assert spec_error(["exact", {"type": "exact", "bogus": 1}]).key == "[1].bogus"
    assert spec_error({"type": "all", "graders": []}).key == "graders"
    assert spec_error({"type": "any"}).key == "graders"
    err = spec_error({"type": "weighted", "graders": ["exact", {"type": "exact", "weight": 0}]})
    assert err.key == "graders[1].weight" and "number > 0" in str(err)
    assert spec_error({"type": "weighted", "graders": [{"type": "exact", "weight": "2"}]}).key == "graders[0].weight"
    assert spec_error({"type": "weighted", "graders": ["exact"], "threshold": 7}).key == "threshold"
    assert spec_error({"type": "exact", "weight": 2}).key == "weight"  # weight only means something in weighted


def test_combination_check_expected_checks_children():
    grader = build_grader(["exact", "numeric"])
    grader.check_expected("12")
    with pytest.raises(GraderError) as info:
        grader.check_expected("twelve")
    assert info.value.key == "expected"


def test_non_judge_graders_are_synchronous():
    for spec in ["exact", LABELS, "contains", "regex", "json", "numeric", "similarity",
                 {"type": "json", "schema": {"type": "object"}}]:
        grader = build_grader(spec)
        assert isinstance(grader, SyncGrader) and grader.uses_judge is False
