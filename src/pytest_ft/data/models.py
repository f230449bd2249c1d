"""What the dataset checks need to know about the model being fine-tuned: its context and epochs."""

from __future__ import annotations

from . import tokens

DEFAULT_MODEL = "gpt-4o-mini"

# Default epochs, as OpenAI's cookbook notebook "Chat_finetuning_data_prep" estimates them.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

# Tokens per training example, beyond which OpenAI truncates the example. OpenAI's fine-tuning
# guide ("Token limits": gpt-4o / gpt-4o-mini 65,536; gpt-3.5-turbo-0125 and -1106 16,385;
# gpt-3.5-turbo-0613 4,096) and Azure OpenAI's fine-tuning model table (gpt-4.1 and
# gpt-4.1-mini 65,536, gpt-4.1-nano 32,768); gpt-4-0613 is an 8,192-token model.
# Matched like tokenizer families: exact id, or the id followed by "-" and a snapshot suffix.
TRAINING_TOKEN_LIMITS: list[tuple[str, int]] = [
    ("gpt-3.5-turbo-0613", 4_096),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-35-turbo", 16_385),
    ("gpt-4o-mini", 65_536),
    ("gpt-4o", 65_536),
    ("gpt-4.1-nano", 32_768),
    ("gpt-4.1-mini", 65_536),
    ("gpt-4.1", 65_536),
    ("gpt-4", 8_192),
]


def _family_match(name: str, family: str) -> bool:
    return name == family or name.startswith(family + "-")


def training_token_limit(model: str) -> int | None:
    """Tokens per training example for ``model`` (aliases and ``ft:`` ids resolved); None if unknown."""
    from ..report.pricing import ALIASES

    name = tokens.base_model(model.strip())
    name = ALIASES.get(name, name)
    for family, limit in TRAINING_TOKEN_LIMITS:
        if _family_match(name, family):
            return limit
    return None


def default_epochs(n_examples: int) -> int | None:
    """The epochs OpenAI picks by default for ``n_examples`` (cookbook method); None for no examples."""
    if n_examples <= 0:
        return None
    epochs = TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return epochs
