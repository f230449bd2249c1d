"""``pytest-ft data``: validate, inspect, convert, split, dedupe and leak-check fine-tuning datasets.

Every command is a plain function returning a report dataclass (``validate``, ``stats``,
``convert``, ``split``, ``dedupe``, ``check_leak``), and a CLI subcommand printing tables for
people or ``--json`` for machines (:mod:`pytest_ft.cli.data`). Files are read as a stream, one
line at a time: a dataset of a million lines is checked in bounded memory (a few compact
integers per example). No command ever writes over its input: outputs go to a temporary file
next to the target and are renamed into place only when complete, and an existing output is
replaced only with ``--force``.

Validation follows OpenAI's chat fine-tuning format and the checks of its cookbook notebook
"Chat_finetuning_data_prep", plus kinds of our own for what the notebook does not check (see
``ERROR_KINDS``). Token counts, billed tokens and default epochs follow the same notebook; see
:mod:`pytest_ft.data.tokens`.

One module per concept: :mod:`.io` (reading lines, writing outputs), :mod:`.schema` (the
format's rules), :mod:`.validate`, :mod:`.stats`, :mod:`.convert`, :mod:`.split`,
:mod:`.dedupe`, :mod:`.leak`; this package re-exports their public names.
"""

from __future__ import annotations

from . import tokens  # noqa: F401

# Not in __all__, but importable from here since before the package was split.
from .convert import EXPECTED_COLUMNS, INPUT_COLUMNS, ConvertReport, convert  # noqa: F401
from .dedupe import DedupeReport, dedupe
from .errors import DataError
from .inputs import normalize_input
from .io import (
                     DEFAULT_MAX_LINE_BYTES,  # noqa: F401
                     lone_surrogate,
)
from .leak import Leak, LeakReport, check_leak
from .models import (  # noqa: F401
                     DEFAULT_MODEL,
                     MAX_DEFAULT_EPOCHS,
                     MAX_TARGET_EXAMPLES,
                     MIN_DEFAULT_EPOCHS,
                     MIN_TARGET_EXAMPLES,
                     TARGET_EPOCHS,
                     TRAINING_TOKEN_LIMITS,
                     default_epochs,
                     training_token_limit,
)
from .schema import CHAT_KEYS, DPO_INPUT_KEYS, DPO_KEYS, MESSAGE_KEYS, ROLES  # noqa: F401
from .split import (
                     MAX_STRATIFY_LABELS,  # noqa: F401
                     SplitReport,
                     split,
)
from .stats import StatsReport, stats
from .validate import (  # noqa: F401
                     DEFAULT_MAX_DETAILS,
                     ERROR_KINDS,
                     MIN_EXAMPLES,
                     RECOMMENDED_EXAMPLES,
                     WARNING_KINDS,
                     Problem,
                     ValidationReport,
                     validate,
)

__all__ = [
    "DataError", "Problem", "ValidationReport", "StatsReport", "ConvertReport", "SplitReport",
    "DedupeReport", "Leak", "LeakReport", "validate", "stats", "convert", "split", "dedupe",
    "check_leak", "default_epochs", "training_token_limit", "normalize_input", "lone_surrogate",
    "ERROR_KINDS", "WARNING_KINDS",
]
