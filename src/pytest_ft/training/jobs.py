"""Launch a fine-tuning job, or reuse the one already launched for the same data and parameters.

The workflow pytest-ft serves is: prepare the data → upload it → create the job → follow it →
evaluate the tuned model against its base → decide whether it pays. This module covers the
launch: it validates the data (:func:`pytest_ft.data.validate`), uploads the files and creates
the job (hyperparameters inside ``method``, the current API shape).

**Idempotence.** A job is paid for, so it is identified by a content hash: sha256 of the training
(and validation) file bytes, the base model, the method, the hyperparameters, the suffix and the
seed. The hash is stored in the job's ``metadata`` (``pytest_ft_hash``) and in the local state
file (:mod:`.state`), so the same command run again reuses the job instead of paying for a
second one; ``force=True`` (``--force``) launches a new one. Uploaded files are remembered too,
so a retry after a failure does not upload them again.

The whole Python API (used by the pytest fixtures and the cost report) is importable from here:

* :func:`ensure_job` - reuse the job for these data and parameters, or launch one;
* :func:`wait_for_job` - follow a job until it ends (:mod:`.follow`);
* :func:`get_job`, :func:`list_jobs`, :func:`list_events`, :func:`list_checkpoints`, :func:`cancel_job`
  (:mod:`.remote`);
* :func:`training_cost` - trained tokens × the base model's training price;
* :func:`job_hash`, :func:`make_client`, :func:`evaluate_command`, :func:`known_job`, :func:`record_job`;
* :class:`JobInfo`, :class:`JobFailure`, :class:`Progress`, :class:`JobError`, :class:`LaunchNotAllowed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import openai

from .. import redact
from .api import Api, error_fields, make_client, retry_delay
from .errors import JobError, LaunchNotAllowed
from .follow import DEFAULT_POLL_INTERVAL, Progress, wait_for_job
from .job_info import (
    HASH_KEY,
    TERMINAL_STATUSES,
    JobFailure,
    JobInfo,
    as_int,
    as_str,
    evaluate_command,
    training_cost,
)
from .remote import (
    cancel_job,
    get_job,
    list_checkpoints,
    list_events,
    list_jobs,
    list_raw,
    read_job,
)
from .state import DEFAULT_STATE_DIR, State, known_job, record_job

__all__ = [
    "JobError", "LaunchNotAllowed", "JobFailure", "JobInfo", "Progress", "ensure_job", "wait_for_job",
    "get_job", "list_jobs", "list_events", "list_checkpoints", "cancel_job", "training_cost", "job_hash",
    "make_client", "evaluate_command", "known_job", "record_job", "TERMINAL_STATUSES", "DEFAULT_POLL_INTERVAL",
    "DEFAULT_STATE_DIR", "HASH_KEY",
]

METHODS = ("supervised", "dpo")
_NOT_REUSABLE = frozenset({"cancelled", "canceled", "deleted", "expired"})
_FILE_READY = frozenset({"processed", "succeeded"})
_FILE_FAILED = frozenset({"error", "failed", "deleted"})

FILE_NOT_READY_RETRIES = 5
FINE_TUNING_GUIDE = "https://platform.openai.com/docs/guides/fine-tuning"


def job_hash(*, base_model: str, train_file: str | os.PathLike, val_file: str | os.PathLike | None = None,
             method: str = "supervised", hyperparameters: Mapping[str, Any] | None = None,
             suffix: str | None = None, seed: int | None = None) -> str:
    """The content hash identifying a job: sha256 over the data bytes and every parameter.

    Equal data and parameters give the equal hash whatever the files are called or where they are.
    Hyperparameters that are None or ``"auto"`` count as not given.
    """
    spec = {
        "v": 1, "base_model": base_model, "method": method, "hyperparameters": _clean_hp(hyperparameters),
        "suffix": suffix or None, "seed": seed, "train": _file_sha256(Path(train_file)),
        "val": _file_sha256(Path(val_file)) if val_file else None,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise JobError(f"data file not found: {path}") from None
    except OSError as exc:
        raise JobError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _clean_hp(hyperparameters: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in sorted((hyperparameters or {}).items()) if v is not None and v != "auto"}


def check_data(train_file: Path, val_file: Path | None, base_model: str, method: str,
               max_warnings: int = 10) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the data files, one ``file:line: kind: message`` string each.

    Any error forbids launching. A model whose tokenizer is unknown (an open model on a local
    backend) is checked with the default model's tokenizer: the format checks are the same.
    """
    from .. import data
    from ..data import tokens

    errors: list[str] = []
    warnings: list[str] = []
    for path in filter(None, (train_file, val_file)):
        try:
            try:
                report = data.validate(path, base_model, progress=False)
            except tokens.UnknownModelError:
                report = data.validate(path, data.DEFAULT_MODEL, progress=False)
                warnings.append(f"{path}: tokenizer of {base_model!r} unknown; token counts use "
                                f"{data.DEFAULT_MODEL}'s")
        except data.DataError as exc:
            errors.append(f"{path}: {exc}")
            continue
        for p in report.problems:
            line = f"{path}:{p.line if p.line is not None else '-'}: {p.kind}: {p.message}"
            if p.severity == "error":
                errors.append(line)
            elif len(warnings) < max_warnings:
                warnings.append(line)
        if report.errors and report.problems_truncated:
            errors.append(f"{path}: ... {sum(report.errors.values())} errors in all "
                          f"(pytest-ft data validate {path} lists them)")
        wanted = "dpo" if method == "dpo" else "chat"
        if report.ok and report.format and report.format != wanted:
            names = {"dpo": "preference (DPO)", "chat": "chat"}
            errors.append(f"{path}: --method {method} needs {names[wanted]} examples, but the file holds "
                          f"{names.get(report.format, report.format)} examples")
    return errors, warnings


