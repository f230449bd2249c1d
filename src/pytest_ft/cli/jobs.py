"""``pytest-ft train`` and ``pytest-ft jobs``: launch, follow, inspect and cancel fine-tuning jobs.

``train`` validates the data, launches (or reuses) the job and, with ``--wait``, follows it to
its end and prints the ``pytest --ft-model=...`` command that evaluates the model. The work is
done by :mod:`pytest_ft.training`; this module parses arguments and prints: tables for people,
``--json`` for machines, errors on stderr with exit code 2 (1 for a job that failed or was
cancelled, 130 when following is interrupted).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tabulate import tabulate

from .. import redact
from ..report.formats import fmt_cost
from ..report.pricing import PriceTable
from ..training.api import display_url, make_client
from ..training.cassette import recording
from ..training.errors import JobError
from ..training.follow import DEFAULT_POLL_INTERVAL, Follower, wait_for_job
from ..training.job_info import JobInfo, as_int, evaluate_command, training_cost
from ..training.jobs import METHODS, check_data, ensure_job
from ..training.remote import (
    cancel_job,
    get_job,
    list_checkpoints,
    list_events,
    list_jobs,
)
from ..training.state import DEFAULT_STATE_DIR, State, record_job
from .arguments import add_endpoint
from .errors import Interrupted, guarded

if TYPE_CHECKING:
    import openai


def _fmt_time(ts: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _fmt_int(value: int | None) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _fmt_usd(value: float | None) -> str:
    return "n/a" if value is None else f"${fmt_cost(value)}"


def _fmt_loss(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _job_json(job: JobInfo, args: argparse.Namespace) -> dict[str, Any]:
    return {"job": job.to_dict(), "evaluate": evaluate_command(job, base_url=args.base_url),
            "training_cost_usd": training_cost(job)}


def _base_url_option(args: argparse.Namespace) -> str:
    return f" --base-url {shlex.quote(args.base_url)}" if getattr(args, "base_url", None) else ""


def _resume_hint(job_id: str, args: argparse.Namespace) -> str:
    extra = _base_url_option(args)
    return (f"stopped following job {job_id}; it keeps running (Ctrl-C does not cancel it).\n"
            f"resume:  pytest-ft jobs wait {job_id}{extra}\n"
            f"cancel:  pytest-ft jobs cancel {job_id}{extra}")


def _local_files(state_dir: Path, job: JobInfo) -> dict[str, str | None]:
    """The local paths of the job's data, so a failing line is shown as ``train.jsonl:12``."""
    entry = State(state_dir).entry_for(job.id) or {}
    return {"training_file": entry.get("train_file") or job.training_file,
            "validation_file": entry.get("val_file") or job.validation_file}


def _finish(job: JobInfo, args: argparse.Namespace, *, quiet: bool = False) -> int:
    """Report a terminal job: the model and the pytest command, or why it did not succeed."""
    state_dir = Path(args.state_dir)
    record_job(job, state_dir)
    if job.succeeded:
        if not quiet:
            cost = training_cost(job)
            print(f"\nsucceeded: {job.fine_tuned_model}")
            print(f"  trained tokens: {_fmt_int(job.trained_tokens)}"
                  + (f", training cost ~{_fmt_usd(cost)}" if cost is not None else ""))
            print("evaluate it with:")
            print(f"  {evaluate_command(job, base_url=args.base_url)}")
        return 0
    if job.status == "failed":
        reason = (redact.scrub(job.error.describe(_local_files(state_dir, job))) if job.error
                  else "the API gave no reason")
        raise JobError(f"job {job.id} failed: {reason}\nFix the data or parameters and run again "
                       f"(changed data launch a new job; --force relaunches the same).", exit_code=1, job=job)
    if job.status in ("cancelled", "canceled"):
        raise JobError(f"job {job.id} was cancelled; run train with --force to launch it again", exit_code=1, job=job)
    raise JobError(f"job {job.id} ended with status {job.status!r} and no model", exit_code=1, job=job)


def _follow(client: openai.OpenAI, job_id: str, args: argparse.Namespace) -> JobInfo:
    follower = Follower(live=sys.stdout.isatty() and not args.json)
    callbacks = {} if args.json else {"on_event": follower.on_event, "on_poll": follower.on_poll}
    try:
        return wait_for_job(client, job_id, poll_interval=args.poll_interval, **callbacks)
    except KeyboardInterrupt:
        follower.close()
        print("\n" + _resume_hint(job_id, args), file=sys.stderr)
        raise Interrupted() from None
    finally:
        follower.close()


def _client(args: argparse.Namespace) -> openai.OpenAI:
    return make_client(args.base_url, api_key_env=args.api_key_env)


def _hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    hp = {"n_epochs": args.epochs, "batch_size": args.batch_size, "learning_rate_multiplier": args.lr_multiplier}
    if args.beta is not None:
        if args.method != "dpo":
            raise JobError("--beta applies to --method dpo only")
        hp["beta"] = args.beta
    return {k: v for k, v in hp.items() if v is not None}


