"""The OpenAI-compatible HTTP API of ``pytest-ft serve``, one router per area.

* :mod:`.models`  ``GET /v1/models``, ``GET|DELETE /v1/models/{id}``;
* :mod:`.chat`    ``POST /v1/chat/completions``: the tokenizer's chat template; greedy when
  ``temperature`` is 0; ``max_tokens`` / ``max_completion_tokens``, ``stop``, ``top_p``, ``seed``,
  ``n``, ``stream``; ``usage`` counted by the model's own tokenizer; function calling (``tools``,
  ``tool_choice``, ``parallel_tool_calls``, ``tool`` messages; see :mod:`pytest_ft.local.tools`);
* :mod:`.files`   ``POST|GET /v1/files``, ``GET|DELETE /v1/files/{id}``, ``GET /v1/files/{id}/content``:
  uploads (``purpose=fine-tune``) are checked with :func:`pytest_ft.data.validate`, and an
  invalid file is refused with the API's error JSON;
* :mod:`.jobs`    ``POST|GET /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}``, ``.../events``,
  ``.../checkpoints``, ``POST .../cancel``: LoRA fine-tuning (see :mod:`pytest_ft.local.training`).

Request parameters are pydantic models (:mod:`.params`). A route reaches its server's model,
engine, jobs and storage through the :data:`Server` dependency.
"""

from typing import Annotated

from fastapi import Depends, Request

from ..server import LocalServer


async def _server(request: Request) -> LocalServer:
    return request.app.state.server


Server = Annotated[LocalServer, Depends(_server)]
