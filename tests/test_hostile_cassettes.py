"""``pytest-ft cassettes --prune`` removes stale recordings and nothing else: not suite files,
not other YAML, nothing through a symbolic link, nothing shared by two suites of one name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from vcr.request import Request

from pytest_ft.recording import audit as cassettes
from pytest_ft.cli import main as cli_main
from pytest_ft.recording.cassette import CaseCassette

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"


def suite_text(name: str, *case_ids: str) -> str:
    cases = "".join(f"  - {{id: {case_id}, input: hello, expected: A}}\n" for case_id in case_ids)
    return f"suite: {name}\nmodels: {{tuned: {TUNED}}}\ncases:\n{cases}"


def record(path: Path) -> Path:
    """A recording written the way the runner writes one."""
    cassette = CaseCassette.open(path, "once", path.stem)
    request = Request("POST", "http://127.0.0.1:9/v1/chat/completions", b'{"model": "m"}',
                      {"content-type": "application/json"})
    cassette.cassette.append(request, {"status": {"code": 200, "message": "OK"},
                                       "headers": {"content-type": ["application/json"]},
                                       "body": {"string": b'{"choices": []}'}})
    cassette.save(complete=True)
    assert path.read_text().startswith("version: 1\ninteractions:\n")
    return path


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def snapshot(top: Path) -> dict[str, bytes | str]:
    """Every file and link below ``top`` (links by their target), without following links."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(folder, name)
            key = path.relative_to(top).as_posix()
            if path.is_symlink():
                found[key] = f"-> {os.readlink(path)}"
            elif path.is_file():
                found[key] = path.read_bytes()
    return found


