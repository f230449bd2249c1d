"""Aggregate case results into the report: per-suite figures, flips, significance and gates.

The controller (the only process under xdist that sees every result) feeds each case's
record to :class:`Aggregator`; :func:`build_report` turns them into the one report every
renderer reads (``render/``: terminal, JSON, Markdown, HTML). Costs are computed here,
from recorded token usage and the price table, so a replayed run costs what the live run
did.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Iterable

from ..results import (
    CaseRecord,
    SuiteInfo,
    Verdict,
    agreement,
    case_verdict,
    flip,
    reference_flip,
)
from .baseline import compare, suite_key
from .gate import check_gate, run_passed
from .pricing import PriceTable
from .retirement import RetirementCalendar, warning
from .stats import position_bias, sign_test, suite_significance, win_rate

REPORT_VERSION = 1


class Aggregator:
    """Collects case records (and fixture calls) as they arrive, suite by suite, in arrival order."""

    def __init__(self) -> None:
        self.suites: dict[str, list[CaseRecord]] = {}  # by SuiteInfo.key, in the order suites first reported
        self.calls: list[dict] = []
        self.suite_errors: list[dict] = []
        self._infos: dict[str, SuiteInfo] = {}

    def add_case(self, record: CaseRecord | dict) -> None:
        """A case's record, or its JSON form as it arrives from an xdist worker."""
        if not isinstance(record, CaseRecord):
            record = CaseRecord.from_json(record, self._infos)
        self.suites.setdefault(record.suite.key, []).append(record)

    @property
    def cases(self) -> list[CaseRecord]:
        return [record for records in self.suites.values() for record in records]

    def add_calls(self, calls: Iterable[dict]) -> None:
        self.calls.extend(calls)

    def __bool__(self) -> bool:
        return bool(self.cases or self.calls or self.suite_errors)


def _cost(prices: PriceTable, model: str, usage: dict, missing: set[str], batch: bool = False) -> float | None:
    cost = prices.cost(model, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                       usage.get("cached_tokens", 0), batch=batch)
    if cost is None and usage.get("requests"):
        missing.add(model)
    return cost


def build_report(aggregator: Aggregator, prices: PriceTable, baseline: dict | None = None,
                 interrupted: str | None = None, retirements: RetirementCalendar | None = None,
                 today: _dt.date | None = None) -> dict:
    """The JSON report: one entry per suite, in the order suites first reported.

    With a ``baseline`` (an earlier report), each suite also says what changed since then,
    and ``max_regressions`` gates on the cases that regressed since then. ``interrupted``
    says why the run did not finish (Ctrl-C, SIGTERM, ``-x``, a crash): such a run never passes.
    Each model says when it retires (``retirements``, the built-in calendar by default), and
    ``retirements`` at the top warns of those that retire within 90 days of ``today``.
    """
    missing: set[str] = set()
    suites = [_suite_report(records, prices, missing) for records in aggregator.suites.values()]
    warnings = _retirements(suites, retirements or RetirementCalendar(), today or _dt.date.today())
    diffs = compare({"suites": suites}, baseline) if baseline is not None else {}
    for suite in suites:
        suite["significance"] = suite_significance(suite)
        if baseline is not None:
            suite["baseline"] = diffs.get(suite_key(suite))
        suite["gate"] = check_gate(suite)
        if suite["cost_benefit"] is not None:
            suite["cost_benefit"].update(_cheapest_passing(suite))
    outcomes = [o for r in aggregator.cases for o in r.outcomes.values()]
    replayed = sum(1 for o in outcomes if o["replayed"])
    total_calls = sum(1 for o in outcomes if o["output"] is not None)
    report = {
        "version": REPORT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "passed": run_passed(suites, aggregator.suite_errors, interrupted),
        "interrupted": interrupted,
        "suites": suites,
        "invalid_suites": aggregator.suite_errors,
        "calls": {"replayed": replayed, "live": total_calls - replayed},
        "retirements": warnings,
    }
    if baseline is not None:
        report["baseline"] = {"suites": diffs}
    if aggregator.calls:
        report["fixtures"] = _fixture_report(aggregator.calls, prices, missing)
    report["unpriced_models"] = sorted(missing)
    return report


