"""Train, then gate, in one ``pytest`` command.

A suite (or ``--ft-train``) can name its training data instead of a tuned model. At
collection the fine-tuning job for exactly that data, base model and parameters is found
(by its content hash: the local state file, then the job's metadata) and waited for; the
model it produced becomes the suite's tuned model. A new job, which costs money, is
launched only with ``--ft-launch``, and never in replay-only mode
(``--ft-record-mode=none``), where the model comes from the state file alone, with no
network at all.

The job (its id and trained tokens) travels with the suite's results, so the report can
put the training cost next to the gain: the cost-benefit of fine-tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..run.runner import Endpoint
from . import jobs


class TrainingError(Exception):
    """The tuned model could not be had from the training data; the message says why."""


def tuned_model_from_training(spec: dict[str, Any], *, base_model: str, endpoint: Endpoint,
                              state_dir: Path, allow_launch: bool, offline: bool, poll_interval: float,
                              say: Callable[[str], None]) -> dict[str, Any]:
    """The fine-tuned model for ``spec`` (``file``, optional ``validation_file``, ``suffix``,
    ``method``, ``seed``, ``hyperparameters``): ``{"model", "job_id", "base_model", "trained_tokens",
    "train_file", "n_epochs"}``."""
    train, val = Path(spec["file"]), Path(spec["validation_file"]) if spec.get("validation_file") else None
    params = dict(base_model=base_model, train_file=train, val_file=val, method=spec.get("method", "supervised"),
                  hyperparameters=spec.get("hyperparameters"), suffix=spec.get("suffix"), seed=spec.get("seed"))
    try:
        content_hash = jobs.job_hash(**params)
    except OSError as exc:
        raise TrainingError(f"cannot read the training data {train}: {exc.strerror or exc}") from None
    if offline:
        entry = jobs.known_job(content_hash, state_dir)
        if not entry or not entry.get("fine_tuned_model"):
            raise TrainingError(
                f"no fine-tuned model is known for {train} + {base_model} in {state_dir / 'jobs.json'}, and replay-only "
                f"mode does not reach the API: run once with network (and --ft-launch if no job exists yet)")
        say(f"tuned model {entry['fine_tuned_model']} from job {entry['job_id']} (state file)")
        return {"model": entry["fine_tuned_model"], "job_id": entry["job_id"], "base_model": base_model,
                "trained_tokens": entry.get("trained_tokens"), "train_file": str(train),
                "n_epochs": (entry.get("hyperparameters") or {}).get("n_epochs")}
    client = jobs.make_client(endpoint.base_url, api_key_env=endpoint.api_key_env)
    try:
        job = jobs.ensure_job(client, **params, allow_launch=allow_launch, state_dir=state_dir, log=say,
                              poll_interval=poll_interval)
        if not job.terminal:
            say(f"waiting for job {job.id} ({job.status}); interrupting leaves it running")
            job = jobs.wait_for_job(client, job.id, poll_interval=poll_interval,
                                    on_event=lambda event: say(f"{job.id}: {event.get('message', '')}"))
            jobs.record_job(job, state_dir)
    except jobs.LaunchNotAllowed as exc:
        raise TrainingError(f"{exc}; pass --ft-launch to launch it (a paid fine-tuning job)") from None
    except jobs.JobError as exc:
        raise TrainingError(str(exc)) from None
    finally:
        client.close()
    if not job.succeeded or not job.fine_tuned_model:
        reason = job.error.describe() if job.error else "no fine-tuned model"
        raise TrainingError(f"fine-tuning job {job.id} ended {job.status}: {reason}")
    return {"model": job.fine_tuned_model, "job_id": job.id, "base_model": job.base_model or base_model,
            "trained_tokens": job.trained_tokens, "train_file": str(train), "n_epochs": job.n_epochs}
