"""The ``*.ft.yaml`` format as a schema: what editors complete and check as people type.

``pytest-ft schema`` prints it as JSON Schema for yaml-language-server (VS Code's YAML
extension and others). The loader (:mod:`pytest_ft.suite`) checks a suite in more depth —
file and line, regexes that compile, files that exist, graders' options — and its key sets
come from the models here, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

Number = Annotated[float, Field(allow_inf_nan=False)]
PassIf = Union[Literal["majority", "all", "any"], Annotated[int, Field(ge=1)]]
Repeat = Annotated[int, Field(ge=1, le=100)]
CaseId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^./\\\x00-\x1f][^/\\\x00-\x1f]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Union[str, list[dict[str, Any]], None] = None


class GraderSpec(BaseModel):
    """A grader with options: ``{type: regex, pattern: "^NEG"}``; its other keys are the grader's options."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="the grader's name: exact, choices, contains, not_contains, regex, json, "
                                  "numeric, similarity, judge, python, all, any, weighted")


Grader = Union[str, GraderSpec]


class FewShot(_Strict):
    n: Annotated[int, Field(ge=1)]
    file: str | None = Field(None, description="chat JSONL to take the examples from (default: train.file)")


class ModelEntry(_Strict):
    """A model on its own endpoint, or a variant of the base (its own system prompt, few-shot examples)."""

    model: str
    base_url: str | None = Field(None, description="an OpenAI-compatible endpoint for this model")
    api_key_env: str | None = Field(None, description="the environment variable holding that endpoint's key")
    params: dict[str, Any] | None = None
    system: str | None = Field(None, description="a variant's system prompt, in place of the case's")
    few_shot: Union[Annotated[int, Field(ge=1)], FewShot, None] = None
    answers: str | None = Field(None, description="a frozen answers file (pytest-ft freeze) that answers for "
                                                  "this model: a model that no longer exists can still be compared")


Model = Union[str, ModelEntry]


class Thresholds(_Strict):
    """The deploy gate."""

    accuracy: Annotated[Number, Field(ge=0, le=1)] | None = Field(None, description="tuned accuracy at least")
    min_gain: Annotated[Number, Field(ge=-1, le=1)] | None = Field(
        None, description="tuned minus base accuracy at least, as a fraction (0.05 = 5 points)")
    max_cost_usd: Annotated[Number, Field(ge=0)] | None = Field(None, description="the tuned model's cost at most")
    max_regressions: Annotated[int, Field(ge=0)] | None = Field(
        None, description="cases that passed in --ft-baseline (else: that the base passed) and fail now, at most")
    max_p_value: Annotated[Number, Field(ge=0, le=1)] | None = Field(
        None, description="McNemar's p for the gain at most: the gain must be real, not noise")
    min_agreement: Annotated[Number, Field(ge=0, le=1)] | None = Field(
        None, description="the tuned model's agreement with the reference model at least")
    max_latency_p95_ms: Annotated[Number, Field(ge=0)] | None = Field(
        None, description="the tuned model's 95th-percentile time to answer, in milliseconds, at most")
    min_win_rate: Annotated[Number, Field(ge=0, le=1)] | None = Field(
        None, description="with prefer: the first role's win rate over the second at least (ties count half)")
    max_unscored: Annotated[int, Field(ge=0)] | None = Field(
        None, description="answers (and preferences) a judge could not score, at most")


class Function(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="the arguments, as JSON Schema")


class Tool(BaseModel):
    """A tool the model may call (OpenAI's ``tools`` format)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["function"] = "function"
    function: Function


class ToolKeys(BaseModel):
    """Request keys for function calling and strict formats, at suite or case level."""

    tools: list[Tool] | None = Field(None, description="the tools the model may call (sent with every request)")
    tool_choice: Union[Literal["auto", "none", "required"], dict[str, Any], None] = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = Field(None, description="{type: text | json_object | json_schema}")


class Prefer(_Strict):
    """A judge compares two models' answers to each case, in both orders (position bias cancels)."""

    roles: Annotated[list[str], Field(min_length=2, max_length=2)] | None = Field(
        None, description="the two roles compared (default: [tuned, base])")
    rubric: str | None = Field(None, description="what makes an answer better")
    include_expected: bool | None = Field(None, description="show the judge the expected answer (default: true)")
    model: str | None = Field(None, description="the judge model (default: the suite's judge)")


class Train(_Strict):
    """The data the tuned model is fine-tuned on."""

    file: str
    validation_file: str | None = None
    base: str | None = None
    suffix: str | None = None
    method: Any = None
    seed: int | None = None
    hyperparameters: dict[str, Any] | None = None


class Case(ToolKeys, _Strict):
    """One case: ``input`` (the user message) or ``messages`` (a conversation), and what is expected."""

    id: Union[CaseId, int]
    input: str | None = None
    messages: list[Message] | None = None
    expected: Any = Field(None, description="the expected answer, as the grader reads it (optional with a "
                                            "reference model: its answer is then the expected one)")
    grader: Grader | None = None
    params: dict[str, Any] | None = None
    system: str | None = None
    description: str | None = None
    repeat: Repeat | None = None
    pass_if: PassIf | None = None


class Suite(ToolKeys, _Strict):
    """A pytest-ft suite: cases run on every model, graded, and gated."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["cases"]}, {"required": ["cases_file"]}],
        # Without a reference model, every case says what it expects.
        "if": {"not": {"required": ["models"], "properties": {"models": {"required": ["reference"]}}}},
        "then": {"properties": {"cases": {"items": {"required": ["expected"]}}}},
    })
    suite: str | None = Field(None, description="name in reports and of the recordings folder "
                                                "(default: the file name)")
    description: str | None = None
    models: dict[str, Model | None] | None = Field(
        None, description="role -> model: base and tuned, and any others (reference: the model being replaced, "
                          "a few-shot variant…)")
    system: str | None = Field(None, description="a system message for every case that has none")
    params: dict[str, Any] | None = Field(None, description="request parameters (temperature, max_tokens…)")
    grader: Grader | None = Field(None, description="the default grader (default: exact)")
    thresholds: Thresholds | None = None
    judge: Model | None = Field(None, description="the model behind judge graders")
    cases: list[Case] | None = None
    cases_file: str | None = Field(None, description="a chat JSONL file whose lines are cases: the last "
                                                     "assistant message is the expected answer")
    batch: bool | None = Field(None, description="send this suite's requests through the Batch API")
    repeat: Repeat | None = None
    pass_if: PassIf | None = None
    train: Union[str, Train, None] = None
    agreement: Grader | None = Field(None, description="how agreement with the reference model is graded "
                                                       "(default: each case's grader)")
    prefer: Union[bool, Prefer, None] = Field(None, description="a pairwise judgement: which of two models' "
                                                                "answers is better")


def keys(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


def json_schema() -> dict:
    schema = Suite.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": "pytest-ft suite (*.ft.yaml)"}


def print_schema() -> str:
    return json.dumps(json_schema(), indent=2)