def _cmd_train(args: argparse.Namespace) -> int:
    train, val = Path(args.train), Path(args.val) if args.val else None
    hp = _hyperparameters(args)
    out = sys.stderr if args.json else sys.stdout
    for path in filter(None, (train, val)):
        if not path.is_file():
            raise JobError(f"data file not found: {path}")
    problems, warnings = check_data(train, val, args.model, args.method)
    if problems:
        raise JobError("the data has errors; nothing was uploaded. Fix them first "
                       "(pytest-ft data validate FILE explains each kind):\n  " + "\n  ".join(problems))
    if warnings:
        print(f"data warnings ({len(warnings)}{'+' if len(warnings) >= 10 else ''}; "
              f"pytest-ft data validate FILE shows all):", file=out)
        for line in warnings:
            print(f"  {line}", file=out)
    client = _client(args)
    with recording(args.cassette, args.record_mode):
        job = ensure_job(client, base_model=args.model, train_file=train, val_file=val, suffix=args.suffix,
                         hyperparameters=hp, method=args.method, seed=args.seed, force=args.force,
                         state_dir=args.state_dir, validate=False, poll_interval=args.poll_interval,
                         log=lambda msg: print(msg, file=out))
        if not args.json:
            print(f"job: {job.id} ({job.status}{', reused' if job.reused else ''})")
        if args.wait and not job.terminal:
            if not args.json:
                print(f"following {job.id} (Ctrl-C stops following; the job keeps running)")
            reused = job.reused
            job = _follow(client, job.id, args)
            job.reused = reused
        elif not args.wait and not job.terminal and not args.json:
            print(f"follow it with: pytest-ft jobs wait {job.id}" + _base_url_option(args))
    if args.json:
        _print_json(_job_json(job, args))
    if job.terminal:
        return _finish(job, args, quiet=args.json)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    client = _client(args)
    with recording(args.cassette, args.record_mode):
        jobs = list_jobs(client, limit=args.limit)
    if args.json:
        _print_json([j.to_dict() for j in jobs])
        return 0
    if not jobs:
        print(f"no fine-tuning jobs on {display_url(client.base_url)}")
        return 0
    state = State(args.state_dir)
    rows = []
    for j in jobs:
        entry = state.entry_for(j.id) or {}
        rows.append([j.id, j.status, j.base_model or "-", j.fine_tuned_model or "-", _fmt_int(j.trained_tokens),
                     _fmt_time(j.created_at), entry.get("train_file") or "-"])
    print(tabulate(rows, headers=["job", "status", "base model", "fine-tuned model", "trained tokens", "created",
                                  "data (local)"], colalign=("left", "left", "left", "left", "right")))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    with recording(args.cassette, args.record_mode):
        job = get_job(client, args.job_id)
        checkpoints = list_checkpoints(client, args.job_id) if job.status == "succeeded" else []
    prices = PriceTable.from_file(args.prices) if args.prices else None
    cost = training_cost(job, prices=prices)
    if args.json:
        _print_json({"job": job.to_dict(), "checkpoints": checkpoints, "training_cost_usd": cost,
                     "evaluate": evaluate_command(job, base_url=args.base_url)})
        return 0
    hp = job.hyperparameters
    rows = [["job", job.id], ["status", job.status], ["base model", job.base_model or "-"],
            ["fine-tuned model", job.fine_tuned_model or "-"], ["method", job.method or "-"],
            ["epochs", hp.get("n_epochs", "-")], ["batch size", hp.get("batch_size", "-")],
            ["learning rate multiplier", hp.get("learning_rate_multiplier", "-")],
            ["trained tokens", _fmt_int(job.trained_tokens)], ["training cost", _fmt_usd(cost)],
            ["created", _fmt_time(job.created_at)], ["finished", _fmt_time(job.finished_at)],
            ["training file", job.training_file or "-"], ["validation file", job.validation_file or "-"],
            ["suffix", job.suffix or "-"], ["content hash", (job.content_hash or "-")[:16]]]
    if job.error:
        rows.append(["error", redact.scrub(job.error.describe(_local_files(Path(args.state_dir), job)))])
    print(tabulate(rows, tablefmt="plain"))
    if checkpoints:
        print("\ncheckpoints:")
        print(tabulate([[c.get("step_number", "-"), c.get("fine_tuned_model_checkpoint", "-"),
                         _fmt_loss((c.get("metrics") or {}).get("train_loss"))] for c in checkpoints],
                       headers=["step", "model", "train loss"]))
    command = evaluate_command(job, base_url=args.base_url)
    if command:
        print(f"\nevaluate it with:\n  {command}")
    return 0


def _cmd_events(args: argparse.Namespace) -> int:
    client = _client(args)
    with recording(args.cassette, args.record_mode):
        events = list_events(client, args.job_id, limit=args.limit)
    if args.json:
        _print_json(events)
        return 0
    if not events:
        print(f"no events for job {args.job_id}")
        return 0
    print(tabulate([[_fmt_time(as_int(e.get("created_at"))), e.get("level") or "-",
                     redact.scrub(str(e.get("message") or ""))] for e in events],
                   headers=["time", "level", "message"]))
    return 0


