"""The retirement calendar: built-in dates, ft: ids and aliases, override files, hostile files, warnings."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from pytest_ft.report import retirement as rt
from pytest_ft.report.retirement import (
    BUILT_IN,
    FINE_TUNING_JOBS_END,
    WARN_DAYS,
    Retirement,
    RetirementCalendar,
    RetirementFileError,
    warning,
)

TODAY = datetime.date(2026, 11, 29)
JAN_14 = datetime.date(2027, 1, 14)
FT = "ft:gpt-4o-mini-2024-07-18:acme:x:abc"


# -- the built-in table ------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(BUILT_IN))
def test_every_built_in_date_says_where_it_comes_from_and_when_it_was_checked(model):
    entry = BUILT_IN[model]
    assert entry.model == model
    assert re.match(r"^https://\S+$", entry.source), entry.source
    assert entry.checked == "2026-11-29"
    assert entry.note  # confirmed where, or why not


@pytest.mark.parametrize("model, retires", [
    ("gpt-4o-2024-08-06", "2027-01-14"), ("gpt-4o-mini-2024-07-18", "2027-01-14"),
    ("gpt-4.1-2025-04-14", "2027-01-14"), ("gpt-4.1-mini-2025-04-14", "2027-01-14"),
    ("gpt-4.1-nano-2025-04-14", "2026-10-23"), ("gpt-3.5-turbo-0125", "2026-10-23"), ("gpt-4-0613", "2026-10-23"),
    ("gpt-5-2025-08-07", "2026-12-11"), ("gpt-5-mini-2025-08-07", "2026-12-11"),
    ("gpt-5-nano-2025-08-07", "2026-12-11"),
])
def test_exact_ids_get_their_shutdown_date(model, retires):
    found = RetirementCalendar().lookup(model)
    assert found is not None and found.retires == datetime.date.fromisoformat(retires)
    assert found.model == model


def test_dates_not_confirmed_in_the_stored_deprecations_page_say_so():
    for model in ("gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-nano-2025-04-14"):
        assert "not confirmed in the stored copy of the deprecations page" in BUILT_IN[model].note
    assert "not confirmed" not in BUILT_IN["gpt-5-2025-08-07"].note
    assert "not confirmed" not in BUILT_IN["gpt-3.5-turbo-0125"].note


def test_a_fine_tuned_model_retires_with_its_base_and_keeps_its_own_id():
    calendar = RetirementCalendar()
    found = calendar.lookup(FT)
    assert found == Retirement(FT, JAN_14, BUILT_IN["gpt-4o-mini-2024-07-18"].source, "2026-11-29",
                               BUILT_IN["gpt-4o-mini-2024-07-18"].note)
    checkpoint = calendar.lookup("ft:gpt-4.1-nano-2025-04-14:acme::xyz:ckpt-step-80")
    assert checkpoint.retires == datetime.date(2026, 10, 23) and checkpoint.model.endswith(":ckpt-step-80")


@pytest.mark.parametrize("model, retires", [
    ("gpt-4o-mini", "2027-01-14"), ("gpt-4o", "2027-01-14"), ("gpt-4.1-mini", "2027-01-14"),
    ("gpt-5", "2026-12-11"), ("gpt-5-nano", "2026-12-11"), ("gpt-3.5-turbo", "2026-10-23"),
    ("ft:gpt-4o-mini:acme::abc", "2027-01-14"),
])
def test_an_undated_alias_resolves_to_the_snapshot_it_points_to(model, retires):
    found = RetirementCalendar().lookup(model)
    assert found.retires == datetime.date.fromisoformat(retires) and found.model == model


@pytest.mark.parametrize("model", ["gemma-3-270m", "ft:gemma-3-270m:local::job1", "Qwen/Qwen2.5-0.5B", "",
                                   "gpt-3.5-turbo-1106", "babbage-002", "davinci-002", "gpt-4o-mini-2099-01-01"])
def test_a_model_without_a_known_date_gets_none_never_a_guess(model):
    assert RetirementCalendar().lookup(model) is None


def test_the_fine_tuning_job_creation_end_is_dated_and_sourced():
    assert FINE_TUNING_JOBS_END.on == datetime.date(2027, 1, 6)
    assert FINE_TUNING_JOBS_END.source.startswith("https://developers.openai.com/")
    assert FINE_TUNING_JOBS_END.checked == "2026-11-29"


# -- override files ----------------------------------------------------------------------------


def test_an_override_file_extends_and_overrides_the_table(tmp_path):
    path = tmp_path / "retirements.yaml"
    path.write_text(
        "gpt-4o-mini-2024-07-18:\n  retires: 2027-03-01\n  source: https://example.com/extended\n"
        "ft:gpt-4.1-2025-04-14:\n  retires: '2027-02-01'\n  note: our tuned 4.1s get a month more\n"
        "ft:gpt-4.1-2025-04-14:acme::special:\n  retires: 2027-05-05\n"
        "gemma-3-270m:\n  retires: 2030-01-01\n  checked: 2026-11-29\n")
    calendar = RetirementCalendar.from_file(path)
    base = calendar.lookup("gpt-4o-mini")
    assert base.retires == datetime.date(2027, 3, 1) and base.source == "https://example.com/extended"
    assert calendar.lookup(FT).retires == datetime.date(2027, 3, 1)  # a tuned model follows its overridden base
    tuned = calendar.lookup("ft:gpt-4.1-2025-04-14:acme::other")
    assert tuned.retires == datetime.date(2027, 2, 1) and tuned.note == "our tuned 4.1s get a month more"
    assert tuned.model == "ft:gpt-4.1-2025-04-14:acme::other"
    assert calendar.lookup("ft:gpt-4.1-2025-04-14:acme::special").retires == datetime.date(2027, 5, 5)  # exact wins
    assert calendar.lookup("gpt-4.1-2025-04-14").retires == JAN_14  # ft:<base> dates the tuned models only
    local = calendar.lookup("gemma-3-270m")
    assert local.retires == datetime.date(2030, 1, 1) and local.source == str(path) and local.checked == "2026-11-29"
    assert calendar.lookup("gpt-5").retires == datetime.date(2026, 12, 11)  # the rest stays built in


def test_an_ft_key_may_name_the_base_by_its_alias_and_json_works_too(tmp_path):
    path = tmp_path / "retirements.json"
    path.write_text(json.dumps({"ft:gpt-4o-mini": {"retires": "2027-02-02"}}))
    assert RetirementCalendar.from_file(path).lookup(FT).retires == datetime.date(2027, 2, 2)
    assert RetirementCalendar.from_file(None).lookup(FT).retires == JAN_14


def test_an_alias_key_dates_its_snapshot_unless_the_snapshot_has_its_own_key(tmp_path):
    path = tmp_path / "retirements.yaml"
    path.write_text("gpt-4o-mini:\n  retires: 2027-04-01\ngpt-4.1:\n  retires: 2027-04-02\n"
                    "gpt-4.1-2025-04-14:\n  retires: 2027-04-03\n")
    calendar = RetirementCalendar.from_file(path)
    assert calendar.lookup("gpt-4o-mini-2024-07-18").retires == datetime.date(2027, 4, 1)
    assert calendar.lookup(FT).retires == datetime.date(2027, 4, 1)
    assert calendar.lookup("ft:gpt-4.1-2025-04-14:acme::x").retires == datetime.date(2027, 4, 3)
    assert calendar.lookup("gpt-4.1").retires == datetime.date(2027, 4, 2)  # its own key, exactly


@pytest.mark.parametrize("name, text, expected", [
    ("bad-date.yaml", "gpt-4o:\n  retires: soon\n", ["bad-date.yaml:1:", "gpt-4o:", "YYYY-MM-DD", "'soon'"]),
    ("impossible.yaml", "ok:\n  retires: 2027-01-01\ngpt-4o:\n  retires: 2027-02-30\n",
     ["impossible.yaml:4:", "gpt-4o: retires:", "2027-02-30", "day is out of range"]),
    ("number.yaml", "gpt-4o:\n  retires: 20270114\n", ["number.yaml:1:", "gpt-4o:", "got 20270114"]),
    ("timestamp.yaml", "gpt-4o:\n  retires: 2027-01-14T10:00:00\n", ["timestamp.yaml:1:", "gpt-4o:", "YYYY-MM-DD"]),
    ("missing.yaml", "a:\n  retires: 2027-01-01\ngpt-4o:\n  note: no date\n",
     ["missing.yaml:3:", "gpt-4o:", "missing 'retires'"]),
    ("null.yaml", "gpt-4o:\n  retires:\n", ["null.yaml:1:", "gpt-4o:", "missing 'retires'"]),
    ("scalar.yaml", "gpt-4o: 2027-01-14\n", ["scalar.yaml:1:", "gpt-4o:", "expected a mapping", "'2027-01-14'"]),
    ("list-entry.yaml", "gpt-4o:\n  - 2027-01-14\n", ["list-entry.yaml:1:", "gpt-4o:", "got a list"]),
    ("typo.yaml", "gpt-4o:\n  retire: 2027-01-14\n", ["typo.yaml:1:", "gpt-4o:", "unknown key 'retire'"]),
    ("twice.yaml", "gpt-4o:\n  retires: 2027-01-14\ngpt-4o:\n  retires: 2027-02-14\n",
     ["twice.yaml:3:", "gpt-4o:", "duplicate key", "line 1"]),
    ("twice-field.yaml", "gpt-4o:\n  retires: 2027-01-14\n  retires: 2027-02-14\n",
     ["twice-field.yaml:3:", "gpt-4o:", "duplicate key 'retires'"]),
    ("top-list.yaml", "- gpt-4o\n", ["top-list.yaml:1:", "expected a mapping of model id"]),
    ("empty.yaml", "", ["empty.yaml:", "expected a mapping of model id"]),
    ("broken.yaml", "gpt-4o: {retires: [2027\n", ["broken.yaml:2:", "not valid YAML"]),
    ("two-docs.yaml", "a: 1\n---\nb: 2\n", ["two-docs.yaml:", "not valid YAML"]),
    ("broken.json", '{"gpt-4o": {"retires": "2027-01-14"},\n "x": }', ["broken.json:2:", "not valid JSON"]),
    ("list.json", '["gpt-4o"]', ["list.json:", "expected a mapping of model id"]),
    ("bad-date.json", '{"gpt-4o": {"retires": "14/01/2027"}}', ["bad-date.json:", "gpt-4o:", "'14/01/2027'"]),
    ("twice.json", '{"gpt-4o": {"retires": "2027-01-14"}, "gpt-4o": {"retires": "2027-01-15"}}',
     ["twice.json:", "gpt-4o:", "duplicate key"]),
    ("binary.yaml", b"\xff\xfe\x00garbage", ["binary.yaml:", "cannot read retirement file"]),
])
def test_every_hostile_file_gives_one_error_naming_the_file_the_line_and_the_key(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RetirementFileError) as info:
        RetirementCalendar.from_file(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    for fragment in expected:
        assert fragment in message, (fragment, message)


def test_a_missing_file_is_an_error_not_an_empty_calendar(tmp_path):
    with pytest.raises(RetirementFileError, match=r"nowhere\.yaml: cannot read retirement file: .*No such file"):
        RetirementCalendar.from_file(tmp_path / "nowhere.yaml")
    with pytest.raises(RetirementFileError, match="cannot read retirement file"):
        RetirementCalendar.from_file(tmp_path)  # a folder


def test_the_file_error_is_a_value_error():
    assert issubclass(RetirementFileError, ValueError)


# -- days left and warnings --------------------------------------------------------------------


def test_the_warning_reads_as_one_plain_sentence():
    entry = RetirementCalendar().lookup(FT)
    assert entry.days_left(TODAY) == 46
    assert warning(entry, TODAY) == (
        "ft:gpt-4o-mini-2024-07-18:acme:x:abc retires on 2027-01-14 (in 46 days): record its answers now "
        "(pytest-ft freeze) and gate a replacement against them")


@pytest.mark.parametrize("days, expected", [
    (WARN_DAYS + 1, None),
    (WARN_DAYS, "retires on 2027-01-14 (in 90 days)"),
    (1, "retires on 2027-01-14 (in 1 day)"),
    (0, "retires on 2027-01-14 (today)"),
    (-1, "retired on 2027-01-14 (1 day ago)"),
    (-30, "retired on 2027-01-14 (30 days ago)"),
])
def test_warning_boundaries(days, expected):
    entry = Retirement(model="ft:gpt-4o:acme::x", retires=JAN_14)
    today = JAN_14 - datetime.timedelta(days=days)
    assert entry.days_left(today) == days
    text = warning(entry, today)
    if expected is None:
        assert text is None
    else:
        assert text.startswith(f"ft:gpt-4o:acme::x {expected}") and "pytest-ft freeze" in text


def test_warn_days_is_90():
    assert rt.WARN_DAYS == 90