def ensure_job(client: openai.OpenAI, *, base_model: str, train_file: str | os.PathLike,
               val_file: str | os.PathLike | None = None, suffix: str | None = None,
               hyperparameters: Mapping[str, Any] | None = None, method: str = "supervised",
               seed: int | None = None, force: bool = False, allow_launch: bool = True,
               state_dir: str | os.PathLike = DEFAULT_STATE_DIR, validate: bool = True,
               poll_interval: float = DEFAULT_POLL_INTERVAL, log: Callable[[str], None] | None = None) -> JobInfo:
    """Reuse the fine-tuning job for these data and parameters, or launch one.

    The job is looked up by its :func:`job_hash`: first in ``state_dir/jobs.json`` (for this
    endpoint), then among the endpoint's jobs by ``metadata.pytest_ft_hash``. A cancelled, deleted
    or expired job is not reused; a failed one is (its error tells the user what to fix: changed
    data make a new hash, or ``force=True`` launches anew). The returned :class:`JobInfo` has
    ``reused=True`` when found.

    Launching (only when nothing matches, or ``force``) validates the data (``validate=True``:
    a :class:`JobError` listing the errors with their line numbers), uploads the files (purpose
    ``fine-tune``; files uploaded before from this directory are reused), and creates the job with
    the hyperparameters inside ``method`` and the hash in ``metadata``. It is recorded in the state
    file at once. With ``allow_launch=False`` it raises :class:`LaunchNotAllowed` instead of
    launching (a job is paid). The whole call holds the state file's lock, so concurrent calls
    launch one job. ``log`` receives progress lines ("uploading ...", "reusing job ...").

    ``hyperparameters``: ``n_epochs``, ``batch_size``, ``learning_rate_multiplier`` (and ``beta``
    for ``method="dpo"``); None or ``"auto"`` values are left to the API.
    """
    if method not in METHODS:
        raise JobError(f"unknown method {method!r}: choose {' or '.join(METHODS)}")
    say = log or (lambda _msg: None)
    train, val = Path(train_file), Path(val_file) if val_file else None
    content_hash = job_hash(base_model=base_model, train_file=train, val_file=val, method=method,
                            hyperparameters=hyperparameters, suffix=suffix, seed=seed)
    api = Api(client)
    state = State(state_dir)

    def record(job: JobInfo) -> None:
        state.put_job({"hash": content_hash, "base_url": api.base_url, "job_id": job.id, "base_model": job.base_model,
                       "train_file": str(train), "val_file": str(val) if val else None, "method": method,
                       "hyperparameters": _clean_hp(hyperparameters), "suffix": suffix, "seed": seed,
                       "created_at": job.created_at, "status": job.status, "fine_tuned_model": job.fine_tuned_model})

    with state.locked():
        if not force:
            entry = state.find_job(content_hash, api.base_url)
            if entry:
                try:
                    job = read_job(api, entry["job_id"], reused=True)
                except JobError as exc:
                    if exc.status != 404:
                        raise
                    state.forget_job(entry["job_id"])
                else:
                    if job.status not in _NOT_REUSABLE:
                        say(f"reusing job {job.id} ({job.status}): same data and parameters (state file {state.path})")
                        return job
            found = _find_by_metadata(api, content_hash)
            if found:
                job = JobInfo.from_json(found, reused=True)
                record(job)
                say(f"reusing job {job.id} ({job.status}): found by its metadata {HASH_KEY}={content_hash[:12]}...")
                return job
        if not allow_launch:
            raise LaunchNotAllowed(
                f"no fine-tuning job on {api.base_url} matches {train} + {base_model} (hash {content_hash[:12]}), "
                f"and launching one (a paid job) was not allowed", content_hash=content_hash)
        if validate:
            problems, _warnings = check_data(train, val, base_model, method)
            if problems:
                raise JobError("the data has errors; fix them before launching a job:\n  " + "\n  ".join(problems))
        train_id = _upload(api, state, train, say, poll_interval)
        val_id = _upload(api, state, val, say, poll_interval) if val else None
        payload: dict[str, Any] = {"model": base_model, "training_file": train_id,
                                   "method": _method_object(method, hyperparameters),
                                   "metadata": {HASH_KEY: content_hash}}
        if val_id:
            payload["validation_file"] = val_id
        if suffix:
            payload["suffix"] = suffix
        if seed is not None:
            payload["seed"] = seed
        job = JobInfo.from_json(_create(api, payload, train=train, val=val, poll_interval=poll_interval, log=say))
        if not job.id:
            raise JobError(f"creating the fine-tuning job: {api.base_url} returned no job id")
        record(job)
        return job


