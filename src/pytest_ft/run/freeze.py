"""Freezing: a model's answers to a list of prompts, kept before the model is shut down.

A fine-tuned model that is being retired takes its behaviour with it. Asked every prompt a
team cares about (production traffic exported as chat, the cases of its suites) one last
time, its answers become a file (:mod:`pytest_ft.data.frozen`) that evaluates the models
replacing it and trains them.

Freezing goes through the evaluation's :class:`~pytest_ft.run.runner.Runner`, so its
concurrency limit, retries and rate limiting apply, and each prompt's call can be recorded
in a cassette of its own: with the recordings, the freezing itself replays once the model
is gone. Each answer is appended to the file as soon as it arrives, on the runner's loop
thread: a run that is interrupted keeps every answer it received, whole, and the next
run sends only the prompts the file does not answer yet. A failed call writes nothing. Once
every answer is in, the file is rewritten (atomically) in the prompts' order.
"""

from __future__ import annotations

import concurrent.futures
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..data.errors import DataError
from ..data.frozen import (
    FrozenAnswers,
    file_problem,
    frozen_line,
    prompt_key,
    read_frozen,
    utc_now,
)
from ..data.io import BLANK, iter_parsed, read_suite
from ..files import append_text, write_atomic
from ..recording.cassette import CassetteUnreadable, cassette_path, current_cassette
from ..redact import scrub
from ..suite import is_suite_file
from ..suite.load import check_name, check_tool_params, read_example
from .runner import (
    Answer,
    ApiError,
    ModelRef,
    Runner,
    Usage,
    describe_failure,
    register_endpoint,
)


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: list[dict]
    source: str = ""  # where it was read ("file:line", "suite::case"), for messages about it
    tools: dict = field(default_factory=dict)  # tools and parallel_tool_calls: sent, and kept in the file

# What a function-calling prompt carries beside its messages, as the fine-tuning format has it.
TOOL_KEYS = ("tools", "parallel_tool_calls")


@dataclass
class FreezeSummary:
    out: Path
    frozen: int = 0  # answers written by this run
    already: int = 0  # prompts the file answered before the run
    duplicates: int = 0  # prompts given more than once, frozen once
    replayed: int = 0  # of the answers written, those replayed from recordings
    usage: Usage = field(default_factory=Usage)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, why): calls that did not answer
    errors: list[str] = field(default_factory=list)  # prompts not sent: their id is another prompt's
    warnings: list[str] = field(default_factory=list)  # answers kept, but their recording was not


def freeze_suite_name(model: str) -> str:
    """The folder of the freezing's recordings under the cassette dir (made safe by ``cassette_path``)."""
    return f"freeze-{model}"


