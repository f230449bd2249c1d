"""Which recordings no case uses any more, and which cases have none (``pytest-ft cassettes``).

Recordings live at ``<cassette dir>/<suite>/<case id>.yaml``. When a case is renamed or
removed its cassette stays behind; when a case is added it has none until it is recorded.
This command compares the suites with the files, and ``--prune`` removes the stale ones.
A suite that does not load is reported and its recordings are left alone: without its
cases nothing can be said about them. Likewise two suites whose recordings share a folder.

Only what is a recording is ever removed, judged by its content: a regular file (never a
symbolic link, never below one) holding vcrpy's cassette format as pytest-ft writes it.
Anything else below a cassette folder, suite files included, is left alone.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..suite import SUITE_PATTERNS, Suite, SuiteError, is_suite_file, load_suite
from .cassette import cassette_path
from .serializer import readable_yaml

SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox"}
MAX_RECORDING_BYTES = 64 * 2**20
NOT_A_RECORDING = "not a pytest-ft recording"
LINK = "a symbolic link"
TOO_LARGE = f"larger than {MAX_RECORDING_BYTES // 2**20} MiB"
# O_NONBLOCK: a FIFO swapped in after the listing must not hang the open.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass
class Audit:
    recorded: list[Path] = field(default_factory=list)
    missing: list[tuple[str, str, Path]] = field(default_factory=list)  # (suite file, case id, cassette)
    stale: list[Path] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    left_alone: list[tuple[Path, str]] = field(default_factory=list)  # (path, why it is no recording)

    def to_dict(self) -> dict:
        return {"recorded": len(self.recorded),
                "missing": [{"suite": s, "case": c, "cassette": str(p)} for s, c, p in self.missing],
                "stale": [str(p) for p in self.stale], "invalid_suites": self.invalid,
                "left_alone": [{"path": str(p), "reason": r} for p, r in self.left_alone]}


def find_suites(paths: list[Path]) -> list[Path]:
    found: dict[Path, Path] = {}  # the real file -> how it was found, so each suite counts once
    for path in paths:
        if path.is_file():
            found.setdefault(path.resolve(), path)
            continue
        for pattern in SUITE_PATTERNS:
            for candidate in path.rglob(pattern):
                if not SKIPPED_DIRS.intersection(candidate.relative_to(path).parts):
                    found.setdefault(candidate.resolve(), candidate)
    return sorted(found.values())


def recordings_folder(root: Path, suite_name: str) -> Path:
    return cassette_path(root, suite_name, "_").parent


def shared_folders(suites: list[tuple[Path, Suite, Path]]) -> dict[Path, list[tuple[Path, Suite]]]:
    """The recordings folders that more than one suite file records into: the same case id
    in two of them would be one file, each run overwriting the other's recording."""
    by_folder: dict[Path, list[tuple[Path, Suite]]] = {}
    for suite_file, suite, root in suites:
        by_folder.setdefault(recordings_folder(root, suite.name), []).append((suite_file, suite))
    return {folder: users for folder, users in by_folder.items() if len(users) > 1}


def shared_folder_message(folder: Path, users: list[tuple[Path, Suite]]) -> str:
    names = " and ".join(f"{suite_file} (suite {suite.name!r})" for suite_file, suite in users)
    return (f"{names} record into the same folder {folder}, so a case id in one overwrites the same "
            f"case id in the other: give each suite its own 'suite:' name")


