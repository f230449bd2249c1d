"""The local backend's data folder: uploaded files, jobs, their events, and adapters.

Layout under the data directory (``--data-dir``, default ``~/.local/share/pytest-ft/serve``)::

    files/<file-id>.jsonl        an upload's bytes        files/<file-id>.json   its File object
    jobs/<ftjob-id>.json         a job object             jobs/<ftjob-id>.events.jsonl   its events
    adapters/<ftjob-id>/         a finished job's adapter (PEFT format)
    adapters/.tmp/               adapters being written; renamed into place only on success

Nothing a request says becomes a path: ids are generated here and checked against strict
patterns (:func:`check_id`) before any use, the file name a client uploads is kept only as
metadata, and every path is checked to resolve inside the data directory. JSON documents are
written to a temporary file and renamed into place, so a crash never leaves half a document.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import string
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

ID_PATTERNS = {
    "file": re.compile(r"^file-[A-Za-z0-9]{24}$"),
    "ftjob": re.compile(r"^ftjob-[A-Za-z0-9]{24}$"),
    "ftevent": re.compile(r"^ftevent-[A-Za-z0-9]{24}$"),
    "ftckpt": re.compile(r"^ftckpt-[A-Za-z0-9]{24}$"),
}
_ALPHABET = string.ascii_letters + string.digits


class UnsafePath(ValueError):
    """An id that is not one of ours, or a path that would leave the data directory."""


def default_data_dir() -> Path:
    root = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(root) / "pytest-ft" / "serve"


def new_id(kind: str) -> str:
    """A fresh random id: ``file-``, ``ftjob-``, ``ftevent-`` or ``ftckpt-`` and 24 letters/digits."""
    if kind not in ID_PATTERNS:
        raise ValueError(kind)
    return f"{kind}-" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def is_id(kind: str, value: Any) -> bool:
    return isinstance(value, str) and bool(ID_PATTERNS[kind].fullmatch(value))


def check_id(kind: str, value: Any) -> str:
    if not is_id(kind, value):
        raise UnsafePath(f"invalid {kind} id: {value!r}")
    return value


def clean_filename(name: Any, default: str = "upload.jsonl") -> str:
    """A client's file name, for display only: its last component, printable, at most 255 chars."""
    if not isinstance(name, str):
        return default
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    if name in ("", ".", ".."):
        return default
    return name[:255]


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class Storage:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.files_dir = self.root / "files"
        self.jobs_dir = self.root / "jobs"
        self.adapters_dir = self.root / "adapters"
        self.tmp_dir = self.adapters_dir / ".tmp"
        for d in (self.root, self.files_dir, self.jobs_dir, self.adapters_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(self.root, 0o700)
        except OSError:
            pass
        self._lock = threading.RLock()
        self.cleanup_partial()

    # -- paths --------------------------------------------------------------------------------

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise UnsafePath(f"path outside the data directory: {path}")
        return resolved

    def file_data_path(self, file_id: str) -> Path:
        return self._inside(self.files_dir / f"{check_id('file', file_id)}.jsonl")

    def _file_meta_path(self, file_id: str) -> Path:
        return self._inside(self.files_dir / f"{check_id('file', file_id)}.json")

    def _job_path(self, job_id: str) -> Path:
        return self._inside(self.jobs_dir / f"{check_id('ftjob', job_id)}.json")

    def _events_path(self, job_id: str) -> Path:
        return self._inside(self.jobs_dir / f"{check_id('ftjob', job_id)}.events.jsonl")

    def adapter_path(self, job_id: str) -> Path:
        return self._inside(self.adapters_dir / check_id("ftjob", job_id))

    # -- files --------------------------------------------------------------------------------

    def new_upload_path(self) -> Path:
        """A temporary file in the data directory to stream an upload into."""
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=self.files_dir)
        os.close(fd)
        return Path(tmp)

    def add_file(self, tmp: Path, meta: dict[str, Any]) -> dict[str, Any]:
        """Move the upload ``tmp`` into place as ``meta['id']`` and record its File object."""
        with self._lock:
            os.replace(self._inside(tmp), self.file_data_path(meta["id"]))
            atomic_write(self._file_meta_path(meta["id"]), json.dumps(meta).encode())
        return meta

    def get_file(self, file_id: str) -> dict[str, Any] | None:
        if not is_id("file", file_id):
            return None
        try:
            return json.loads(self._file_meta_path(file_id).read_text())
        except (OSError, ValueError):
            return None

    def list_files(self) -> list[dict[str, Any]]:
        out = []
        for p in self.files_dir.glob("file-*.json"):
            f = self.get_file(p.stem)
            if f is not None:
                out.append(f)
        return sorted(out, key=lambda f: (f.get("created_at", 0), f["id"]), reverse=True)

    def delete_file(self, file_id: str) -> bool:
        with self._lock:
            if self.get_file(file_id) is None:
                return False
            for p in (self.file_data_path(file_id), self._file_meta_path(file_id)):
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
            return True

    # -- jobs and events ----------------------------------------------------------------------

    def save_job(self, job: dict[str, Any]) -> None:
        with self._lock:
            atomic_write(self._job_path(job["id"]), json.dumps(job).encode())

    def load_jobs(self) -> list[dict[str, Any]]:
        out = []
        for p in self.jobs_dir.glob("ftjob-*.json"):
            if not is_id("ftjob", p.stem):
                continue
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(out, key=lambda j: (j.get("created_at", 0), j["id"]))

    def append_event(self, job_id: str, event: dict[str, Any]) -> None:
        with self._lock:
            with open(self._events_path(job_id), "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's events, oldest first."""
        try:
            lines = self._events_path(job_id).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    # -- adapters -----------------------------------------------------------------------------

    def new_adapter_tmp(self, job_id: str) -> Path:
        """An empty temporary folder for ``job_id``'s adapter, never served."""
        check_id("ftjob", job_id)
        return Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=self.tmp_dir))

    def commit_adapter(self, tmp: Path, job_id: str) -> Path:
        """Rename a complete adapter folder into place (atomic on one file system)."""
        final = self.adapter_path(job_id)
        with self._lock:
            if final.exists():
                shutil.rmtree(final)
            os.replace(self._inside(tmp), final)
        return final

    def discard(self, path: Path | None) -> None:
        if path is not None:
            shutil.rmtree(self._inside(path), ignore_errors=True)

    def iter_adapters(self) -> Iterator[tuple[str, Path]]:
        for p in sorted(self.adapters_dir.iterdir()):
            if p.is_dir() and is_id("ftjob", p.name) and (p / "adapter_config.json").is_file():
                yield p.name, p

    def cleanup_partial(self) -> None:
        """Remove what an interrupted run left: adapters being written, uploads in progress."""
        for p in self.tmp_dir.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        for p in self.files_dir.glob(".upload-*"):
            p.unlink(missing_ok=True)
        for d in (self.files_dir, self.jobs_dir):
            for p in d.glob(".tmp-*"):
                p.unlink(missing_ok=True)


def list_page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """One page of an API list, OpenAI's cursor style: the items after the one with id ``after``."""
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    data = items[:limit]
    page: dict[str, Any] = {"object": "list", "data": data, "has_more": len(items) > limit}
    if data:
        page["first_id"] = data[0]["id"]
        page["last_id"] = data[-1]["id"]
    return page