def prune_json(capsys, *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = cli_main(["cassettes", *args, "--prune", "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("cassette_dir", ["evals", "."])
def test_prune_removes_the_stale_recording_and_no_suite_or_config_file(tmp_path, monkeypatch, capsys, cassette_dir):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "evals/sentiment/labels.ft.yaml", suite_text("sentiment", "a"))
    write(tmp_path / "config/settings.yaml", "version: 1\ndatabase: {host: db, port: 5432}\n")
    write(tmp_path / "evals/sentiment/thresholds.yaml", "accuracy: 0.9\n")
    root = tmp_path / cassette_dir
    fresh = record(root / "sentiment/a.yaml")
    stale = record(root / "sentiment/old.yaml")
    before = snapshot(tmp_path)

    code, out = prune_json(capsys, "evals", "--cassette-dir", cassette_dir)

    assert code == 0
    assert out["stale"] == [str(stale.resolve())] and out["removed"] == 1
    assert snapshot(tmp_path) == {k: v for k, v in before.items() if k != stale.relative_to(tmp_path).as_posix()}
    assert fresh.exists()


def test_prune_never_follows_a_symlinked_folder_out_of_the_tree(tmp_path, monkeypatch, capsys):
    outside = tmp_path / "outside"
    record(outside / "old.yaml")
    write(outside / "notes.txt", "keep me")
    project = tmp_path / "project"
    write(project / "s.ft.yaml", suite_text("sentiment", "a"))
    stale = record(project / "cassettes/sentiment/gone.yaml")
    (project / "cassettes/ghost").symlink_to(outside, target_is_directory=True)
    before = snapshot(tmp_path)
    monkeypatch.chdir(project)

    code, out = prune_json(capsys, ".")

    assert code == 0
    assert out["stale"] == [str(stale.resolve())]
    assert snapshot(tmp_path) == {k: v for k, v in before.items() if not k.endswith("gone.yaml")}
    assert out["left_alone"] == [{"path": str((project / "cassettes").resolve() / "ghost"),
                                  "reason": "a symbolic link"}]


def test_prune_never_removes_a_symlinked_file(tmp_path, monkeypatch, capsys):
    target = record(tmp_path / "outside/real.yaml")
    project = tmp_path / "project"
    write(project / "s.ft.yaml", suite_text("sentiment", "a"))
    link = project / "cassettes/sentiment/linked.yaml"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    before = snapshot(tmp_path)
    monkeypatch.chdir(project)

    code, out = prune_json(capsys, ".")

    assert code == 0 and out["stale"] == [] and out["removed"] == 0
    assert snapshot(tmp_path) == before
    assert out["left_alone"] == [{"path": str(link.parent.resolve() / "linked.yaml"), "reason": "a symbolic link"}]


NOT_RECORDINGS = {
    "empty.yaml": "",
    "list.yaml": "- version\n- interactions\n",
    "mapping.yaml": "version: 1\nname: settings\n",
    "no-version.yaml": "interactions: []\n",
    "bad-items.yaml": "version: 1\ninteractions: [1, 2]\n",
    "no-response.yaml": "version: 1\ninteractions:\n- request: {method: GET, uri: 'http://x/'}\n",
    "extra-keys.yaml": "version: 1\ninteractions: []\nservers: [a, b]\n",
    "broken.yaml": "interactions: [\n",
    "tagged.yaml": "!!python/object/apply:os.system ['true']\n",
    "binary.yaml": bytes(range(256)) * 8,
    "latin1.yaml": "version: 1\ninteractions: []\nname: caf\xe9\n".encode("latin-1"),
}


def test_yaml_that_is_not_a_recording_is_left_alone(tmp_path, monkeypatch, capsys):
    write(tmp_path / "s.ft.yaml", suite_text("sentiment", "a"))
    folder = tmp_path / "cassettes/sentiment"
    for name, content in NOT_RECORDINGS.items():
        write(folder / name, content)
    with open(folder / "huge.yaml", "wb") as handle:  # sparse: costs no disk
        handle.truncate(64 * 2**20 + 1)
    (folder / "folder.yaml").mkdir()
    os.mkfifo(folder / "fifo.yaml")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)

    code, out = prune_json(capsys, ".")

    assert code == 0 and out["stale"] == [] and out["removed"] == 0
    assert snapshot(tmp_path) == before
    reasons = {Path(item["path"]).name: item["reason"] for item in out["left_alone"]}
    assert reasons == {**{name: "not a pytest-ft recording" for name in NOT_RECORDINGS},
                       "huge.yaml": "larger than 64 MiB", "folder.yaml": "not a regular file",
                       "fifo.yaml": "not a regular file"}
    capsys.readouterr()
    assert cli_main(["cassettes", "."]) == 0
    assert "cassettes/sentiment/list.yaml: not a pytest-ft recording, left alone" in capsys.readouterr().out


@pytest.mark.parametrize("names", [("sentiment", "sentiment"), ("my suite", "my_suite")])
def test_two_suite_files_sharing_a_recordings_folder_is_an_error(tmp_path, monkeypatch, capsys, names):
    write(tmp_path / "evals/one.ft.yaml", suite_text(names[0], "a"))
    write(tmp_path / "evals/two.ft.yaml", suite_text(names[1], "b"))
    folder = tmp_path / "evals/cassettes" / names[1]
    recordings = [record(folder / f"{case_id}.yaml") for case_id in ("a", "b", "old")]
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)

    result = cassettes.audit([Path("evals")])
    assert result.stale == [] and result.recorded == [] and result.missing == []
    [message] = result.invalid
    assert "evals/one.ft.yaml" in message and "evals/two.ft.yaml" in message

    capsys.readouterr()
    assert cli_main(["cassettes", "evals", "--prune"]) == 1
    captured = capsys.readouterr()
    assert "invalid" in captured.err and "one.ft.yaml" in captured.err and "two.ft.yaml" in captured.err
    assert "Traceback" not in captured.err
    assert snapshot(tmp_path) == before
    assert all(path.exists() for path in recordings)