def _suite_report(records: list[CaseRecord], prices: PriceTable, missing: set[str]) -> dict:
    info = records[0].suite
    roles = list(info.models)
    reference = info.reference
    batch = any(r.batch for r in records)
    cases = [_case_entry(r) for r in records]
    models: dict[str, dict] = {}
    for role in roles:
        outcomes = [r.outcomes[role] for r in records if role in r.outcomes]
        verdicts = [case_verdict(case, role) for case in cases if role in case]
        usage = {key: sum(o[key] for o in outcomes) for key in
                 ("prompt_tokens", "completion_tokens", "cached_tokens", "requests")}
        model = info.models[role]
        passed = verdicts.count(Verdict.PASS)
        scored = len(outcomes) - verdicts.count(Verdict.UNSCORED)
        latencies = sorted(o["latency_ms"] for o in outcomes if o.get("latency_ms") is not None)
        models[role] = {
            "model": model, "cases": len(outcomes), "passed": passed,
            "errors": verdicts.count(Verdict.ERROR), "unscored": verdicts.count(Verdict.UNSCORED),
            "accuracy": passed / scored if scored else None,
            **usage, "cost_usd": _cost(prices, model, usage, missing, batch),
            "replayed": sum(1 for o in outcomes if o["replayed"]),
            "latency_p50_ms": _percentile(latencies, 0.50), "latency_p95_ms": _percentile(latencies, 0.95),
        }
        if reference and role != reference:
            agreed = [a for a in (agreement(case, role) for case in cases) if a is not None]
            models[role].update(agreed=sum(agreed), agreement=sum(agreed) / len(agreed) if agreed else None)
    judge = None
    judge_records = [r for r in records if r.judge_usage]
    if judge_records:
        usage = {key: sum(r.judge_usage[key] for r in judge_records)
                 for key in ("prompt_tokens", "completion_tokens", "cached_tokens", "requests")}
        judge_model = next(r.judge_model for r in judge_records)
        judge = {"model": judge_model, **usage, "cost_usd": _cost(prices, judge_model, usage, missing, batch)}

    flips = [(case["id"], flip(case)) for case in cases]
    fixed = [case_id for case_id, change in flips if change == "fixed"]
    regressions = [case_id for case_id, change in flips if change == "regressed"]

    gain = None
    if "base" in models and "tuned" in models and None not in (models["tuned"]["accuracy"], models["base"]["accuracy"]):
        gain = models["tuned"]["accuracy"] - models["base"]["accuracy"]
    errored = [case["id"] for case in cases if any(case_verdict(case, role) is Verdict.ERROR for role in roles)]
    flaky = [r.id for r in records if any(o.get("flaky") for o in r.outcomes.values())]
    cost_benefit = _cost_benefit(models, gain, info.training, prices, reference)
    against_reference = None
    if reference:
        against_reference = {"role": reference, "model": models[reference]["model"], "candidates": {}}
        for role in roles:
            if role != reference:
                changes = [(case["id"], reference_flip(case, role, reference)) for case in cases]
                against_reference["candidates"][role] = {
                    kind: [case_id for case_id, change in changes if change == kind]
                    for kind in ("kept", "lost", "newly_right")}
    report = {
        "suite": info.suite, "file": info.file, "thresholds": dict(info.thresholds), "batch": batch,
        "preference": _preference(records, judge),
        "cost_benefit": cost_benefit,
        "gate": None, "models": models, "gain": gain, "judge": judge,
        "fixed": fixed, "regressions": regressions, "errored": errored, "flaky": flaky,
        "reference": against_reference,
        "cases": cases,
    }
    return report


def _retirements(suites: list[dict], calendar: RetirementCalendar, today: _dt.date) -> list[dict]:
    """Dates each model of each suite (in place) and lists those that retire soon, once per model."""
    warnings: dict[str, dict] = {}
    for suite in suites:
        for m in suite["models"].values():
            found = calendar.lookup(m["model"])
            m.update(retires=found.retires.isoformat() if found else None,
                     days_left=found.days_left(today) if found else None,
                     retirement_source=found.source if found else None)
            message = warning(found, today) if found else None
            if message and m["model"] not in warnings:
                warnings[m["model"]] = {"model": m["model"], "retires": m["retires"], "days_left": m["days_left"],
                                        "source": found.source, "message": message}
    return list(warnings.values())


def _preference(records: list[CaseRecord], judge: dict | None) -> dict | None:
    """Pairwise judgements over the suite: wins, ties and losses of the first role over the
    second, the win rate with its interval, a sign test, and how often the judge picked the
    answer it was shown first (near 0.5 for a judge that ignores order)."""
    judged = [(r.id, r.preference) for r in records if r.preference]
    if not judged:
        return None
    by: dict[str, list[str]] = {"win": [], "tie": [], "loss": [], "unscored": []}
    for case_id, p in judged:
        by[p["outcome"]].append(case_id)
    wins, ties, losses = len(by["win"]), len(by["tie"]), len(by["loss"])
    rate = win_rate(wins, ties, losses)
    return {"roles": judged[0][1]["roles"], "judge": judge["model"] if judge else None,
            "wins": wins, "ties": ties, "losses": losses, "unscored": len(by["unscored"]),
            "win_rate": rate["rate"], "ci": rate["ci"], "sign_test_p": sign_test(wins, losses),
            "position_bias": position_bias(sum(p["first_slot_picks"] for _, p in judged),
                                           sum(p["decisive"] for _, p in judged)),
            "cases": by}


