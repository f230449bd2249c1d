"""Token prices, per 1M tokens, for the models people fine-tune and their tuned variants.

A fine-tuned model (``ft:<base>:<org>:<suffix>:<id>``) is billed at its base's
*fine-tuned* rates, which differ from the base's own rates, so the table keeps both.
Every figure carries where it came from and when; a price file (YAML or JSON, keyed by
model id, each entry ``{input, output, cached_input?, training?, source?, as_of?}``)
overrides or extends the table. The key ``ft:<base>`` sets the fine-tuned rates (and the
training rate) of every model tuned from ``<base>``; an exact ``ft:...`` id wins over it.

A model with no known price costs ``None`` (shown as ``n/a``), never 0: a silent zero
would make an expensive model look free in the cost table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

OPENAI_PRICING = "https://platform.openai.com/docs/pricing"


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. ``cached_input`` defaults to ``input`` when a provider has no cache discount."""

    input: float
    output: float
    cached_input: float | None = None
    training: float | None = None
    source: str = ""
    as_of: str = ""

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, *, batch: bool = False) -> float:
        cached = min(cached_tokens, prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        usd = ((prompt_tokens - cached) * self.input + cached * cached_rate + completion_tokens * self.output) / 1e6
        return usd / 2 if batch else usd


def _p(input, cached, output, training=None, as_of="2025-08-01"):
    return Price(input=input, cached_input=cached, output=output, training=training, source=OPENAI_PRICING, as_of=as_of)


# Base models: standard (non-batch) rates.
BASE_PRICES: dict[str, Price] = {
    "gpt-4o-mini-2024-07-18": _p(0.15, 0.075, 0.60),
    "gpt-4o-2024-08-06": _p(2.50, 1.25, 10.00),
    "gpt-4.1-2025-04-14": _p(2.00, 0.50, 8.00),
    "gpt-4.1-mini-2025-04-14": _p(0.40, 0.10, 1.60),
    "gpt-4.1-nano-2025-04-14": _p(0.10, 0.025, 0.40),
    "gpt-3.5-turbo-0125": _p(0.50, None, 1.50),
    "gpt-4-0613": _p(30.00, None, 60.00),
}

# Fine-tuned variants of each base: inference rates, plus the training rate per 1M trained tokens.
FINE_TUNED_PRICES: dict[str, Price] = {
    "gpt-4o-mini-2024-07-18": _p(0.30, 0.15, 1.20, training=3.00),
    "gpt-4o-2024-08-06": _p(3.75, 1.875, 15.00, training=25.00),
    "gpt-4.1-2025-04-14": _p(3.00, 0.75, 12.00, training=25.00),
    "gpt-4.1-mini-2025-04-14": _p(0.80, 0.20, 3.20, training=5.00),
    "gpt-4.1-nano-2025-04-14": _p(0.20, 0.05, 0.80, training=1.50),
    "gpt-3.5-turbo-0125": _p(3.00, None, 6.00, training=8.00),
}

# Aliases users type, resolved to the dated snapshot they point at.
ALIASES = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
    "gpt-4": "gpt-4-0613",
}

_FT_ID = re.compile(r"^ft:(?P<base>[^:]+)(?::|$)")


class PriceFileError(ValueError):
    pass


def fine_tuned_base(model: str) -> str | None:
    """The base model of an ``ft:`` id (``ft:gpt-4o-mini-2024-07-18:acme:x:abc`` → ``gpt-4o-mini-2024-07-18``)."""
    match = _FT_ID.match(model)
    return match.group("base") if match else None


class PriceTable:
    """Looks up a model's price: exact id in the overrides, then the built-in table."""

    def __init__(self, overrides: Mapping[str, Price] | None = None):
        self.overrides = dict(overrides or {})

    @classmethod
    def from_file(cls, path: str | Path | None) -> "PriceTable":
        return cls(load_price_file(path) if path else None)

    def lookup(self, model: str) -> Price | None:
        if model in self.overrides:
            return self.overrides[model]
        base = fine_tuned_base(model)
        if base is not None:
            base = ALIASES.get(base, base)
            return self.overrides.get(f"ft:{base}") or FINE_TUNED_PRICES.get(base)
        return BASE_PRICES.get(ALIASES.get(model, model))

    def training_price(self, base_model: str) -> float | None:
        """USD per 1M trained tokens for fine-tuning ``base_model``."""
        base = fine_tuned_base(base_model) or base_model
        base = ALIASES.get(base, base)
        price = self.overrides.get(f"ft:{base}") or FINE_TUNED_PRICES.get(base)
        return price.training if price else None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
             *, batch: bool = False) -> float | None:
        price = self.lookup(model)
        if price is None:
            return None
        return price.cost(prompt_tokens, completion_tokens, cached_tokens, batch=batch)


def load_price_file(path: str | Path) -> dict[str, Price]:
    """Read ``{model: {input, output, cached_input?, training?, source?, as_of?}}`` from YAML or JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise PriceFileError(f"{path}: cannot read price file: {exc}") from exc
    if not isinstance(data, dict):
        raise PriceFileError(f"{path}: expected a mapping of model id to prices")
    prices = {}
    for model, entry in data.items():
        if not isinstance(entry, dict):
            raise PriceFileError(f"{path}: {model}: expected a mapping with 'input' and 'output'")
        unknown = set(entry) - {"input", "output", "cached_input", "training", "source", "as_of"}
        if unknown:
            raise PriceFileError(f"{path}: {model}: unknown key {sorted(unknown)[0]!r}")
        try:
            prices[str(model)] = Price(
                input=float(entry["input"]), output=float(entry["output"]),
                cached_input=None if entry.get("cached_input") is None else float(entry["cached_input"]),
                training=None if entry.get("training") is None else float(entry["training"]),
                source=str(entry.get("source", str(path))), as_of=str(entry.get("as_of", "")),
            )
        except KeyError as exc:
            raise PriceFileError(f"{path}: {model}: missing key {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise PriceFileError(f"{path}: {model}: prices must be numbers ({exc})") from exc
    return prices


def describe(price: Price) -> dict[str, Any]:
    return {"input": price.input, "cached_input": price.cached_input, "output": price.output,
            "training": price.training, "source": price.source, "as_of": price.as_of}
