"""Arguments several subcommands take, declared once."""

from __future__ import annotations

import argparse


def add_endpoint(p: argparse.ArgumentParser) -> None:
    """``--base-url`` and ``--api-key-env``: the OpenAI-compatible API a command talks to, and its key's variable."""
    p.add_argument("--base-url", help="the OpenAI-compatible API (default $OPENAI_BASE_URL, else OpenAI's); "
                                      "Azure OpenAI: https://RESOURCE.openai.azure.com/openai/v1")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="NAME",
                   help="environment variable holding the API key (default OPENAI_API_KEY)")
