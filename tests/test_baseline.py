"""Comparing a run with an earlier JSON report: regressions, fixes, added and removed cases."""

import json

import pytest

from pytest_ft.report.baseline import BaselineError, compare, count_regressions, load_baseline, suite_key


def _case(case_id, tuned_passed, base_passed=True, error=None):
    return {"id": case_id, "nodeid": f"x::{case_id}", "input": case_id, "expected": "ok",
            "errors": [error] if error else [],
            "base": {"model": "m", "output": "ok", "passed": base_passed, "score": 1.0, "error": None},
            "tuned": {"model": "ft:m", "output": None if error else "ok", "passed": tuned_passed,
                      "score": float(tuned_passed), "error": error}}


def _suite(name, file, cases):
    passed = sum(1 for c in cases if c["tuned"]["passed"])
    return {"suite": name, "file": file, "thresholds": {}, "gate": {"passed": True, "failures": []},
            "models": {"base": {"model": "m", "cases": len(cases), "passed": len(cases), "accuracy": 1.0},
                       "tuned": {"model": "ft:m", "cases": len(cases), "passed": passed,
                                 "accuracy": passed / len(cases) if cases else 0.0}},
            "gain": None, "judge": None, "fixed": [], "regressions": [], "errored": [], "cases": cases}


def _report(*suites):
    return {"version": 1, "passed": True, "suites": list(suites), "invalid_suites": [],
            "calls": {"replayed": 0, "live": 0}, "unpriced_models": [], "duration_s": 0.1}


@pytest.fixture
def baseline():
    return _report(
        _suite("sentiment", "suites/sentiment.ft.yaml", [
            _case("keeps", True), _case("breaks", True), _case("heals", False), _case("dropped", True),
            _case("still-bad", False), _case("now-errors", True), _case("was-error", False, error="HTTP 500"),
        ]),
        _suite("format", "suites/format.ft.yaml", [_case("json", True)]),
    )


@pytest.fixture
def report():
    return _report(
        _suite("sentiment", "./suites/sentiment.ft.yaml", [    # same file, written differently
            _case("keeps", True), _case("breaks", False), _case("heals", True), _case("still-bad", False),
            _case("now-errors", False, error="tuned model: HTTP 500"), _case("was-error", True),
            _case("brand-new", False),
        ]),
        _suite("summaries", "suites/summaries.ft.yaml", [_case("s1", True), _case("s2", False)]),
    )


def test_compare_lists_regressions_fixes_added_and_removed(report, baseline):
    diff = compare(report, baseline)
    sentiment = diff["suites/sentiment.ft.yaml::sentiment"]
    assert sentiment["status"] == "matched"
    assert sentiment["regressed"] == ["breaks"]
    assert sentiment["fixed"] == ["heals"]
    assert sentiment["added"] == ["brand-new"]
    assert sentiment["removed"] == ["dropped"]
    # an error says nothing about the model: neither a regression nor a fix, but shown
    assert sentiment["errored"] == ["now-errors"]
    assert "was-error" not in sentiment["fixed"]
    assert sentiment["accuracy_then"] == pytest.approx(4 / 7)
    assert sentiment["accuracy_now"] == pytest.approx(3 / 7)
    assert count_regressions(sentiment) == 1


def test_compare_lists_new_and_gone_suites(report, baseline):
    diff = compare(report, baseline)
    assert list(diff) == ["suites/sentiment.ft.yaml::sentiment", "suites/summaries.ft.yaml::summaries",
                          "suites/format.ft.yaml::format"]
    new = diff["suites/summaries.ft.yaml::summaries"]
    assert new["status"] == "new" and new["added"] == ["s1", "s2"] and new["accuracy_then"] is None
    assert new["regressed"] == [] and count_regressions(new) == 0
    gone = diff["suites/format.ft.yaml::format"]
    assert gone["status"] == "gone" and gone["removed"] == ["json"] and gone["accuracy_now"] is None
    assert gone["accuracy_then"] == 1.0


def test_suites_match_by_file_and_name(baseline):
    # same name, another file: a different suite (the sample report has two "sentiment" suites)
    other = _report(_suite("sentiment", "other/sentiment.ft.yaml", [_case("breaks", False)]))
    diff = compare(other, baseline)
    assert diff["other/sentiment.ft.yaml::sentiment"]["status"] == "new"
    assert diff["suites/sentiment.ft.yaml::sentiment"]["status"] == "gone"
    assert suite_key({"suite": "a", "file": "x\\y\\a.ft.yaml"}) == "x/y/a.ft.yaml::a"


def test_compare_another_role(baseline):
    then = _report(_suite("s", "s.ft.yaml", [_case("a", True, base_passed=True)]))
    now = _report(_suite("s", "s.ft.yaml", [_case("a", True, base_passed=False)]))
    assert compare(now, then, role="base")["s.ft.yaml::s"]["regressed"] == ["a"]
    assert compare(now, then)["s.ft.yaml::s"]["regressed"] == []


def test_count_regressions_of_nothing():
    assert count_regressions(None) == 0
    assert count_regressions({"regressed": ["a", "b"]}) == 2


def test_load_baseline_round_trip(tmp_path, baseline):
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(baseline), encoding="utf-8")
    assert load_baseline(path) == baseline
    assert load_baseline(str(path))["suites"][0]["suite"] == "sentiment"


def test_load_baseline_missing_file_names_it(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(BaselineError, match=r"nope\.json: no such file"):
        load_baseline(path)


def test_load_baseline_directory(tmp_path):
    with pytest.raises(BaselineError, match="cannot read it"):
        load_baseline(tmp_path)


def test_load_baseline_not_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"suites": [\n  oops\n]}', encoding="utf-8")
    with pytest.raises(BaselineError, match=r"broken\.json:2:3: not JSON"):
        load_baseline(path)


@pytest.mark.parametrize("content, reason", [
    ([1, 2], "expected a JSON object, got list"),
    ({"tests": []}, "no 'suites' list"),
    ({"suites": [{"suite": "s", "file": "f", "models": {}}]}, r"suites\[0\] has no 'cases' list"),
    ({"suites": [{"suite": "s", "file": "f", "models": {}, "cases": [{"name": "x"}]}]},
     r"suites\[0\]\.cases\[0\] has no 'id'"),
])
def test_load_baseline_rejects_other_json(tmp_path, content, reason):
    path = tmp_path / "junit.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(BaselineError, match=r"junit\.json: not a pytest-ft report \(" + reason):
        load_baseline(path)