def audit(paths: list[Path], cassette_dir: Path | None = None) -> Audit:
    result = Audit()
    suites: list[tuple[Path, Suite, Path]] = []  # (suite file, suite, cassette root)
    blocked: set[Path] = set()  # roots holding the cassettes of a suite that does not load
    for suite_file in find_suites(paths):
        root = (cassette_dir or suite_file.parent / "cassettes").resolve()
        try:
            suites.append((suite_file, load_suite(suite_file), root))
        except SuiteError as exc:
            result.invalid.append(str(exc))
            blocked.add(root)
    shared = shared_folders(suites)
    result.invalid.extend(shared_folder_message(folder, users) for folder, users in shared.items())
    expected: set[Path] = set()
    for suite_file, suite, root in suites:
        if recordings_folder(root, suite.name) in shared:
            continue
        for case in suite.cases:
            path = cassette_path(root, suite.name, case.id)
            expected.add(path)
            if os.path.exists(path):
                result.recorded.append(path)
            else:
                result.missing.append((str(suite_file), case.id, path))
    for root in sorted({root for _, _, root in suites} - blocked):
        for path, problem in files_below(root):
            if (path in expected or path.parent in shared or is_suite_file(path)
                    or (root.parent / f"{path.parent.name}.py").exists()):  # a test module's recordings
                continue
            problem = problem or recording_problem(path)
            if problem:
                result.left_alone.append((path, problem))
            else:
                result.stale.append(path)
    return result


def files_below(root: Path) -> Iterator[tuple[Path, str | None]]:
    """Each ``<root>/<folder>/<name>.yaml``, with why it cannot be a recording (None: it may be
    one), and each folder link met on the way. No link is followed."""
    if not root.is_dir():
        return
    for folder in _listing(root):
        if isinstance(folder, tuple):
            yield folder
        elif folder.is_symlink():
            if folder.is_dir():
                yield Path(folder.path), LINK
        elif folder.is_dir(follow_symlinks=False):
            for entry in _listing(Path(folder.path)):
                if isinstance(entry, tuple):
                    yield entry
                elif entry.name.endswith(".yaml"):
                    yield Path(entry.path), None if entry.is_file(follow_symlinks=False) else _not_a_file(entry)


def _listing(folder: Path) -> list[os.DirEntry] | list[tuple[Path, str]]:
    """The entries of ``folder`` by name, or why it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as exc:
        return [(folder, f"cannot be listed ({exc.strerror})")]


def _not_a_file(entry: os.DirEntry) -> str:
    return LINK if entry.is_symlink() else "not a regular file"


def recording_problem(path: Path) -> str | None:
    """Why ``path`` is not a pytest-ft recording; None when it is one."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return LINK if exc.errno == errno.ELOOP else f"cannot be read ({exc.strerror})"
    try:
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return "not a regular file"
            if info.st_size > MAX_RECORDING_BYTES:
                return TOO_LARGE
            content = handle.read(MAX_RECORDING_BYTES + 1)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if len(content) > MAX_RECORDING_BYTES:  # it grew since
        return TOO_LARGE
    try:
        data = readable_yaml.deserialize(content.decode("utf-8"))  # vcrpy's safe loader
    except (ValueError, yaml.YAMLError, RecursionError):
        return NOT_A_RECORDING
    return None if is_cassette(data) else NOT_A_RECORDING


def is_cassette(data: Any) -> bool:
    """vcrpy's cassette format as pytest-ft writes it: version 1 and a list of interactions."""
    if not isinstance(data, dict) or set(data) - {"version", "interactions", "metadata"}:
        return False
    interactions = data.get("interactions")
    return data.get("version") == 1 and isinstance(interactions, list) and all(
        isinstance(i, dict) and isinstance(i.get("request"), dict) and isinstance(i.get("response"), dict)
        and {"method", "uri"} <= set(i["request"]) and "status" in i["response"] for i in interactions)


def prune(stale: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Remove the stale recordings, then the folders that this leaves empty.

    Returns what was removed and, for each path that could not be, why.
    """
    removed: list[Path] = []
    errors: list[tuple[Path, str]] = []
    for path in stale:
        try:
            if path.parent.is_symlink() or not stat.S_ISREG(path.lstat().st_mode):
                errors.append((path, "no longer a plain file, left alone"))
                continue
            path.unlink()
        except OSError as exc:
            errors.append((path, exc.strerror or str(exc)))
        else:
            removed.append(path)
    for folder in sorted({path.parent for path in removed}):
        try:
            folder.rmdir()  # fails on a folder that holds anything, and on a link
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                errors.append((folder, exc.strerror or str(exc)))
    return removed, errors
