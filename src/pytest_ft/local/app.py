"""The ASGI app of a :class:`~pytest_ft.local.server.LocalServer`: the API's routers, every error
answered in the OpenAI API's shape, and the :class:`~pytest_ft.local.guard.Guard` in front."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from .api import Server, chat, files, jobs, models
from .errors import ApiError, bad_request
from .guard import Guard
from .server import LocalServer


def create_app(server: LocalServer) -> Guard:
    """The app serving ``server``'s model, engine, jobs and storage."""
    app = FastAPI(title="pytest-ft local server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_api_route("/health", health, methods=["GET"])
    for area in (models, chat, files, jobs):
        app.include_router(area.router)
    app.add_api_route("/", root, methods=["GET"])
    return Guard(app, api_key=server.api_key, upload_limit=server.upload_limit)


async def health(server: Server):
    return {"status": "ok", "model": server.lm.name}


async def root(server: Server):
    return PlainTextResponse(f"pytest-ft local server: {server.lm.name}. The API is under /v1.\n")


def _error(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _error(exc)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = (f"Invalid URL ({request.method} {request.url.path})" if exc.status_code in (404, 405)
               else str(exc.detail))
    return _error(ApiError(exc.status_code, message))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # A backstop: the routes check their parameters with api.params, not FastAPI's typed parameters.
    return _error(bad_request(f"Invalid request: {exc.errors()}"))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    request.app.state.server.log(f"error on {request.method} {request.url.path}: {type(exc).__name__}: {exc}")
    return _error(ApiError(500, f"The server had an error while processing your request: {type(exc).__name__}",
                           type="server_error"))
