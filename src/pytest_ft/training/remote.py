"""The jobs an endpoint knows: read one, list them, read their events and checkpoints, cancel one."""

from __future__ import annotations

from typing import Any, Mapping

import openai

from .api import Api, Explain, error_fields
from .errors import JobError
from .job_info import JobInfo, as_int

MAX_LIST_PAGES = 5


def job_path(job_id: str, *rest: str) -> str:
    """``/fine_tuning/jobs/ID/...``; an id that would change the path is refused."""
    if not job_id or "/" in job_id or "?" in job_id:
        raise JobError(f"not a fine-tuning job id: {job_id!r}")
    return "/".join(("/fine_tuning/jobs", job_id, *rest))


def not_found(api: Api, job_id: str) -> Explain:
    """Explains a 404 about ``job_id``: which endpoint lacks it, and how to list the jobs it has."""
    def explain(exc: openai.APIStatusError) -> str | None:
        if exc.status_code == 404:
            return (f"no fine-tuning job {job_id!r} on {api.base_url} (HTTP 404). "
                    f"List your jobs with: pytest-ft jobs list")
        return None
    return explain


def read_job(api: Api, job_id: str, *, reused: bool = False) -> JobInfo:
    return JobInfo.from_json(api.get(job_path(job_id), what=f"reading job {job_id}", explain=not_found(api, job_id)),
                             reused=reused)


def get_job(client: openai.OpenAI, job_id: str) -> JobInfo:
    """The job ``job_id`` (raises :class:`JobError` naming the endpoint when it does not exist)."""
    return read_job(Api(client), job_id)


def list_jobs(client: openai.OpenAI, *, limit: int = 20, metadata: Mapping[str, str] | None = None) -> list[JobInfo]:
    """The newest ``limit`` jobs (optionally only those whose metadata has these values)."""
    return [JobInfo.from_json(d) for d in list_raw(Api(client), limit=limit, metadata=metadata)]


def list_raw(api: Api, *, limit: int, metadata: Mapping[str, str] | None = None,
             max_pages: int = MAX_LIST_PAGES) -> list[dict]:
    """The newest ``limit`` jobs as the API's JSON objects, newest first."""
    out: list[dict] = []
    after = None
    filters = {f"metadata[{k}]": v for k, v in (metadata or {}).items()}
    for _ in range(max_pages):
        params: dict[str, Any] = {"limit": min(100, max(1, limit - len(out))), **filters}
        if after:
            params["after"] = after
        page = api.get("/fine_tuning/jobs", params, what="listing fine-tuning jobs")
        data = [d for d in page.get("data") or [] if isinstance(d, dict)]
        if metadata:  # a server may ignore the filter: match here too
            data = [d for d in data if all((d.get("metadata") or {}).get(k) == v for k, v in metadata.items())]
        out.extend(data)
        raw_page = page.get("data") or []
        if len(out) >= limit or not page.get("has_more") or not raw_page:
            break
        after = raw_page[-1].get("id") if isinstance(raw_page[-1], dict) else None
        if not after:
            break
    return out[:limit]


def list_events(client: openai.OpenAI, job_id: str, *, limit: int = 100) -> list[dict]:
    """The job's latest ``limit`` events, oldest first, as the API's JSON objects."""
    api = Api(client)
    events: list[dict] = []
    after = None
    while len(events) < limit:
        params: dict[str, Any] = {"limit": min(100, limit - len(events))}
        if after:
            params["after"] = after
        page = api.get(job_path(job_id, "events"), params, what=f"reading the events of job {job_id}",
                       explain=not_found(api, job_id))
        data = [d for d in page.get("data") or [] if isinstance(d, dict)]
        events.extend(data)
        if not page.get("has_more") or not data or not data[-1].get("id"):
            break
        after = data[-1]["id"]
    return chronological(events[:limit])


def chronological(events: list[dict]) -> list[dict]:
    """OpenAI lists events newest first; a backend listing them oldest first is left as it is."""
    if len(events) >= 2:
        first, last = as_int(events[0].get("created_at")), as_int(events[-1].get("created_at"))
        if first is not None and last is not None and first < last:
            return list(events)
    return list(reversed(events))


def list_checkpoints(client: openai.OpenAI, job_id: str, *, limit: int = 10) -> list[dict]:
    """The job's checkpoints (newest first), as the API's JSON objects; [] when the API has none."""
    try:
        page = Api(client).get(job_path(job_id, "checkpoints"), {"limit": limit},
                               what=f"reading checkpoints of {job_id}")
    except JobError:
        return []
    return [d for d in page.get("data") or [] if isinstance(d, dict)]


def cancel_job(client: openai.OpenAI, job_id: str) -> JobInfo:
    """Cancel a job; a job that already ended is a :class:`JobError` saying so."""
    api = Api(client)

    def explain(exc: openai.APIStatusError) -> str | None:
        if exc.status_code == 404:
            return not_found(api, job_id)(exc)
        if exc.status_code in (400, 409):
            return f"cannot cancel job {job_id}: {error_fields(exc)[0]}"
        return None

    return JobInfo.from_json(api.post(job_path(job_id, "cancel"), what=f"cancelling job {job_id}", explain=explain))
