"""``/v1/fine_tuning/jobs``: LoRA fine-tuning jobs, run by :class:`~pytest_ft.local.training.JobManager`."""

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from . import Server
from .params import Page, json_body, page_size, parse

router = APIRouter()


class EventsPage(Page):
    limit: page_size(1000) = 20


class CheckpointsPage(Page):
    limit: page_size(100) = 10


@router.post("/v1/fine_tuning/jobs")
async def create_job(request: Request, server: Server):
    body = await json_body(request)
    return await run_in_threadpool(server.jobs.create, body)


@router.get("/v1/fine_tuning/jobs")
async def list_jobs(request: Request, server: Server):
    page = parse(Page, request.query_params)
    metadata = {k[len("metadata["):-1]: v for k, v in request.query_params.items()
                if k.startswith("metadata[") and k.endswith("]")}
    return server.jobs.list(page.after, page.limit, metadata)


@router.get("/v1/fine_tuning/jobs/{job_id}")
async def get_job(job_id: str, server: Server):
    return server.jobs.get(job_id)


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, server: Server):
    page = parse(EventsPage, request.query_params)
    return server.jobs.events(job_id, page.after, page.limit)


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
async def job_checkpoints(job_id: str, request: Request, server: Server):
    page = parse(CheckpointsPage, request.query_params)
    return server.jobs.checkpoints(job_id, page.after, page.limit)


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, server: Server):
    return server.jobs.cancel(job_id)