def test_one_suite_name_in_separate_recordings_folders_is_fine(tmp_path, monkeypatch):
    write(tmp_path / "evals/a/s.ft.yaml", suite_text("sentiment", "a"))
    write(tmp_path / "evals/b/s.ft.yaml", suite_text("sentiment", "b"))
    monkeypatch.chdir(tmp_path)
    result = cassettes.audit([Path("evals"), tmp_path / "evals/a/s.ft.yaml", Path("evals/b/../b/s.ft.yaml")])
    assert result.invalid == []
    assert sorted(case for _, case, _ in result.missing) == ["a", "b"]


def test_a_recording_that_cannot_be_removed_is_reported_and_the_rest_go_on(tmp_path, monkeypatch, capsys):
    write(tmp_path / "s.ft.yaml", suite_text("sentiment", "a"))
    locked = record(tmp_path / "cassettes/sentiment/locked.yaml")
    other = record(tmp_path / "cassettes/sentiment/other.yaml")
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if Path(path).name == "locked.yaml":
            raise PermissionError(13, "Permission denied", str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli_main(["cassettes", ".", "--prune"]) == 1
    captured = capsys.readouterr()
    assert "locked.yaml: Permission denied" in captured.err
    assert locked.exists() and not other.exists()
    assert (tmp_path / "cassettes/sentiment").is_dir()


def test_a_recording_that_vanished_before_the_prune_is_reported(tmp_path):
    write(tmp_path / "s.ft.yaml", suite_text("sentiment", "a"))
    vanished = record(tmp_path / "cassettes/sentiment/vanished.yaml")
    other = record(tmp_path / "cassettes/sentiment/other.yaml")
    result = cassettes.audit([tmp_path])
    vanished.unlink()

    removed, errors = cassettes.prune(result.stale)

    assert removed == [other.resolve()]
    assert [(path.name, message) for path, message in errors] == [("vanished.yaml", "No such file or directory")]
    assert not (tmp_path / "cassettes/sentiment").exists()  # emptied, so removed


def test_an_emptied_folder_goes_but_one_holding_anything_stays(tmp_path):
    write(tmp_path / "s.ft.yaml", suite_text("sentiment", "a"))
    record(tmp_path / "cassettes/renamed/a.yaml")
    record(tmp_path / "cassettes/sentiment/old.yaml")
    write(tmp_path / "cassettes/sentiment/README.md", "notes")
    result = cassettes.audit([tmp_path])

    removed, errors = cassettes.prune(result.stale)

    assert sorted(path.name for path in removed) == ["a.yaml", "old.yaml"] and errors == []
    assert not (tmp_path / "cassettes/renamed").exists()
    assert snapshot(tmp_path / "cassettes") == {"sentiment/README.md": b"notes"}


def test_unreadable_files_and_folders_are_reported_and_left(tmp_path, monkeypatch, capsys):
    write(tmp_path / "s.ft.yaml", suite_text("sentiment", "a"))
    unreadable = record(tmp_path / "cassettes/sentiment/unreadable.yaml")
    hidden = record(tmp_path / "cassettes/locked/old.yaml")
    stale = record(tmp_path / "cassettes/sentiment/old.yaml")
    real_open, real_scandir = os.open, os.scandir

    def deny(real, name):
        def call(path, *args, **kwargs):
            if Path(path).name == name:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", deny(real_open, "unreadable.yaml"))
    monkeypatch.setattr(os, "scandir", deny(real_scandir, "locked"))
    monkeypatch.chdir(tmp_path)

    code, out = prune_json(capsys, ".")

    assert code == 0 and out["stale"] == [str(stale.resolve())] and out["removed"] == 1
    assert {Path(item["path"]).name: item["reason"] for item in out["left_alone"]} == {
        "locked": "cannot be listed (Permission denied)", "unreadable.yaml": "cannot be read (Permission denied)"}
    assert unreadable.exists() and hidden.exists() and not stale.exists()
