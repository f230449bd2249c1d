"""The errors of the fine-tuning workflow: each says what happened and what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job_info import JobInfo


class JobError(Exception):
    """An error a user can act on; its message explains what happened and what to do.

    ``exit_code`` is what the CLI returns (1 for a job that failed or was cancelled, 2 otherwise).
    """

    def __init__(self, message: str, *, exit_code: int = 2, job: JobInfo | None = None, transient: bool = False,
                 status: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.job = job
        self.transient = transient  # the endpoint was unreachable, overloaded or rate limiting: may pass
        self.status = status        # the HTTP status behind it, if any


class LaunchNotAllowed(JobError):
    """No existing job matches, and :func:`~pytest_ft.training.jobs.ensure_job` was told not to
    launch one (a paid action)."""

    def __init__(self, message: str, *, content_hash: str):
        super().__init__(message)
        self.content_hash = content_hash
