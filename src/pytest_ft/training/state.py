"""``.pytest-ft/jobs.json``: the jobs launched and the files uploaded from this directory.

It is what makes launching idempotent without asking the API first, and what lets a
replay-only run know a tuned model with no network at all. It holds ids, hashes and paths,
never a key. A job is paid for, so its record must survive a crash: every write is atomic and
flushed to disk, and every change happens under an exclusive lock, so concurrent processes
(pytest-xdist workers) neither lose entries nor launch a job twice.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..files import write_atomic
from .errors import JobError

if TYPE_CHECKING:
    from .job_info import JobInfo

DEFAULT_STATE_DIR = Path(".pytest-ft")
STATE_FILE = "jobs.json"


class State:
    """The state file in ``directory``; its entries are keyed by endpoint as well as by hash or id."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.path = self.dir / STATE_FILE

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"cannot create {self.dir}: {exc.strerror or exc}") from None
        with open(self.dir / "jobs.lock", "a") as fh:
            try:
                import fcntl
                fcntl.flock(fh, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - Windows: atomic writes only
                pass
            yield

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 1, "jobs": [], "files": []}
        except (OSError, ValueError) as exc:
            raise JobError(f"cannot read the job state file {self.path}: {exc}. Fix it or delete it "
                           f"(jobs are then found again through their metadata).") from None
        if not isinstance(data, dict):
            raise JobError(f"the job state file {self.path} is not a JSON object; fix it or delete it")
        data.setdefault("version", 1)
        data.setdefault("jobs", [])
        data.setdefault("files", [])
        return data

    def save(self, data: Mapping[str, Any]) -> None:
        write_atomic(self.path, json.dumps(data, indent=2) + "\n", durable=True)

    def find_job(self, content_hash: str, base_url: str) -> dict | None:
        for entry in reversed(self.load()["jobs"]):
            if entry.get("hash") == content_hash and entry.get("base_url") == base_url:
                return entry
        return None

    def entry_for(self, job_id: str) -> dict | None:
        """The job's entry, or None (also when the file is unreadable: it only adds local detail)."""
        try:
            jobs = self.load()["jobs"]
        except JobError:
            return None
        return next((e for e in reversed(jobs) if e.get("job_id") == job_id), None)

    def put_job(self, entry: dict) -> None:
        data = self.load()
        data["jobs"] = [e for e in data["jobs"] if e.get("job_id") != entry["job_id"]] + [entry]
        self.save(data)

    def update_job(self, job: JobInfo) -> None:
        """Keep a job's end (status, model, trained tokens) in its entry, if it has one."""
        if not self.path.exists():
            return
        with self.locked():
            data = self.load()
            for entry in data["jobs"]:
                if entry.get("job_id") == job.id:
                    entry.update(status=job.status, fine_tuned_model=job.fine_tuned_model,
                                 trained_tokens=job.trained_tokens)
                    self.save(data)
                    return

    def forget_job(self, job_id: str) -> None:
        data = self.load()
        data["jobs"] = [e for e in data["jobs"] if e.get("job_id") != job_id]
        self.save(data)

    def find_file(self, sha256: str, base_url: str) -> str | None:
        for entry in reversed(self.load()["files"]):
            if entry.get("sha256") == sha256 and entry.get("base_url") == base_url:
                return entry.get("file_id")
        return None

    def put_file(self, sha256: str, base_url: str, file_id: str, filename: str) -> None:
        data = self.load()
        data["files"] = [e for e in data["files"] if not (e.get("sha256") == sha256 and e.get("base_url") == base_url)]
        data["files"].append({"sha256": sha256, "base_url": base_url, "file_id": file_id, "filename": filename})
        self.save(data)

    def forget_file(self, file_id: str) -> None:
        data = self.load()
        data["files"] = [e for e in data["files"] if e.get("file_id") != file_id]
        self.save(data)


def known_job(content_hash: str, state_dir: str | os.PathLike = DEFAULT_STATE_DIR) -> dict | None:
    """The newest state-file entry for ``content_hash`` on any endpoint, without reaching the API."""
    try:
        jobs = State(state_dir).load()["jobs"]
    except JobError:
        return None
    return next((e for e in reversed(jobs) if e.get("hash") == content_hash), None)


def record_job(job: JobInfo, state_dir: str | os.PathLike = DEFAULT_STATE_DIR) -> None:
    """Keep a followed job's end (status, model, trained tokens) in the state file."""
    State(state_dir).update_job(job)