def _percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted ``values``: always one of the values measured."""
    return values[max(0, math.ceil(q * len(values)) - 1)] if values else None


def _cheapest_passing(suite: dict) -> dict:
    """Of the models whose own figures pass the gate, the cheapest per request: by price when
    every one of them has one, else by tokens per request (what a price would multiply)."""
    entry = suite["cost_benefit"]
    passing = [role for role, failures in suite["gate"]["models"].items() if not failures]
    by = "cost" if all(entry["per_1000_requests_usd"].get(r) is not None for r in passing) else "tokens"
    figures = entry["per_1000_requests_usd"] if by == "cost" else entry["tokens_per_request"]
    known = [role for role in passing if figures.get(role) is not None]
    return {"cheapest_passing": min(known, key=figures.__getitem__, default=None), "cheapest_by": by}


def _cost_benefit(models: dict, gain: float | None, training: dict | None, prices: PriceTable,
                  reference: str | None = None) -> dict | None:
    """Does tuning pay? Training cost, inference cost per 1,000 requests, and when it pays back.

    Present when the training data or job is known, or when the suite runs variants of the
    base (a longer prompt, few-shot examples: the cheaper alternatives). Tuned prompts are
    shorter, so against a variant that costs more per request, training pays back after
    ``training cost / (variant − tuned cost per request)`` requests.
    """
    variants = [role for role in models if role not in ("base", "tuned", reference)]
    if training is None and not variants and not reference:
        return None
    per_request = {role: (m["cost_usd"] / m["requests"] if m["cost_usd"] is not None and m["requests"] else None)
                   for role, m in models.items()}
    entry: dict[str, Any] = {
        "per_1000_requests_usd": {role: None if c is None else c * 1000 for role, c in per_request.items()},
        "tokens_per_request": {role: round((m["prompt_tokens"] + m["completion_tokens"]) / m["requests"], 1)
                               if m["requests"] else None for role, m in models.items()},
        "gain": gain, "training": None, "break_even_requests": {}, "reference": reference}
    training_usd = None
    if training is not None:
        tokens, estimated = training.get("trained_tokens"), False
        if tokens is None and training.get("train_file") and training.get("base_model"):
            tokens, estimated = _estimated_training_tokens(training), True
        rate = prices.training_price(training.get("base_model") or "") if training.get("base_model") else None
        training_usd = tokens * rate / 1e6 if tokens is not None and rate is not None else None
        entry["training"] = {**{k: v for k, v in training.items() if k != "model"}, "trained_tokens": tokens,
                             "estimated": estimated, "cost_usd": training_usd}
    tuned = per_request.get("tuned")
    for role in variants:
        other = per_request.get(role)
        if training_usd is None or tuned is None or other is None:
            entry["break_even_requests"][role] = None
        elif other > tuned:
            entry["break_even_requests"][role] = math.ceil(training_usd / (other - tuned))
        else:
            entry["break_even_requests"][role] = "never"  # the variant is as cheap per request: tuning never pays back
    return entry


def _estimated_training_tokens(training: dict) -> int | None:
    """Billed tokens × epochs from the data (OpenAI's counting), when no job says how many it trained."""
    from ..data import DataError, stats

    try:
        report = stats(training["train_file"], training["base_model"], epochs=training.get("n_epochs"), progress=False)
    except (DataError, OSError, ValueError):
        return None
    return report.charged_tokens


def _case_entry(record: CaseRecord) -> dict:
    entry = {"id": record.id, "nodeid": record.nodeid, "input": record.input, "expected": record.expected,
             "labelled": record.labelled, "errors": record.errors, "error": record.error, "cassette": record.cassette}
    if record.preference:
        entry["preference"] = record.preference
    for role, outcome in record.outcomes.items():
        entry[role] = {k: outcome[k] for k in ("model", "output", "passed", "score", "reason", "replayed", "error",
                                                "prompt_tokens", "completion_tokens", "samples", "pass_rate", "flaky",
                                                "latency_ms", "unscored", "agreement", "tool_calls")
                       if k in outcome}
        entry[role]["verdict"] = str(record.verdict(role))
    return entry


def _fixture_report(calls: list[dict], prices: PriceTable, missing: set[str]) -> dict:
    by_model: dict[str, dict] = {}
    for call in calls:
        usage = by_model.setdefault(call["model"], {"prompt_tokens": 0, "completion_tokens": 0,
                                                    "cached_tokens": 0, "requests": 0, "replayed": 0})
        for key in ("prompt_tokens", "completion_tokens", "cached_tokens", "requests"):
            usage[key] += call[key]
        usage["replayed"] += bool(call.get("replayed"))
    return {"models": {m: {**u, "cost_usd": _cost(prices, m, u, missing)} for m, u in by_model.items()}}
