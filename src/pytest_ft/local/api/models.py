"""``/v1/models``: the base model, and the fine-tuned models served beside it."""

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ..errors import bad_request, not_found
from ..server import LocalServer
from . import Server

router = APIRouter()


def _all_models(server: LocalServer) -> list[dict[str, Any]]:
    models = [(server.lm.name, server.started, "pytest-ft")]
    models += [(model_id, created, "local") for model_id, created in server.jobs.model_ids()]
    return [{"id": model_id, "object": "model", "created": created, "owned_by": owned_by}
            for model_id, created, owned_by in models]


@router.get("/v1/models")
async def list_models(server: Server):
    return {"object": "list", "data": _all_models(server)}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, server: Server):
    for m in _all_models(server):
        if m["id"] == model_id or (model_id in server.jobs.aliases and m["id"] == server.lm.name):
            return m
    raise not_found(f"The model '{model_id}' does not exist", param="model", code="model_not_found")


@router.delete("/v1/models/{model_id:path}")
async def delete_model(model_id: str, server: Server):
    if model_id in server.jobs.aliases:
        raise bad_request("The base model cannot be deleted.", param="model")
    return await run_in_threadpool(server.jobs.delete_model, model_id)