def _cmd_wait(args: argparse.Namespace) -> int:
    client = _client(args)
    with recording(args.cassette, args.record_mode):
        if not args.json:
            print(f"following {args.job_id} (Ctrl-C stops following; the job keeps running)")
        job = _follow(client, args.job_id, args)
    if args.json:
        _print_json(_job_json(job, args))
    return _finish(job, args, quiet=args.json)


def _cmd_cancel(args: argparse.Namespace) -> int:
    client = _client(args)
    with recording(args.cassette, args.record_mode):
        job = cancel_job(client, args.job_id)
    record_job(job, args.state_dir)
    if args.json:
        _print_json({"job": job.to_dict()})
    else:
        print(f"cancelled {job.id} (status: {job.status})")
    return 0


def _run(command: str, handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    return guarded(command, handler, {JobError: None})


def _endpoint_options(p: argparse.ArgumentParser, *, follow: bool = False) -> None:
    add_endpoint(p)
    p.add_argument("--json", action="store_true", help="print JSON for machines instead of tables")
    p.add_argument("--cassette", metavar="PATH", help="record the API calls into this vcrpy cassette, or replay them")
    p.add_argument("--record-mode", default="once", choices=("once", "new_episodes", "none", "all"),
                   help="vcrpy record mode for --cassette (default once: replay if it exists, else record)")
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), metavar="DIR",
                   help=f"where the launched jobs are remembered (default {DEFAULT_STATE_DIR}/)")
    if follow:
        p.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL, metavar="SECONDS",
                       help=f"seconds between polls while following (default {DEFAULT_POLL_INTERVAL:g})")


def register_cli(subparsers: Any) -> None:
    """Add ``train`` and ``jobs`` (``list``, ``status``, ``events``, ``wait``, ``cancel``) to ``subparsers``."""
    p = subparsers.add_parser(
        "train", help="validate the data, upload it and launch (or reuse) a fine-tuning job",
        description="Validate the data, upload it and create a fine-tuning job; print its id. The same command "
                    "run again (same data, model and parameters) reuses the job instead of paying for another. "
                    "With --wait, follow it to its end and print the pytest command that evaluates the model.")
    p.add_argument("--model", required=True, help="the base model to fine-tune (e.g. gpt-4o-mini-2024-07-18)")
    p.add_argument("--train", required=True, metavar="FILE", help="the training JSONL")
    p.add_argument("--val", metavar="FILE", help="the validation JSONL")
    p.add_argument("--suffix", help="added to the fine-tuned model's name (up to 64 characters)")
    p.add_argument("--epochs", type=int, metavar="N", help="number of epochs (default: the API's choice)")
    p.add_argument("--batch-size", type=int, metavar="N", help="batch size (default: the API's choice)")
    p.add_argument("--lr-multiplier", type=float, metavar="X", help="learning rate multiplier")
    p.add_argument("--beta", type=float, metavar="X", help="DPO beta (with --method dpo)")
    p.add_argument("--method", choices=METHODS, default="supervised", help="fine-tuning method (default supervised)")
    p.add_argument("--seed", type=int, metavar="N", help="the job's seed, for reproducibility")
    p.add_argument("--wait", action="store_true", help="follow the job to its end")
    p.add_argument("--force", action="store_true", help="launch a new job even if one with this content exists")
    _endpoint_options(p, follow=True)
    p.set_defaults(func=_run("train", _cmd_train))

    jobs = subparsers.add_parser("jobs", help="list, inspect, follow and cancel fine-tuning jobs",
                                 description="List, inspect, follow and cancel fine-tuning jobs.")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="COMMAND", required=True)
    q = sub.add_parser("list", help="the newest jobs")
    q.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    _endpoint_options(q)
    q.set_defaults(func=_run("jobs list", _cmd_list))
    q = sub.add_parser("status", help="one job: status, model, hyperparameters, tokens, cost, checkpoints")
    q.add_argument("job_id", metavar="ID")
    q.add_argument("--prices", metavar="FILE", help="a YAML/JSON price file overriding the built-in prices")
    _endpoint_options(q)
    q.set_defaults(func=_run("jobs status", _cmd_status))
    q = sub.add_parser("events", help="a job's events, oldest first")
    q.add_argument("job_id", metavar="ID")
    q.add_argument("--limit", type=int, default=100, help="the latest N events (default 100)")
    _endpoint_options(q)
    q.set_defaults(func=_run("jobs events", _cmd_events))
    q = sub.add_parser("wait", help="follow a job to its end (Ctrl-C stops following, not the job)")
    q.add_argument("job_id", metavar="ID")
    _endpoint_options(q, follow=True)
    q.set_defaults(func=_run("jobs wait", _cmd_wait))
    q = sub.add_parser("cancel", help="cancel a job")
    q.add_argument("job_id", metavar="ID")
    _endpoint_options(q)
    q.set_defaults(func=_run("jobs cancel", _cmd_cancel))