def _method_object(method: str, hyperparameters: Mapping[str, Any] | None) -> dict[str, Any]:
    hp = _clean_hp(hyperparameters)
    return {"type": method, method: {"hyperparameters": hp}} if hp else {"type": method}


def _find_by_metadata(api: Api, content_hash: str, *, created_since: float | None = None) -> dict | None:
    """The newest reusable job whose metadata carries this hash (created since then, if given)."""
    metadata = {HASH_KEY: content_hash}
    try:
        jobs = list_raw(api, limit=100, metadata=metadata)
    except JobError as exc:
        if exc.status != 400:
            raise
        jobs = list_raw(api, limit=500, metadata=metadata)  # the server refuses the filter: scan the list
        jobs = [j for j in jobs if (j.get("metadata") or {}).get(HASH_KEY) == content_hash]
    for job in jobs:  # newest first
        if created_since is not None and (as_int(job.get("created_at")) or 0) < created_since:
            continue
        if str(job.get("status")) not in _NOT_REUSABLE:
            return job
    return None


def _upload(api: Api, state: State, path: Path, log: Callable[[str], None], poll_interval: float) -> str:
    """The file's id on the endpoint: the one uploaded before from here if it is still good, else a new upload."""
    sha = _file_sha256(path)
    known = state.find_file(sha, api.base_url)
    if known:
        try:
            info = api.get(f"/files/{known}", what=f"checking the uploaded file {known}")
            if str(info.get("status")) not in _FILE_FAILED:
                log(f"{path}: already uploaded as {known}")
                return known
        except JobError:
            pass
        state.forget_file(known)
    size = path.stat().st_size
    log(f"uploading {path} ({size:,} bytes)...")
    info = api.upload(path, what=f"uploading {path}")
    file_id = as_str(info.get("id"))
    if not file_id:
        raise JobError(f"uploading {path}: {api.base_url} returned no file id")
    state.put_file(sha, api.base_url, file_id, path.name)
    # Wait (a little) for the API to process the file; job creation retries if it is not ready yet.
    for attempt in range(30):
        status = str(info.get("status") or "processed")
        if status in _FILE_FAILED:
            details = redact.scrub(str(info.get("status_details") or "no details"))
            state.forget_file(file_id)
            failure = JobFailure.from_error({"message": details, "param": "training_file"})
            line = f" (line {failure.line})" if failure.line else ""
            raise JobError(f"the API rejected {path}{line}: {details}")
        if status in _FILE_READY or status not in ("uploaded", "pending", "running", "processing"):
            break
        api.sleep(min(poll_interval, 2.0 ** attempt))
        info = api.get(f"/files/{file_id}", what=f"checking the uploaded file {file_id}")
    return file_id


