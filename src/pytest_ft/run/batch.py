"""Batch mode: a suite's requests as one OpenAI Batch API job, at half the price.

Nightly regression runs have nobody waiting for them, and OpenAI's Batch API runs the
same requests server-side within 24 hours at half the price. In batch mode every chat
request of a suite's selected cases (base, tuned, any other model) goes into one JSONL
input file, one line per case and model (``custom_id``), uploaded with purpose
``batch`` and submitted to ``/v1/batches``. The run follows the batch to its end, then
matches the output and error files back to cases by ``custom_id``. Grading, gates and
reports are the same as in live mode; judge graders, whose input is the models' answers,
send their calls in a second batch.

The batch id is kept in ``.pytest-ft/batches/<key>.json``, keyed by the input's content,
so a run interrupted while waiting follows the same batch when run again instead of
paying for a second one, and ``--ft-batch-submit-only`` can submit now and let a later
run collect. Every call (upload, create, each status poll, the downloads) is recorded in
``cassettes/<suite>.batch-<key>.yaml``, so a batch run replays offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx2

from ..files import write_atomic
from ..recording.cassette import REPLAYED_HEADER, CaseCassette, current_cassette
from .runner import (
    JUDGE_PARAMS,
    Answer,
    ApiError,
    CaseJob,
    CaseResult,
    ModelRef,
    Runner,
    chat_body,
    grade_case,
    judge_ref,
    new_result,
    record_answers,
)

TERMINAL = {"completed", "failed", "expired", "cancelled"}
EXPLAINED = {
    "failed": "the batch failed validation",
    "expired": "the batch did not finish within its 24-hour window; requests it did not run are errors",
    "cancelled": "the batch was cancelled; requests it did not run are errors",
}
BOUNDARY = "pytest-ft-batch-input"  # fixed, so the upload's body is the same on replay


class BatchError(Exception):
    """The batch as a whole failed; every request in it is an error with this message."""


@dataclass
class Pending:
    """A case whose requests were submitted (``--ft-batch-submit-only``) and not yet collected."""

    batch_id: str


@dataclass
class _Line:
    custom_id: str
    job: CaseJob
    ref: ModelRef
    body: dict
    future: asyncio.Future | None = None
    result: CaseResult | None = None


@dataclass
class BatchRun:
    runner: Runner
    suite: str
    jobs: list[CaseJob]
    state_dir: Path
    cassette_dir: Path | None
    poll_interval: float = 30.0
    submit_only: bool = False
    say: Callable[[str], None] = print
    batch_ids: list[str] = field(default_factory=list)

    async def run(self) -> dict[str, CaseResult | Pending]:
        results = {job.case_id: new_result(job, batch=True) for job in self.jobs}
        lines = [_Line(f"{index}:{ref.role}" + (f"#{sample}" if job.repeat > 1 else ""), job, ref,
                       chat_body(ref, job.messages, job.params))
                 for index, job in enumerate(self.jobs) for ref in job.models for sample in range(job.repeat)]
        answers = await self._send(lines, "models")
        if answers is None:
            return {job.case_id: Pending(", ".join(self.batch_ids)) for job in self.jobs}
        by_outcome: dict[tuple[str, str], list] = {}
        for line in lines:
            by_outcome.setdefault((line.job.case_id, line.ref.role), []).append(answers[line.custom_id])
        for (case_id, role), got in by_outcome.items():
            record_answers(results[case_id].models[role], got)
        await self._grade(results)
        return results

    async def _grade(self, results: dict[str, CaseResult]) -> None:
        """Grade every case; judge calls wait until all are asked, then go as one batch."""
        waiting: list[_Line] = []

        def judge_for(job: CaseJob, result: CaseResult):
            if job.judge is None:
                return None

            async def judge(messages: list[dict], model: str | None = None) -> str:
                ref = judge_ref(job, model)
                line = _Line(f"judge-{len(waiting)}", job, ref, chat_body(ref, messages, JUDGE_PARAMS),
                             asyncio.get_running_loop().create_future(), result)
                waiting.append(line)
                answer = await line.future
                result.judge_usage.add(answer.usage)
                if model:
                    result.judge_model = model
                return answer.text

            return judge

        tasks = [asyncio.ensure_future(grade_case(job, results[job.case_id], judge_for(job, results[job.case_id])))
                 for job in self.jobs]
        round_ = 0
        while True:
            await _settle(tasks, waiting)
            if not waiting:
                break
            round_ += 1
            asked, waiting[:] = list(waiting), []
            for number, line in enumerate(asked):
                line.custom_id = f"judge{round_}-{number}"
            answers = await self._send(asked, f"judge round {round_}")
            for line in asked:
                answer = answers[line.custom_id] if answers is not None else ApiError("judge batch not collected")
                if isinstance(answer, Answer):
                    line.future.set_result(answer)
                else:
                    line.future.set_exception(answer)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)

    # -- one batch per endpoint ------------------------------------------------------------------

    async def _send(self, lines: list[_Line], label: str) -> dict[str, Answer | ApiError] | None:
        by_endpoint: dict[Any, list[_Line]] = {}
        for line in lines:
            by_endpoint.setdefault(line.ref.endpoint, []).append(line)
        answers: dict[str, Answer | ApiError] = {}
        for group in by_endpoint.values():
            got = await self._one_batch(group, label)
            if got is None:
                return None
            answers.update(got)
        return answers

    async def _one_batch(self, lines: list[_Line], label: str) -> dict[str, Answer | ApiError] | None:
        data = "".join(json.dumps({"custom_id": line.custom_id, "method": "POST", "url": "/v1/chat/completions",
                                   "body": line.body}, sort_keys=True, ensure_ascii=False) + "\n"
                       for line in lines).encode()
        ref = lines[0].ref
        key = hashlib.sha256(data).hexdigest()[:16]
        cassette = None
        if self.runner.record_mode and self.cassette_dir is not None:
            cassette = CaseCassette.open(self.cassette_dir / f"{self.suite}.batch-{key}.yaml",
                                         self.runner.record_mode, f"batch {key}")
        token = current_cassette.set(cassette)
        try:
            return await self._follow(ref, lines, data, key, label)
        except BatchError as exc:
            return {line.custom_id: ApiError(f"{line.ref.role} model {line.ref.model!r}: {exc}") for line in lines}
        finally:
            current_cassette.reset(token)
            if cassette is not None:
                cassette.save(complete=False)  # keep upload and create: a fresh clone replays them

    async def _follow(self, ref: ModelRef, lines: list[_Line], data: bytes, key: str, label: str):
        state_file = self.state_dir / "batches" / f"{key}.json"
        state = _read_state(state_file)
        if state and state.get("base_url") != ref.endpoint.base_url:
            state = None  # submitted to another endpoint: that batch id means nothing here
        if state:
            batch_id = state["batch_id"]
            self.say(f"{self.suite}: following batch {batch_id} ({label}) submitted earlier")
        else:
            upload = await self._call(ref, lambda c: c.files.with_raw_response.create(
                file=(f"{self.suite}-{key}.jsonl", data, "application/jsonl"), purpose="batch",
                extra_headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}))
            created = await self._call(ref, lambda c: c.post("/batches", cast_to=httpx2.Response, body={
                "input_file_id": upload["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h",
                "metadata": {"pytest_ft_suite": self.suite[:500], "pytest_ft_key": key}}))
            batch_id = created["id"]
            _write_state(state_file, {"batch_id": batch_id, "suite": self.suite, "requests": len(lines),
                                      "base_url": ref.endpoint.base_url})
            self.say(f"{self.suite}: submitted batch {batch_id} ({label}, {len(lines)} requests, "
                     f"completion window 24h)")
        self.batch_ids.append(batch_id)
        if self.submit_only:
            self.say(f"{self.suite}: not waiting (--ft-batch-submit-only); run the same command again to collect")
            return None
        last = None
        while True:
            batch, replayed = await self._call(ref, lambda c: c.get(f"/batches/{batch_id}", cast_to=httpx2.Response),
                                               with_replayed=True)
            status = str(batch.get("status"))
            counts = batch.get("request_counts") or {}
            line = (f"{self.suite}: batch {batch_id} {status} "
                    f"({counts.get('completed', 0)}/{counts.get('total', len(lines))} done, {counts.get('failed', 0)} failed)")
            if line != last:
                self.say(line)
                last = line
            if status in TERMINAL:
                break
            if not replayed:
                await asyncio.sleep(self.poll_interval)
        if status != "completed":
            if status == "failed":
                state_file.unlink(missing_ok=True)
                raise BatchError(f"batch {batch_id} failed: {_batch_errors(batch)}")
            state_file.unlink(missing_ok=True)
            self.say(f"{self.suite}: {EXPLAINED[status]}")
        answers: dict[str, Answer | ApiError] = {}
        for file_key in ("output_file_id", "error_file_id"):
            if batch.get(file_key):
                text = await self._call(ref, lambda c: c.get(f"/files/{batch[file_key]}/content",
                                                             cast_to=httpx2.Response), raw=True)
                answers.update(self._parse_results(text, lines, replayed))
        missing = (f"not run: {EXPLAINED[status]}" if status != "completed"
                   else f"batch {batch_id} returned no result for this request")
        for l in lines:
            answers.setdefault(l.custom_id, ApiError(f"{l.ref.role} model {l.ref.model!r}: {missing}"))
        return answers

    def _parse_results(self, text: str, lines: list[_Line], replayed: bool) -> dict[str, Answer | ApiError]:
        by_id = {line.custom_id: line for line in lines}
        answers: dict[str, Answer | ApiError] = {}
        for raw in text.splitlines():
            if not raw.strip():
                continue
            entry = json.loads(raw)
            line = by_id.get(entry.get("custom_id"))
            if line is None:
                continue
            where = f"{line.ref.role} model {line.ref.model!r}"
            response = entry.get("response") or {}
            body = response.get("body") or {}
            error = entry.get("error") or (body.get("error") if isinstance(body, dict) else None)
            if error or response.get("status_code", 200) >= 400:
                error = error or {}
                kind = error.get("code") or error.get("type") or "error"
                status = f"HTTP {response['status_code']}" if response.get("status_code") else "not run"
                answers[line.custom_id] = ApiError(f"{where}: batch request failed: {status}: "
                                                   f"{error.get('message', 'no message')} ({kind})")
                continue
            try:
                answers[line.custom_id] = Runner._answer(line.ref, body, replayed=replayed)
            except ApiError as exc:
                answers[line.custom_id] = exc
        return answers

    async def _call(self, ref: ModelRef, send, *, raw: bool = False, with_replayed: bool = False):
        async def http(client):
            response = await send(client)
            return getattr(response, "http_response", response)

        try:
            response = await self.runner.request(ref, http)
        except ApiError as exc:  # a control call, not the model's: drop "base model 'x': "
            raise BatchError(str(exc).split(": ", 1)[-1]) from None
        replayed = REPLAYED_HEADER in response.headers
        if raw:
            return response.text
        try:
            data = response.json()
        except ValueError as exc:
            raise BatchError(f"unexpected answer from the batch API: {response.text[:200]!r}") from exc
        return (data, replayed) if with_replayed else data


async def _settle(tasks: list[asyncio.Future], waiting: list) -> None:
    """Let the grading tasks run until each is done or waits for a judge answer.

    Graders other than the judge do no I/O, so the tasks stop making progress within a few
    turns of the loop; a grader that does wait on something else only costs an extra round.
    """
    still = 0
    state = None
    while still < 5 and not all(t.done() for t in tasks):
        await asyncio.sleep(0)
        now = (sum(t.done() for t in tasks), len(waiting))
        still = still + 1 if now == state else 0
        state = now


def _batch_errors(batch: dict) -> str:
    errors = (batch.get("errors") or {}).get("data") or []
    if not errors:
        return "no reason given"
    return "; ".join(f"{'line ' + str(e['line']) + ': ' if e.get('line') else ''}{e.get('message', '')}"
                     f" ({e.get('code', 'error')})" for e in errors[:5])


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_state(path: Path, state: dict) -> None:
    write_atomic(path, json.dumps(state), durable=True)