def freeze(prompts: list[Prompt], ref: ModelRef, out: Path, *, runner: Runner, params: dict,
           cassette_dir: Path | None = None, say: Callable[[str], None] = print) -> FreezeSummary:
    """Freeze ``ref``'s answers to ``prompts`` into ``out``, skipping those ``out`` already answers.

    A prompt given twice is frozen once. An id given to two different prompts (or already in
    ``out`` for another prompt) would name two cases: the later prompt is not sent, and is in
    the summary's errors. Raises :class:`~pytest_ft.data.frozen.FrozenFileError` when ``out``
    exists but cannot be read whole; it is then left as it is.
    """
    register_endpoint(ref.endpoint)  # before any prompt is keyed: a stored prompt is masked like its file
    done = read_frozen(out) if out.exists() or out.is_symlink() else FrozenAnswers(out)
    summary = FreezeSummary(out=out)
    todo = _to_send(prompts, done, summary)
    if not todo:
        return summary
    say(f"freezing {len(todo):,} answer{'s' if len(todo) != 1 else ''} of {ref.model} into {out}"
        + (f" ({summary.already:,} already there)" if summary.already else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    suite = freeze_suite_name(ref.model)

    def submit(prompt: Prompt) -> concurrent.futures.Future:
        recording = cassette_path(cassette_dir, suite, prompt.id) if cassette_dir else None
        return runner.spawn(_freeze_one(runner, ref, prompt, params, out, recording))

    futures = {submit(prompt): prompt for prompt in todo}
    step = max(1, len(todo) // 10)
    for number, future in enumerate(concurrent.futures.as_completed(futures), 1):
        prompt, outcome = futures[future], future.result()
        if outcome.error is not None:
            summary.failed.append((prompt.id, outcome.error))
            say(f"  failed {prompt.id}: {outcome.error}")
        else:
            summary.frozen += 1
            summary.replayed += outcome.answer.replayed
            summary.usage.add(outcome.answer.usage)
        if outcome.warning:
            summary.warnings.append(outcome.warning)
            say(f"  warning {prompt.id}: {outcome.warning}")
        if len(todo) >= 20 and (number % step == 0 or number == len(todo)):
            say(f"  {number:,}/{len(todo):,} done, {summary.frozen:,} frozen, {len(summary.failed):,} failed")
    if summary.frozen:
        in_prompt_order(out, prompts)
    return summary


def in_prompt_order(out: Path, prompts: list[Prompt]) -> None:
    """List the answers in the prompts' order, not the order they arrived in, so that the same
    prompts make the same file (and training on it is reproducible). Rewritten atomically: an
    interruption leaves the file as it was; lines of no prompt given keep their place at the end."""
    rank: dict[str, int] = {}
    for number, prompt in enumerate(prompts):
        rank.setdefault(prompt_key(prompt.messages), number)
    lines = [line for line in out.read_text(encoding="utf-8").splitlines(keepends=True) if line.strip()]

    def position(item: tuple[int, str]) -> tuple[int, int]:
        index, line = item
        try:
            key = prompt_key(json.loads(line)["messages"][:-1])
        except (ValueError, KeyError, TypeError):
            key = None
        return rank.get(key, len(prompts)), index

    ordered = [line for _, line in sorted(enumerate(lines), key=position)]
    if ordered != lines:
        write_atomic(out, "".join(ordered))


def _to_send(prompts: Iterable[Prompt], done: FrozenAnswers, summary: FreezeSummary) -> list[Prompt]:
    """The prompts to ask: each once, not answered in ``done``, and not holding an id that names
    another prompt (ids name cases and their recordings, ``a b`` and ``a_b`` the same one)."""
    by_key: dict[str, Prompt] = {}
    by_recording: dict[str, tuple[Prompt, str]] = {}
    todo = []
    for prompt in prompts:
        key = prompt_key(prompt.messages)
        recording = cassette_path(Path(), "", prompt.id).name
        first, first_key = by_recording.get(recording, (None, None))
        if first_key == key or (first is None and key in by_key):
            summary.duplicates += 1
            continue
        where = prompt.source or prompt.id
        if first is not None:
            clash = f"is also the id of {first.source}" if first.id == prompt.id else \
                f"and {first.id!r} ({first.source}) would share the recording {recording}"
            summary.errors.append(f"{where}: id {prompt.id!r} {clash}, a different prompt: not frozen")
            continue
        by_key[key], by_recording[recording] = prompt, (prompt, key)
        if done.by_prompt(prompt.messages) is not None:
            summary.already += 1
        elif done.by_id(prompt.id) is not None:
            summary.errors.append(f"{where}: id {prompt.id!r} is already in {done.path} for a different prompt: "
                                  f"not frozen (give it another id)")
        else:
            todo.append(prompt)
    return todo


@dataclass
class _Outcome:
    answer: Answer | None = None
    error: str | None = None
    warning: str | None = None


async def _freeze_one(runner: Runner, ref: ModelRef, prompt: Prompt, params: dict, out: Path,
                      recording: Path | None) -> _Outcome:
    """One prompt asked, recorded and its answer appended to ``out``; never raises.

    It runs on the loop's thread, where no Ctrl-C lands: a line is written whole or not at all.
    """
    outcome = _Outcome()
    line = None
    cassette = None
    try:
        cassette = runner.open_cassette(recording, prompt.id)
        current_cassette.set(cassette)  # this task's context: its request uses it
        answer = await runner.complete(ref, prompt.messages, {**params, **prompt.tools})
        line = frozen_line(prompt.id, prompt.messages, answer.text, model=answer.model or ref.model,
                           requested_model=ref.model, date=utc_now(), latency_ms=answer.latency_ms,
                           usage=answer.usage.to_dict(), replayed=answer.replayed, calls=answer.tool_calls,
                           tools=prompt.tools)
    except ApiError as exc:
        outcome.error = str(exc)
    except CassetteUnreadable as exc:
        outcome.error = scrub(str(exc))
    except Exception as exc:
        outcome.error = f"{ref.role} model {ref.model!r}: {describe_failure(exc)}"
    if cassette is not None:
        try:
            cassette.save(complete=line is not None)
        except OSError as exc:  # the answer matters more than its recording: it is kept all the same
            outcome.warning = scrub(f"cannot write the recording {cassette.path}: {exc.strerror or exc}")
    if line is None:
        return outcome
    try:
        append_text(out, line)
    except OSError as exc:
        outcome.error = scrub(f"cannot append to {out}: {exc.strerror or exc}")
        return outcome
    outcome.answer = answer
    return outcome


# --------------------------------------------------------------------------------------------
# inputs


def load_prompts(paths: Iterable[str | Path]) -> tuple[list[Prompt], list[str]]:
    """The prompts of every input, and one error for each input that cannot be read (whose
    prompts are then left out: the other inputs are still frozen)."""
    prompts: list[Prompt] = []
    errors: list[str] = []
    for path in map(Path, paths):
        try:
            prompts.extend(suite_prompts(path) if is_suite_file(path) else jsonl_prompts(path))
        except DataError as exc:
            errors.append(str(exc))
    return prompts, errors


def suite_prompts(path: Path) -> list[Prompt]:
    """Each case of a ``*.ft.yaml`` suite, its messages as the evaluation sends them (system included)."""
    return [Prompt(case.id, case.messages, f"{path}::{case.id}",
                   {k: case.params[k] for k in TOOL_KEYS if k in case.params}) for case in read_suite(path).cases]


def jsonl_prompts(path: Path) -> list[Prompt]:
    """Each line of a chat JSONL file (``{"messages": [...]}``): everything before a final
    assistant message is the prompt; ``metadata.id`` is its id, else ``<file stem>-<line>``.
    Raises :class:`DataError` naming ``file:line`` on the first bad line."""
    problem = file_problem(path)
    if problem:
        raise DataError(problem)
    prompts = []
    for parsed in iter_parsed(path, progress=False):
        if parsed.obj is BLANK:
            continue
        if parsed.kind:
            raise DataError(f"{path}:{parsed.lineno}: {parsed.kind}: {parsed.message}")
        try:
            prompts.append(_jsonl_prompt(parsed.obj, path, parsed.lineno))
        except ValueError as exc:
            raise DataError(f"{path}:{parsed.lineno}: {exc}") from None
    if not prompts:
        raise DataError(f"{path}: holds no prompts")
    return prompts


def _jsonl_prompt(obj: Any, path: Path, lineno: int) -> Prompt:
    """One line's prompt; a ValueError says what is wrong, the key first."""
    messages, metadata = read_example(obj, path, lineno)
    prompt = messages[:-1] if messages[-1]["role"] == "assistant" else messages
    if not prompt:
        raise ValueError("messages: no prompt before the assistant message")
    try:
        case_id = check_name(metadata.get("id") or f"{path.stem}-{lineno}")
    except ValueError as exc:
        raise ValueError(f"metadata.id: {exc}") from None
    tools = {k: obj[k] for k in TOOL_KEYS if k in obj}
    try:
        check_tool_params(tools)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return Prompt(case_id, prompt, f"{path}:{lineno}", tools)
