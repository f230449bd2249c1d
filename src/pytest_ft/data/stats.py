"""``stats``: what a dataset will cost to train on, and how its examples are shaped.

Token counts, billed tokens and default epochs follow OpenAI's cookbook notebook
"Chat_finetuning_data_prep"; the pass over the file is validate's (:class:`.validate.Scan`),
so only examples without errors are counted.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .errors import DataError
from .io import DEFAULT_MAX_LINE_BYTES
from .models import default_epochs
from .validate import Scan


def _distribution(histogram: Mapping[int, int]) -> dict[str, float | int | None]:
    """min, max, mean, median, p10 and p90 of the values counted in ``histogram`` (value -> count).

    Quantiles use numpy's default (linear interpolation between order statistics), as the
    cookbook does; a histogram gives the same order statistics as the sorted values, in memory
    proportional to the number of distinct values rather than of examples.
    """
    n = sum(histogram.values())
    if not n:
        return {"min": None, "max": None, "mean": None, "median": None, "p10": None, "p90": None}
    values = sorted(histogram)
    ends = []  # ends[i]: number of examples with a value <= values[i]
    running = 0
    for v in values:
        running += histogram[v]
        ends.append(running)

    def order_statistic(k: int) -> int:  # the k-th smallest value, 0-based
        return values[bisect.bisect_right(ends, k)]

    def quantile(q: float) -> float:
        pos = (n - 1) * q
        lo = math.floor(pos)
        t = pos - lo
        a, b = order_statistic(lo), order_statistic(min(lo + 1, n - 1))
        return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t

    return {"min": values[0], "max": values[-1], "mean": sum(v * c for v, c in histogram.items()) / n,
            "median": quantile(0.5), "p10": quantile(0.1), "p90": quantile(0.9)}


@dataclass
class StatsReport:
    file: str
    model: str
    encoding: str
    format: str | None
    lines: int
    examples: int
    invalid_examples: int
    errors: dict[str, int]
    messages_per_example: dict[str, Any]
    tokens_per_example: dict[str, Any]
    assistant_tokens_per_example: dict[str, Any]
    max_tokens_per_example: int | None
    examples_over_limit: int
    missing_system_message: int
    missing_user_message: int
    billed_tokens: int
    epochs: int | None
    epochs_source: str
    charged_tokens: int | None
    training_price_per_1m_tokens: float | None
    estimated_cost_usd: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stats(path: str | os.PathLike, model: str, *, epochs: int | None = None, prices: Any = None,
          max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, progress: bool | None = None) -> StatsReport:
    """Counts, token distributions, billed tokens, default epochs and estimated training cost.

    ``prices`` is a :class:`pytest_ft.report.pricing.PriceTable`, a price file path, or None for the
    built-in table. Only examples without errors are counted.
    """
    from ..report.pricing import PriceFileError, PriceTable

    if epochs is not None and epochs < 1:
        raise DataError(f"--epochs must be at least 1, got {epochs}")
    if isinstance(prices, PriceTable):
        table = prices
    else:
        try:
            table = PriceTable.from_file(prices) if prices else PriceTable()
        except PriceFileError as exc:
            raise DataError(str(exc)) from None
    scan = Scan(path, model, max_line_bytes=max_line_bytes, max_details=0, progress=progress,
                label=f"stats {path}", find_duplicates=False).run()
    n = scan.valid
    n_epochs = epochs if epochs is not None else default_epochs(n)
    charged = scan.billed * n_epochs if n_epochs is not None else None
    price = table.training_price(model)
    cost = charged * price / 1e6 if (price is not None and charged is not None) else None
    return StatsReport(
        file=str(path), model=model, encoding=scan.encoding, format=scan.format, lines=scan.lines, examples=n,
        invalid_examples=scan.invalid, errors=dict(scan.errors.most_common()),
        messages_per_example=_distribution(scan.n_messages), tokens_per_example=_distribution(scan.n_tokens),
        assistant_tokens_per_example=_distribution(scan.n_assistant), max_tokens_per_example=scan.limit,
        examples_over_limit=scan.over_limit, missing_system_message=scan.warnings["missing_system_message"],
        missing_user_message=scan.warnings["missing_user_message"], billed_tokens=scan.billed, epochs=n_epochs,
        epochs_source="--epochs" if epochs is not None else "default", charged_tokens=charged,
        training_price_per_1m_tokens=price, estimated_cost_usd=cost)