def _is_file_not_ready(exc: openai.APIStatusError) -> bool:
    if exc.status_code != 400:
        return False
    body = exc.body if isinstance(exc.body, dict) else {}
    code = str(body.get("code") or "")
    message = str(body.get("message") or "")
    return code in ("file_not_ready", "invalid_file_status") or bool(
        re.search(r"not (?:yet )?ready|still being processed|is being processed|processing", message, re.IGNORECASE))


def _model_not_fine_tunable(exc: openai.APIStatusError, model: str) -> bool:
    if exc.status_code not in (400, 404):
        return False
    body = exc.body if isinstance(exc.body, dict) else {}
    code, param, message = str(body.get("code") or ""), str(body.get("param") or ""), str(body.get("message") or "")
    return (param == "model" or code in ("model_not_available", "model_not_found", "invalid_model")
            or "fine-tun" in message.lower() and model in message)


def _create(api: Api, payload: dict, *, train: Path, val: Path | None, poll_interval: float,
            log: Callable[[str], None]) -> dict:
    """POST the job; a "file not ready" answer is retried a few times, then explained.

    A 5xx or a dropped connection is not retried blindly: the job may exist although the answer
    was lost, so the endpoint's jobs are searched for its hash first.
    """
    model = payload["model"]
    files = {"training_file": str(train), "validation_file": str(val) if val else None}
    not_ready: list[bool] = []

    def explain(exc: openai.APIStatusError) -> str | None:
        if _is_file_not_ready(exc):
            not_ready.append(True)
            return "file not ready"
        message, _, param = error_fields(exc)
        if _model_not_fine_tunable(exc, model):
            return (f"model {model!r} cannot be fine-tuned on {api.base_url}: {message}\n"
                    f"Pick a model that supports fine-tuning (e.g. gpt-4o-mini-2024-07-18 or "
                    f"gpt-4.1-mini-2025-04-14; see {FINE_TUNING_GUIDE}).")
        if exc.status_code == 400 and param in ("training_file", "validation_file"):
            body = exc.body if isinstance(exc.body, dict) else {"message": message, "param": param}
            failure = JobFailure.from_error(body)
            return f"creating the fine-tuning job: the API refused {files[param] or param}: " + failure.describe(files)
        return None

    lost = 0
    attempt = 0
    started = time.time() - 60  # server clocks differ a little; an older job with this hash is not ours
    while True:
        not_ready.clear()
        try:
            return api.post("/fine_tuning/jobs", payload, what="creating the fine-tuning job", explain=explain,
                            retry_server_errors=False)
        except JobError as exc:
            if exc.transient and lost < 3:  # was the job created?
                lost += 1
                api.sleep(retry_delay(lost - 1, None))
                found = _find_by_metadata(api, payload["metadata"][HASH_KEY], created_since=started)
                if found:
                    return found
                continue
            if not not_ready:
                raise
            attempt += 1
            if attempt > FILE_NOT_READY_RETRIES:
                raise JobError(
                    f"creating the fine-tuning job: the uploaded file is still being processed by {api.base_url} "
                    f"after {FILE_NOT_READY_RETRIES} retries. Run the same command again in a minute: the "
                    f"uploaded files are reused, nothing is uploaded twice.") from None
            log(f"the uploaded file is not ready yet; retrying ({attempt}/{FILE_NOT_READY_RETRIES})...")
            api.sleep(min(poll_interval, 2.0 ** (attempt - 1)))
