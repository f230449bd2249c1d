"""A loaded suite: its models, its cases, and what the run needs of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..messages import content_text


@dataclass(frozen=True)
class ModelSpec:
    """One model under test: its id and, optionally, its own endpoint and key variable."""

    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    system: str | None = None  # a variant's own system prompt, replacing the case's
    examples: tuple = ()  # a variant's few-shot messages, put before each case's conversation
    answers: str | None = None  # a frozen answers file (pytest-ft freeze) that answers for this model
    line: int | None = None


@dataclass
class Case:
    id: str
    messages: list[dict]
    expected: Any
    grader: Any  # a built grader (graders.Grader)
    params: dict
    line: int
    grader_spec: Any = None
    repeat: int | None = None  # None: the suite's (or the command line's) default
    pass_if: str | int | None = None
    labelled: bool = True  # False: no expected answer; the reference model's answer stands for it

    @property
    def input(self) -> str:
        """The last user message: what a person would call this case's input."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""


@dataclass
class Suite:
    name: str
    path: Path
    models: dict[str, ModelSpec | None]
    system: str | None
    params: dict
    thresholds: dict[str, float]
    cases: list[Case]
    judge: ModelSpec | None = None
    description: str = ""
    batch: bool = False
    repeat: int | None = None
    pass_if: str | int | None = None
    train: dict | None = None
    agreement: Any = None  # the grader of agreement with the reference (default: each case's grader)
    agreement_spec: Any = None
    prefer: dict | None = None  # {roles, rubric, model, include_expected}: a pairwise judgement per case
