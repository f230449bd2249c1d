"""Following a job to its end: polling it, its new events once each, and a status line for people.

Training takes minutes to hours and the API only answers polls, so following means reading
the job and the events that appeared since the last poll. Interrupting it (Ctrl-C) stops
the following, never the job.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import openai

from .. import redact
from .api import Api
from .errors import JobError
from .job_info import JobInfo, as_int
from .remote import chronological, job_path, read_job

DEFAULT_POLL_INTERVAL = 10.0
MAX_POLL_FAILURES = 8
MAX_EVENT_PAGES = 20


@dataclass
class Progress:
    """What the events say about training so far: step, total steps and the last training loss."""

    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None

    _STEP = re.compile(r"\bstep\s+(\d+)\s*(?:/\s*(\d+))?", re.IGNORECASE)
    _LOSS = re.compile(r"\b(?:training|train)[ _]loss\s*[=:]\s*([-+0-9.eE]+|nan)", re.IGNORECASE)

    def update(self, event: Mapping[str, Any]) -> None:
        """Learn from one event: its ``data`` when the API gives it, else its message's words."""
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        message = str(event.get("message") or "")
        step = as_int(data.get("step"))
        total = as_int(data.get("total_steps"))
        loss = data.get("train_loss")
        match = self._STEP.search(message)
        if match:
            step = step if step is not None else int(match.group(1))
            total = total if total is not None else (int(match.group(2)) if match.group(2) else None)
        loss_match = self._LOSS.search(message)
        if loss is None and loss_match:
            loss = loss_match.group(1)
        if step is not None:
            self.step = step
        if total is not None:
            self.total_steps = total
        try:
            if loss is not None:
                self.loss = float(loss)
        except (TypeError, ValueError):
            pass


def _new_events(api: Api, job_id: str, seen: set[str]) -> list[dict]:
    """Events not seen yet, oldest first: pages back from the newest until a page holds a seen one."""
    collected: list[dict] = []
    after = None
    for _ in range(MAX_EVENT_PAGES):
        params: dict[str, Any] = {"limit": 100}
        if after:
            params["after"] = after
        page = api.get(job_path(job_id, "events"), params, what=f"reading the events of job {job_id}")
        data = [d for d in page.get("data") or [] if isinstance(d, dict)]
        hit_seen = False
        for event in data:
            if _event_key(event) in seen:
                hit_seen = True
                continue
            collected.append(event)
        if hit_seen or not page.get("has_more") or not data or not data[-1].get("id"):
            break
        after = data[-1]["id"]
    fresh = []
    for event in chronological(collected):
        key = _event_key(event)
        if key not in seen:
            seen.add(key)
            fresh.append(event)
    return fresh


def _event_key(event: Mapping[str, Any]) -> str:
    return str(event.get("id") or json.dumps(event, sort_keys=True))


def wait_for_job(client: openai.OpenAI, job_id: str, *, poll_interval: float = DEFAULT_POLL_INTERVAL,
                 on_event: Callable[[dict], None] | None = None,
                 on_poll: Callable[[JobInfo, Progress], None] | None = None,
                 timeout: float | None = None, seen_events: set[str] | None = None) -> JobInfo:
    """Follow job ``job_id`` until it is terminal (succeeded, failed, cancelled...) and return it.

    Every ``poll_interval`` seconds it reads the job and, when a callback wants them, its new
    events: ``on_event(event)`` gets each event once, oldest first (the API's JSON object:
    ``message``, ``level``, ``created_at``, ``data``...); ``on_poll(job, progress)`` gets the job and
    the :class:`Progress` (step, total steps, loss) after each poll. A failed job is *returned*
    (its ``error`` says why), not raised. Transient failures while polling (network, 5xx) are
    retried up to a few times; 429 is retried honouring Retry-After. ``timeout`` (seconds) raises
    :class:`JobError` when exceeded, leaving the job running. KeyboardInterrupt (from a callback
    or Ctrl-C) propagates: the job keeps running.
    """
    api = Api(client)
    seen = seen_events if seen_events is not None else set()
    progress = Progress()
    started = time.monotonic()
    failures = 0
    while True:
        try:
            job = read_job(api, job_id)
            events = _new_events(api, job_id, seen) if (on_event or on_poll) else []
        except JobError as exc:
            failures += 1
            if not exc.transient or failures > MAX_POLL_FAILURES:
                raise
            api.sleep(poll_interval)
            continue
        failures = 0
        for event in events:
            progress.update(event)
            if on_event:
                on_event(event)
        if on_poll:
            on_poll(job, progress)
        if job.terminal:
            return job
        if timeout is not None and time.monotonic() - started > timeout:
            raise JobError(f"job {job_id} is still {job.status} after {timeout:g} s; it keeps running. "
                           f"Follow it with: pytest-ft jobs wait {job_id}", job=job)
        api.sleep(poll_interval)


def event_line(event: Mapping[str, Any]) -> str:
    """``12:03:04 message``, with the level before the message unless it is ``info``."""
    level = str(event.get("level") or "info").lower()
    prefix = "" if level == "info" else f"{level.upper()}: "
    stamp = time.strftime("%H:%M:%S", time.localtime(as_int(event.get("created_at")) or time.time()))
    return f"{stamp} {prefix}{redact.scrub(str(event.get('message') or ''))}"


def status_line(job: JobInfo, progress: Progress, started: float) -> str:
    """``running | 1,234 trained tokens | step 3/10 | loss 0.5 | elapsed 2m05s``."""
    parts = [job.status]
    if job.trained_tokens:
        parts.append(f"{job.trained_tokens:,} trained tokens")
    if progress.step is not None:
        parts.append(f"step {progress.step}" + (f"/{progress.total_steps}" if progress.total_steps else ""))
    if progress.loss is not None:
        parts.append(f"loss {progress.loss:.4g}")
    # A server clock ahead of ours would give a negative time: count from when we started then.
    since = job.created_at if job.created_at and job.created_at <= time.time() else started
    parts.append(f"elapsed {_elapsed(time.time() - since)}")
    return " | ".join(parts)


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Follower:
    """Prints a job's events once each and, on a terminal, one live status line redrawn in place
    (elsewhere, a status line each time the status changes, so logs stay short)."""

    def __init__(self, *, live: bool, stream=None):
        self.live = live
        self.stream = stream or sys.stdout
        self.started = time.time()
        self.status: str | None = None
        self.line = ""

    def _clear(self) -> None:
        if self.live and self.line:
            self.stream.write("\r\x1b[K")

    def on_event(self, event: dict) -> None:
        self._clear()
        self.stream.write(event_line(event) + "\n")
        if self.live and self.line:
            self.stream.write(self.line)
        self.stream.flush()

    def on_poll(self, job: JobInfo, progress: Progress) -> None:
        line = status_line(job, progress, self.started)
        if self.live:
            self._clear()
            self.line = line
            self.stream.write(line)
        elif job.status != self.status:
            self.stream.write(f"status: {line}\n")
        self.status = job.status
        self.stream.flush()

    def close(self) -> None:
        if self.live and self.line:
            self.stream.write("\n")
            self.stream.flush()
            self.line = ""
