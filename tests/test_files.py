"""write_atomic, the one way pytest-ft writes a file (reports, recordings, job state)."""

from __future__ import annotations

import os

import pytest

from pytest_ft import redact
from pytest_ft.files import write_atomic

SECRET = "files-test-secret-" "0123456789abcdef"


def umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def test_a_new_file_gets_the_umask_s_permissions_and_its_missing_folders(tmp_path):
    target = tmp_path / "a" / "b" / "c.yaml"
    write_atomic(target, "one\n")
    assert target.read_text() == "one\n"
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask()
    assert os.listdir(target.parent) == ["c.yaml"]  # no temporary file left


def test_a_file_written_over_keeps_its_permissions(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "new", durable=True)
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()  # a folder where the file goes: the rename fails
    (target / "kept").write_text("kept")
    with pytest.raises(OSError):
        write_atomic(target, "text")
    assert sorted(os.listdir(tmp_path)) == ["taken"] and (target / "kept").read_text() == "kept"


def test_what_is_written_is_scrubbed_and_any_text_fits(tmp_path):
    redact.register(SECRET)
    target = tmp_path / "r.md"
    write_atomic(target, f"key {SECRET} · ünïcode · a lone surrogate \udc80 · " + "x" * 300_000)
    text = target.read_text(encoding="utf-8")
    assert SECRET not in text and "ünïcode" in text and "\\udc80" in text and text.endswith("x" * 300_000)


def test_a_bare_file_name_is_written_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_atomic("report.json", "{}")
    assert (tmp_path / "report.json").read_text() == "{}" and os.listdir(tmp_path) == ["report.json"]
