"""``/v1/files``: training files, checked as fine-tuning data before they are kept."""

import time
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ... import data
from .. import storage as st
from ..errors import bad_request, not_found
from ..guard import TooLarge
from ..server import LocalServer
from . import Server
from .params import Page, page_size, parse

router = APIRouter()


class FilesPage(Page):
    purpose: str | None = None
    order: str | None = None
    limit: page_size(10000) = 10000


def _file_or_404(server: LocalServer, file_id: str) -> dict[str, Any]:
    meta = server.storage.get_file(file_id)
    if meta is None:
        raise not_found(f"No such File object: {file_id}", param="id")
    return meta


def _store(server: LocalServer, upload: BinaryIO, filename: str) -> dict[str, Any]:
    """Keep ``upload`` if it is valid fine-tuning data; a 400 naming its first errors if not."""
    tmp = server.storage.new_upload_path()
    try:
        size = 0
        with open(tmp, "wb") as out:
            while block := upload.read(1 << 20):
                size += len(block)
                if size > server.upload_limit:
                    raise TooLarge(server.upload_limit)
                out.write(block)
        report = data.validate(tmp, progress=False, max_details=5)
        if not report.ok:
            problems = [p for p in report.problems if p.severity == "error"][:3]
            details = "; ".join(f"line {p.line}: {p.message} ({p.kind})" if p.line else f"{p.message} ({p.kind})"
                                for p in problems)
            raise bad_request(f"Invalid file format for fine-tuning: {report.invalid_examples or 0} of "
                              f"{report.examples} examples have errors. {details}", param="file",
                              code="invalid_file_format")
        meta = {"id": st.new_id("file"), "object": "file", "bytes": size, "created_at": int(time.time()),
                "filename": filename, "purpose": "fine-tune", "status": "processed", "status_details": None,
                "expires_at": None}
        server.storage.add_file(tmp, meta)
        tmp = None
        return meta
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


@router.post("/v1/files")
async def upload_file(request: Request, server: Server):
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("Uploads must be multipart/form-data with the fields 'file' and 'purpose'.")
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=64 * 1024)
    except TooLarge:
        raise
    except Exception as exc:  # malformed multipart, too many parts
        raise bad_request(f"Could not parse the upload: {exc}") from None
    try:
        purpose = form.get("purpose")
        upload = form.get("file")
        if purpose != "fine-tune":
            raise bad_request(f"Invalid purpose {purpose!r}: this server stores files for 'fine-tune' only.",
                              param="purpose")
        if not isinstance(upload, UploadFile):
            raise bad_request("Missing required parameter: 'file'.", param="file")
        return await run_in_threadpool(_store, server, upload.file, st.clean_filename(upload.filename))
    finally:
        await form.close()


@router.get("/v1/files")
async def list_files(request: Request, server: Server):
    page = parse(FilesPage, request.query_params)
    files = [f for f in server.storage.list_files() if page.purpose is None or f.get("purpose") == page.purpose]
    if page.order == "asc":
        files.reverse()
    return st.list_page(files, page.after, page.limit)


@router.get("/v1/files/{file_id}")
async def get_file(file_id: str, server: Server):
    return _file_or_404(server, file_id)


@router.get("/v1/files/{file_id}/content")
async def file_content(file_id: str, server: Server):
    _file_or_404(server, file_id)
    content = await run_in_threadpool(server.storage.file_data_path(file_id).read_bytes)
    return Response(content, media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, server: Server):
    _file_or_404(server, file_id)
    server.storage.delete_file(file_id)
    return {"id": file_id, "object": "file", "deleted": True}
