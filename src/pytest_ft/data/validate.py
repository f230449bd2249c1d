"""``validate``: every line of a dataset checked as OpenAI's fine-tuning upload does.

One streaming pass (:class:`Scan`) parses each line, checks it against the format
(:mod:`.schema`), counts its tokens and hashes it for duplicates; it keeps a few compact
numbers per example, so ``stats`` reuses the same pass for its distributions.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from . import tokens
from .duplicates import Duplicates, canonical_hash
from .io import BLANK, DEFAULT_MAX_LINE_BYTES, iter_parsed
from .models import DEFAULT_MODEL, training_token_limit
from .schema import check_example

DEFAULT_MAX_DETAILS = 100
MIN_EXAMPLES = 10           # OpenAI rejects a training file with fewer examples
RECOMMENDED_EXAMPLES = 50   # OpenAI: "clear improvements ... with 50 to 100 training examples"

ERROR_KINDS: dict[str, str] = {
    # the cookbook's kinds
    "data_type": "the line (or a message) is not a JSON object",
    "missing_messages_list": "no non-empty 'messages' list",
    "message_missing_key": "a message lacks 'role' or 'content' (or a tool message its tool_call_id)",
    "message_unrecognized_key": "a message has a key OpenAI does not accept",
    "unrecognized_role": "a role other than system, user, assistant, tool, function",
    "missing_content": "content is null, empty or not text",
    "example_missing_assistant_message": "no assistant message to learn from",
    # ours
    "empty_file": "the file holds no example",
    "blank_line": "an empty line between examples",
    "encoding_error": "bytes that are not UTF-8, or a \\u escape that is half a surrogate pair",
    "invalid_json": "the line is not valid JSON",
    "truncated_line": "the last line is cut off (no newline, incomplete JSON)",
    "line_too_long": "the line is over the byte limit and was not parsed",
    "unrecognized_key": "a top-level key OpenAI does not accept",
    "invalid_content_part": "a content list part other than text (images only in user messages)",
    "invalid_weight": "weight other than 0 or 1, or on a non-assistant message",
    "invalid_name": "a message name that is not a string",
    "invalid_tool_calls": "malformed tool_calls / function_call, or on a non-assistant message",
    "invalid_tools": "malformed tools, functions or parallel_tool_calls",
    "dpo_missing_output": "a preference example without a non-empty preferred_output / non_preferred_output list",
    "dpo_output_not_assistant": "a preference output message whose role is not assistant",
    "mixed_example_types": "chat and preference (DPO) examples in one file",
}

WARNING_KINDS: dict[str, str] = {
    "too_few_examples": f"fewer than {MIN_EXAMPLES} examples: OpenAI will reject the file",
    "few_examples": f"fewer than {RECOMMENDED_EXAMPLES} examples: probably too few to help",
    "example_too_long": "longer than the model's training context: it will be truncated",
    "missing_system_message": "no system message",
    "missing_user_message": "no user message",
    "empty_assistant_answer": "an assistant message with empty content",
    "duplicate_example": "the same example appears earlier in the file",
    "dpo_identical_outputs": "preferred and non-preferred outputs are identical",
    "utf8_bom": "the file starts with a UTF-8 byte-order mark",
    "unknown_token_limit": "the model's training context is not known: no truncation applied",
}


@dataclass
class Problem:
    line: int | None
    kind: str
    message: str
    severity: str = "error"


@dataclass
class ValidationReport:
    file: str
    model: str
    encoding: str
    max_tokens_per_example: int | None
    format: str | None = None                 # "chat", "dpo", or None when no example parsed
    lines: int = 0
    examples: int = 0                         # non-blank lines
    valid_examples: int = 0
    invalid_examples: int = 0                 # examples (non-blank lines) with at least one error
    lines_with_errors: int = 0                # invalid examples and blank lines
    errors: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)   # first --max-details errors, then warnings
    problems_truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["valid"] = self.ok
        d["error_count"] = sum(self.errors.values())
        d["warning_count"] = sum(self.warnings.values())
        return d


class Scan:
    """One streaming pass: validation problems and per-example compact numbers."""

    def __init__(self, path, model: str, *, max_line_bytes: int, max_details: int, progress: bool | None,
                 label: str, find_duplicates: bool = True):
        self.path = str(path)
        self.model = model
        self.encoding = tokens.encoding_for_model(model)
        self.limit = training_token_limit(model)
        self.count = tokens.example_token_counter(model)
        self.max_line_bytes = max_line_bytes
        self.max_details = max_details
        self.progress = progress
        self.label = label
        self.errors: Counter[str] = Counter()
        self.warnings: Counter[str] = Counter()
        self.error_details: list[Problem] = []
        self.warning_details: list[Problem] = []
        self.truncated = False
        self.lines = 0
        self.examples = 0
        self.invalid = 0
        self.error_lines = 0
        self.format: str | None = None
        self.valid = 0
        self.n_messages: Counter[int] = Counter()   # histograms: value -> examples
        self.n_tokens: Counter[int] = Counter()
        self.n_assistant: Counter[int] = Counter()
        self.duplicates: Duplicates | None = Duplicates() if find_duplicates else None
        self.over_limit = 0
        self.billed = 0

    def _record(self, severity: str, line: int | None, kind: str, message: str) -> None:
        counts, details = ((self.errors, self.error_details) if severity == "error"
                           else (self.warnings, self.warning_details))
        counts[kind] += 1
        if self.max_details < 0 or len(details) < self.max_details:
            details.append(Problem(line, kind, message, severity))
        else:
            self.truncated = True

    def run(self) -> Scan:
        for parsed in iter_parsed(self.path, max_line_bytes=self.max_line_bytes, progress=self.progress,
                                  label=self.label):
            self.lines = parsed.lineno
            if parsed.bom:
                self._record("warning", 1, "utf8_bom", "the file starts with a UTF-8 byte-order mark (BOM)")
            if parsed.obj is BLANK:
                self.error_lines += 1
                self._record("error", parsed.lineno, "blank_line", parsed.message)
                continue
            self.examples += 1
            if parsed.kind:
                self.invalid += 1
                self.error_lines += 1
                self._record("error", parsed.lineno, parsed.kind, parsed.message)
                continue
            self._example(parsed.lineno, parsed.obj)
        self._finish()
        return self

    def _example(self, lineno: int, obj: Any) -> None:
        line_errors: list[tuple[str, str]] = []
        line_warnings: list[tuple[str, str]] = []
        kind = check_example(obj, lambda k, m: line_errors.append((k, m)),
                             lambda k, m: line_warnings.append((k, m)))
        if kind:
            if self.format is None:
                self.format = kind
            elif kind != self.format:
                line_errors.append(("mixed_example_types",
                                    f"a {'preference (DPO)' if kind == 'dpo' else 'chat'} example in a file whose "
                                    f"first example is {'chat' if kind == 'dpo' else 'a preference (DPO) one'}"))
        if line_errors:  # an invalid example gets its errors only: warnings are about valid ones
            self.invalid += 1
            self.error_lines += 1
            for k, m in line_errors:
                self._record("error", lineno, k, m)
            return
        for k, m in line_warnings:
            self._record("warning", lineno, k, m)
        if kind == "dpo":
            # OpenAI does not publish how preference examples are billed: we count both sequences,
            # the input with the preferred output and the input with the non-preferred one.
            inp = obj["input"]["messages"]
            n_msgs = len(inp) + 1
            good, good_asst = self.count(inp + obj["preferred_output"])
            bad, bad_asst = self.count(inp + obj["non_preferred_output"])
            n_tok, n_asst = good + bad, good_asst + bad_asst
        else:
            msgs = obj["messages"]
            n_msgs = len(msgs)
            n_tok, n_asst = self.count(msgs)
        if self.limit is not None and n_tok > self.limit:
            self.over_limit += 1
            self._record("warning", lineno, "example_too_long",
                         f"{n_tok:,} tokens, over the {self.limit:,}-token training context of {self.model}: "
                         f"it will be truncated")
        self.billed += min(n_tok, self.limit) if self.limit is not None else n_tok
        self.valid += 1
        self.n_messages[n_msgs] += 1
        self.n_tokens[n_tok] += 1
        self.n_assistant[n_asst] += 1
        if self.duplicates is not None:
            self.duplicates.add(canonical_hash(obj), lineno)

    def _finish(self) -> None:
        if self.examples == 0:
            self._record("error", None, "empty_file",
                         "the file is empty" if self.lines == 0 else f"the file has no examples, only {self.lines} "
                                                                     f"blank line{'s' if self.lines != 1 else ''}")
        if self.duplicates is not None:
            for line, first in self.duplicates:
                self._record("warning", line, "duplicate_example", f"the same example as line {first}")
            self.duplicates = None  # frees the per-example arrays
        valid = self.valid
        if 0 < self.examples and valid < MIN_EXAMPLES:
            self._record("warning", None, "too_few_examples",
                         f"{valid} valid example{'s' if valid != 1 else ''}: OpenAI requires at least {MIN_EXAMPLES}")
        elif MIN_EXAMPLES <= valid < RECOMMENDED_EXAMPLES:
            self._record("warning", None, "few_examples",
                         f"{valid} examples: OpenAI sees clear improvements from 50-100; fewer rarely help")
        if self.limit is None and valid:
            self._record("warning", None, "unknown_token_limit",
                         f"the training context of {self.model} is not known: examples are not truncated in the "
                         f"billed-token count")

    def problems(self) -> list[Problem]:
        return sorted(self.error_details, key=lambda p: (p.line or 0)) + \
            sorted(self.warning_details, key=lambda p: (p.line or 0))

    def validation_report(self) -> ValidationReport:
        return ValidationReport(
            file=self.path, model=self.model, encoding=self.encoding, max_tokens_per_example=self.limit,
            format=self.format, lines=self.lines, examples=self.examples, valid_examples=self.valid,
            invalid_examples=self.invalid, lines_with_errors=self.error_lines, errors=dict(self.errors.most_common()),
            warnings=dict(self.warnings.most_common()), problems=self.problems(), problems_truncated=self.truncated)


def validate(path: str | os.PathLike, model: str = DEFAULT_MODEL, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
             max_details: int = DEFAULT_MAX_DETAILS, progress: bool | None = None) -> ValidationReport:
    """Check every line of a chat (or preference) fine-tuning JSONL file as OpenAI does.

    ``max_details`` caps the problems listed (errors and warnings separately; -1 for all);
    the counts per kind are always complete.
    """
    return Scan(path, model, max_line_bytes=max_line_bytes, max_details=max_details, progress=progress,
                label=f"validate {path}").run().validation_report()
