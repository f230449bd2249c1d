"""A fine-tuning job as the API describes it, what it cost, and how to evaluate its model.

The API's JSON is read leniently, never through the SDK's strict models: statuses and fields
the SDK does not list (Azure OpenAI's ``pending``, ``notRunning``, ``canceled``; extra
fields) pass through instead of failing.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .. import redact
from ..report.pricing import PriceTable, fine_tuned_base

HASH_KEY = "pytest_ft_hash"
# Azure OpenAI spells it "canceled"; "deleted" and "expired" end a job too.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "canceled", "deleted", "expired"})

_LINE = re.compile(r"\bline[ _.:#-]*(?:number[ _:]*)?(\d+)", re.IGNORECASE)


def as_str(value: Any) -> str | None:
    """A non-empty string from the API's JSON, else None."""
    return value if isinstance(value, str) and value else None


def as_int(value: Any) -> int | None:
    """An integer from the API's JSON (``3``, ``3.0``, ``"3"``), else None; a bool is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


@dataclass
class JobFailure:
    """Why a job failed: the API's ``error`` object, plus the failing line when it names one."""

    code: str | None
    message: str
    param: str | None = None
    line: int | None = None

    @classmethod
    def from_error(cls, error: Mapping[str, Any]) -> JobFailure:
        """Read an ``error`` object; the line comes from ``param`` (``training_file.line.7``) or the message."""
        message = redact.scrub(str(error.get("message") or "the job failed (no message from the API)"))
        param = as_str(error.get("param"))
        line = None
        for text in (param or "", message):
            match = _LINE.search(text)
            if match:
                line = int(match.group(1))
                break
        if param and re.match(r"^(training_file|validation_file)\b", param):
            param = re.match(r"^(training_file|validation_file)", param).group(1)
        return cls(code=as_str(error.get("code")), message=message, param=param, line=line)

    def describe(self, files: Mapping[str, str | None] | None = None) -> str:
        """One or two lines for people; ``files`` maps ``training_file``/``validation_file`` to local paths."""
        text = self.message + (f" ({self.code})" if self.code else "")
        where = (files or {}).get(self.param or "") or self.param
        if self.line is not None:
            text += f"\n  failing line: {where}:{self.line}" if where else f"\n  failing line: {self.line}"
        elif where:
            text += f"\n  in: {where}"
        return text


@dataclass
class JobInfo:
    """A fine-tuning job as the API describes it, read leniently.

    ``status`` is the API's word, whatever it is (``validating_files``, ``queued``, ``running``,
    ``succeeded``, ``failed``, ``cancelled``, or a provider's own such as Azure's ``pending``).
    ``hyperparameters`` merges the job's top-level ``hyperparameters`` with its
    ``method.<type>.hyperparameters`` (``n_epochs``, ``batch_size``, ``learning_rate_multiplier``,
    ``beta``...). ``reused`` is True when :func:`~pytest_ft.training.jobs.ensure_job` found an
    existing job.
    """

    id: str
    status: str
    base_model: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: JobFailure | None = None
    created_at: int | None = None
    finished_at: int | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    estimated_finish: int | None = None
    reused: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def content_hash(self) -> str | None:
        return self.metadata.get(HASH_KEY)

    @property
    def n_epochs(self) -> int | None:
        value = self.hyperparameters.get("n_epochs")
        return value if isinstance(value, int) else None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded" and bool(self.fine_tuned_model)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, reused: bool = False) -> JobInfo:
        data = dict(data)
        method = data.get("method") if isinstance(data.get("method"), dict) else {}
        mtype = method.get("type") if isinstance(method.get("type"), str) else None
        hp: dict[str, Any] = {}
        inner = method.get(mtype) if mtype else None
        if isinstance(inner, dict) and isinstance(inner.get("hyperparameters"), dict):
            hp.update(inner["hyperparameters"])
        if isinstance(data.get("hyperparameters"), dict):
            hp.update({k: v for k, v in data["hyperparameters"].items() if v is not None})
        error = data.get("error")
        failure = None
        if isinstance(error, dict) and (error.get("message") or error.get("code")):
            failure = JobFailure.from_error(error)
        elif isinstance(error, str) and error:
            failure = JobFailure.from_error({"message": error})
        return cls(
            id=str(data.get("id") or ""), status=str(data.get("status") or "unknown"),
            base_model=as_str(data.get("model")), fine_tuned_model=as_str(data.get("fine_tuned_model")),
            trained_tokens=as_int(data.get("trained_tokens")), error=failure,
            created_at=as_int(data.get("created_at")), finished_at=as_int(data.get("finished_at")),
            hyperparameters=hp, method=mtype, training_file=as_str(data.get("training_file")),
            validation_file=as_str(data.get("validation_file")),
            suffix=as_str(data.get("user_provided_suffix") or data.get("suffix")), seed=as_int(data.get("seed")),
            metadata=dict(data.get("metadata") or {}) if isinstance(data.get("metadata"), dict) else {},
            estimated_finish=as_int(data.get("estimated_finish")), reused=reused, raw=data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("raw")
        d["content_hash"] = self.content_hash
        d["n_epochs"] = self.n_epochs
        return d


def training_cost(job_or_tokens: JobInfo | int | None, base_model: str | None = None,
                  prices: PriceTable | None = None) -> float | None:
    """USD for training: trained tokens × the base model's training price per 1M tokens.

    ``job_or_tokens`` is a :class:`JobInfo` (its ``trained_tokens``, which already counts every
    epoch, and its ``base_model`` unless one is given) or a number of trained tokens (billed tokens
    × epochs, e.g. from :func:`pytest_ft.data.stats`). None when the tokens or the price are unknown
    (never a silent 0). ``prices`` defaults to the built-in table.
    """
    if isinstance(job_or_tokens, JobInfo):
        tokens = job_or_tokens.trained_tokens
        base_model = base_model or job_or_tokens.base_model
    else:
        tokens = job_or_tokens
    if tokens is None or not base_model:
        return None
    rate = (prices or PriceTable()).training_price(base_model)
    if rate is None:
        return None
    return tokens * rate / 1e6


def evaluate_command(job: JobInfo, *, base_url: str | None = None, suites: str | None = None) -> str | None:
    """The ``pytest --ft-model=...`` command evaluating a succeeded job's model (None before that).

    ``--ft-base-model`` is added only when the model's ``ft:`` id does not already name its base.
    """
    if not job.fine_tuned_model:
        return None
    parts = ["pytest"] + ([suites] if suites else []) + [f"--ft-model={job.fine_tuned_model}"]
    if job.base_model and fine_tuned_base(job.fine_tuned_model) != job.base_model:
        parts.append(f"--ft-base-model={job.base_model}")
    if base_url:
        parts.append(f"--ft-base-url={base_url}")
    return " ".join(shlex.quote(p) for p in parts)
