"""A local backend: fine-tune and serve open models behind the OpenAI API (``pytest-ft serve``).

Install with ``pip install 'pytest-ft[local]'``. The modules:

* :mod:`pytest_ft.local.models`   load a Hugging Face causal LM (id or path) or a GGUF file, chat
  prompts, token counts, and the batching inference engine;
* :mod:`pytest_ft.local.tools`    function calling: tools and tool calls written into the prompt
  (Hermes ``<tool_call>`` format) and parsed out of the answer;
* :mod:`pytest_ft.local.training` LoRA fine-tuning jobs (transformers + peft), one at a time, on a
  background thread;
* :mod:`pytest_ft.local.storage`  uploaded files, jobs, events and adapters on disk;
* :mod:`pytest_ft.local.server`   :class:`~pytest_ft.local.server.LocalServer`: a model, its engine,
  jobs and storage behind uvicorn; the bind check;
* :mod:`pytest_ft.local.app`      the FastAPI app: the routers of :mod:`pytest_ft.local.api` (one per
  API area, pydantic request parameters), the error answers, and the
  :mod:`~pytest_ft.local.guard` in front (API key, body size limits).

The ``serve`` command is :mod:`pytest_ft.cli.serve`. Importing this package (or
:mod:`~pytest_ft.local.server`) imports none of the heavy dependencies: torch, transformers,
peft, fastapi and uvicorn are imported when first needed.
"""
