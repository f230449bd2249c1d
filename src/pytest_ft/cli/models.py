"""``pytest-ft models``: the fine-tuned models an API key can see, and when each stops answering.

A fine-tuned model retires with its base, and with it goes the only exact record of how it
answered. This command lists the models from two places, merged by id: ``GET /models`` (the
models the key may call, which include those tuned by jobs no longer listed) and every page
of ``GET /fine_tuning/jobs`` (which gives each model its base and the day it was tuned). Each
gets its shutdown date from :mod:`pytest_ft.report.retirement`, and a warning when that is
under :data:`~pytest_ft.report.retirement.WARN_DAYS` days away, while there is still time to
record its answers.

Exit codes: 0 when the listing worked (whatever it found), 1 when the API failed, 2 for a
usage error (an unreadable ``--retirements`` file, a bad ``--today``).
"""

from __future__ import annotations

import argparse
import datetime
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tabulate import tabulate

from ..report.formats import fmt_in_days
from ..report.pricing import fine_tuned_base
from ..report.retirement import (
    FINE_TUNING_JOBS_END,
    Retirement,
    RetirementCalendar,
    RetirementFileError,
    warning,
)
from ..training.api import Api, display_url, make_client
from ..training.errors import JobError
from ..training.job_info import as_int, as_str
from ..training.remote import list_raw
from .arguments import add_endpoint
from .errors import guarded

if TYPE_CHECKING:
    import openai

OPENAI_HOSTS = frozenset({"api.openai.com"})
# Every page of jobs, yet bounded: a server that always answers has_more cannot keep the command running.
MAX_JOB_PAGES = 1000


@dataclass
class TunedModel:
    """A fine-tuned model as the API describes it: from ``/models``, from its job, or both."""

    id: str
    base: str | None = None
    created: int | None = None
    job: str | None = None


def _is_tuned(model: dict, orgs: set[str]) -> bool:
    """An ``ft:`` id, or a model owned by an organization or user rather than by the provider.

    OpenAI's own models are owned by ``system``, ``openai`` or ``openai-internal``; a vLLM or local
    server owns its models under its own name (``vllm``, ``pytest-ft``), which is no organization.
    """
    owner = as_str(model.get("owned_by")) or ""
    return model["id"].startswith("ft:") or owner in orgs or owner.startswith(("org-", "user-"))


def list_tuned_models(client: openai.OpenAI) -> list[TunedModel]:
    """The fine-tuned models the key can see, from ``/models`` and every page of jobs, merged by id."""
    api = Api(client)
    what = "listing models"
    listed = api.get("/models", what=what).get("data")
    jobs = list_raw(api, limit=MAX_JOB_PAGES * 100, max_pages=MAX_JOB_PAGES)
    orgs = {org for org in (as_str(j.get("organization_id")) for j in jobs) if org}
    found: dict[str, TunedModel] = {}
    for model in listed if isinstance(listed, list) else []:
        if isinstance(model, dict) and as_str(model.get("id")) and _is_tuned(model, orgs):
            found[model["id"]] = TunedModel(id=model["id"], base=fine_tuned_base(model["id"]),
                                            created=as_int(model.get("created")))
    for job in jobs:
        model_id = as_str(job.get("fine_tuned_model"))
        if job.get("status") != "succeeded" or not model_id:
            continue
        entry = found.setdefault(model_id, TunedModel(id=model_id))
        entry.base = as_str(job.get("model")) or entry.base or fine_tuned_base(model_id)
        entry.created = as_int(job.get("created_at")) or entry.created
        entry.job = as_str(job.get("id"))
    return list(found.values())


def _date(ts: int | None) -> str | None:
    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).date().isoformat() if ts else None


def _describe(model: TunedModel, retirement: Retirement | None, today: datetime.date) -> dict[str, Any]:
    return {"model": model.id, "base": model.base, "created": _date(model.created), "job": model.job,
            "retires": retirement.retires.isoformat() if retirement else None,
            "days_left": retirement.days_left(today) if retirement else None,
            "source": retirement.source if retirement else None,
            "warning": warning(retirement, today) if retirement else None}


def jobs_end_line(today: datetime.date) -> str:
    """The sentence about OpenAI's last day for creating fine-tuning jobs, seen from ``today``."""
    cutoff = FINE_TUNING_JOBS_END
    days = (cutoff.on - today).days
    if days < 0:
        return (f"OpenAI stopped {cutoff.what} on {cutoff.on.isoformat()}: no model can be tuned there any more "
                f"({cutoff.source})")
    return (f"OpenAI stops {cutoff.what} on {cutoff.on.isoformat()} ({fmt_in_days(days)}): retrain or tune a replacement "
            f"before then ({cutoff.source})")


def _is_openai(client: openai.OpenAI) -> bool:
    return (urlsplit(str(client.base_url)).hostname or "") in OPENAI_HOSTS


def _cmd_models(args: argparse.Namespace) -> int:
    calendar = RetirementCalendar.from_file(args.retirements)
    client = make_client(args.base_url, api_key_env=args.api_key_env)
    models = list_tuned_models(client)
    today = args.today or datetime.date.today()
    rows = [_describe(m, calendar.lookup(m.id), today) for m in models]
    rows.sort(key=lambda r: (r["retires"] is None, r["retires"] or "", r["model"]))
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if rows:
        print(tabulate([[r["model"], r["base"] or "-", r["created"] or "-", r["retires"] or "unknown",
                         "-" if r["days_left"] is None else r["days_left"]] for r in rows],
                       headers=["model", "base", "created", "retires", "days left"],
                       colalign=("left", "left", "left", "left", "right")))
        for row in rows:
            if row["warning"]:
                print(f"warning: {row['warning']}")
    else:
        print(f"no fine-tuned models visible to this key on {display_url(client.base_url)}")
    if _is_openai(client):
        print(jobs_end_line(today))
    return 0


def _date_arg(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def register_cli(subparsers: Any) -> None:
    """Add ``models`` to ``subparsers``."""
    p = subparsers.add_parser(
        "models", help="the fine-tuned models this API key can see, and when each retires",
        description="List the fine-tuned models the API key can see (GET /models and every page of "
                    "GET /fine_tuning/jobs), with the day each retires (with its base) and a warning for those "
                    "retiring within 90 days: record their answers while they still answer.")
    add_endpoint(p)
    p.add_argument("--json", action="store_true", help="print a JSON list for machines instead of the table")
    p.add_argument("--retirements", metavar="FILE",
                   help="a YAML/JSON file of retirement dates overriding or extending the built-in ones "
                        "({MODEL: {retires: YYYY-MM-DD, source, note}}; the key ft:BASE dates every model tuned "
                        "from BASE)")
    p.add_argument("--today", type=_date_arg, metavar="YYYY-MM-DD",
                   help="count the days left from this date instead of today (for planning and tests)")
    p.set_defaults(func=guarded("models", _cmd_models, {RetirementFileError: 2, JobError: 1}))
