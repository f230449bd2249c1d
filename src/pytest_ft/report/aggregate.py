"""Aggregate case results into per-suite figures, check the gates, render tables and JSON.

The controller (the only process under xdist that sees every result) feeds each case's
record to :class:`Aggregator`; :func:`build_report` turns them into the JSON report whose
keys are a contract, and :func:`render` into the terminal tables. Costs are computed here,
from recorded token usage and the price table, so a replayed run costs what the live run
did.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from tabulate import tabulate

from .baseline import compare, suite_key
from ..files import write_atomic
from .pricing import PriceTable
from ..results import Verdict, case_verdict, flip, verdict
from .stats import p_phrase, suite_significance

REPORT_VERSION = 1


class Aggregator:
    """Collects case records (and fixture calls) as they arrive, in arrival order."""

    def __init__(self) -> None:
        self.cases: list[dict] = []
        self.calls: list[dict] = []
        self.suite_errors: list[dict] = []

    def add_case(self, record: dict) -> None:
        self.cases.append(record)

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


def _sum_costs(values: Iterable[float | None]) -> float | None:
    total = 0.0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def build_report(aggregator: Aggregator, prices: PriceTable, baseline: dict | None = None,
                 interrupted: str | None = None) -> dict:
    """The JSON report: one entry per suite, in the order suites first reported.

    With a ``baseline`` (an earlier report), each suite also says what changed since then,
    and ``max_regressions`` gates on the cases that regressed since then. ``interrupted``
    says why the run did not finish (Ctrl-C, SIGTERM, ``-x``, a crash): such a run never passes.
    """
    by_suite: dict[str, list[dict]] = defaultdict(list)
    for record in aggregator.cases:
        by_suite[record["file"] + "::" + record["suite"]].append(record)
    missing: set[str] = set()
    suites = [_suite_report(records, prices, missing) for records in by_suite.values()]
    diffs = compare({"suites": suites}, baseline) if baseline is not None else {}
    for suite in suites:
        suite["significance"] = suite_significance(suite)
        if baseline is not None:
            suite["baseline"] = diffs.get(suite_key(suite))
        suite["gate"] = check_gate(suite)
    replayed = sum(1 for r in aggregator.cases for o in r["outcomes"].values() if o["replayed"])
    total_calls = sum(1 for r in aggregator.cases for o in r["outcomes"].values() if o["output"] is not None)
    report = {
        "version": REPORT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "passed": run_passed(suites, aggregator.suite_errors, interrupted),
        "interrupted": interrupted,
        "suites": suites,
        "invalid_suites": aggregator.suite_errors,
        "calls": {"replayed": replayed, "live": total_calls - replayed},
    }
    if baseline is not None:
        report["baseline"] = {"suites": diffs}
    if aggregator.calls:
        report["fixtures"] = _fixture_report(aggregator.calls, prices, missing)
    report["unpriced_models"] = sorted(missing)
    return report


def run_passed(suites: list[dict], suite_errors: list, interrupted: str | None) -> bool:
    """The one place that decides whether a run passed: it finished, every suite loaded, every gate passed."""
    return interrupted is None and not suite_errors and all(s["gate"]["passed"] for s in suites)


def _suite_report(records: list[dict], prices: PriceTable, missing: set[str]) -> dict:
    first = records[0]
    roles = list(first["models"])
    batch = any(r.get("batch") for r in records)
    cases = [_case_entry(r) for r in records]
    models: dict[str, dict] = {}
    for role in roles:
        outcomes = [r["outcomes"][role] for r in records if role in r["outcomes"]]
        verdicts = [case_verdict(case, role) for case in cases if role in case]
        usage = {key: sum(o[key] for o in outcomes) for key in
                 ("prompt_tokens", "completion_tokens", "cached_tokens", "requests")}
        model = first["models"][role]
        passed = verdicts.count(Verdict.PASS)
        models[role] = {
            "model": model, "cases": len(outcomes), "passed": passed,
            "errors": verdicts.count(Verdict.ERROR),
            "accuracy": passed / len(outcomes) if outcomes else 0.0,
            **usage, "cost_usd": _cost(prices, model, usage, missing, batch),
            "replayed": sum(1 for o in outcomes if o["replayed"]),
        }
    judge = None
    judge_records = [r for r in records if r.get("judge_usage")]
    if judge_records:
        usage = {key: sum(r["judge_usage"][key] for r in judge_records)
                 for key in ("prompt_tokens", "completion_tokens", "cached_tokens", "requests")}
        judge_model = next(r["judge_model"] for r in judge_records)
        judge = {"model": judge_model, **usage, "cost_usd": _cost(prices, judge_model, usage, missing, batch)}

    flips = [(case["id"], flip(case)) for case in cases]
    fixed = [case_id for case_id, change in flips if change == "fixed"]
    regressions = [case_id for case_id, change in flips if change == "regressed"]

    gain = None
    if "base" in models and "tuned" in models:
        gain = models["tuned"]["accuracy"] - models["base"]["accuracy"]
    errored = [case["id"] for case in cases if any(case_verdict(case, role) is Verdict.ERROR for role in roles)]
    flaky = [r["id"] for r in records if any(o.get("flaky") for o in r["outcomes"].values())]
    cost_benefit = _cost_benefit(models, gain, first.get("training"), prices)
    report = {
        "suite": first["suite"], "file": first["file"], "thresholds": first["thresholds"], "batch": batch,
        "cost_benefit": cost_benefit,
        "gate": None, "models": models, "gain": gain, "judge": judge,
        "fixed": fixed, "regressions": regressions, "errored": errored, "flaky": flaky,
        "cases": cases,
    }
    return report


def _cost_benefit(models: dict, gain: float | None, training: dict | None, prices: PriceTable) -> dict | None:
    """Does tuning pay? Training cost, inference cost per 1,000 requests, and when it pays back.

    Present when the training data or job is known, or when the suite runs variants of the
    base (a longer prompt, few-shot examples: the cheaper alternatives). Tuned prompts are
    shorter, so against a variant that costs more per request, training pays back after
    ``training cost / (variant − tuned cost per request)`` requests.
    """
    variants = [role for role in models if role not in ("base", "tuned")]
    if training is None and not variants:
        return None
    per_request = {role: (m["cost_usd"] / m["requests"] if m["cost_usd"] is not None and m["requests"] else None)
                   for role, m in models.items()}
    entry: dict[str, Any] = {
        "per_1000_requests_usd": {role: None if c is None else c * 1000 for role, c in per_request.items()},
        "gain": gain, "training": None, "break_even_requests": {}}
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


def _case_entry(record: dict) -> dict:
    entry = {"id": record["id"], "nodeid": record["nodeid"], "input": record["input"],
             "expected": record["expected"], "errors": record["errors"], "error": record.get("error"),
             "cassette": record["cassette"]}
    for role, outcome in record["outcomes"].items():
        entry[role] = {k: outcome[k] for k in ("model", "output", "passed", "score", "reason", "replayed", "error",
                                                "prompt_tokens", "completion_tokens", "samples", "pass_rate", "flaky")
                       if k in outcome}
        entry[role]["verdict"] = str(verdict(outcome, record.get("error")))
    return entry


def check_gate(suite: dict) -> dict:
    """Whether the tuned model may ship, by this suite's thresholds (or every case, without)."""
    thresholds = suite["thresholds"]
    tuned = suite["models"].get("tuned", {})
    failures: list[str] = []
    if suite["errored"]:
        who = ", ".join(f"{role} {m['errors']}" for role, m in suite["models"].items() if m.get("errors"))
        failures.append(f"{len(suite['errored'])} case(s) could not be evaluated (errors: {who}): "
                        f"{', '.join(suite['errored'][:5])}")
    if not thresholds:
        missed = tuned.get("cases", 0) - tuned.get("passed", 0) - tuned.get("errors", 0)
        if missed:
            failures.append(f"the tuned model missed {missed} case(s) and the suite has no thresholds")
    if "accuracy" in thresholds and tuned.get("accuracy", 0.0) < thresholds["accuracy"]:
        failures.append(f"accuracy {tuned['accuracy']:.3f} < {thresholds['accuracy']:.3f}")
    if "min_gain" in thresholds:
        gain = suite["gain"]
        if gain is None or gain < thresholds["min_gain"] - 1e-12:
            failures.append(f"gain over base {_fmt_gain(gain)} < {thresholds['min_gain']:+.3f}")
    if "max_regressions" in thresholds:
        since = suite.get("baseline")
        regressed = since["regressed"] if since is not None else suite["regressions"]
        if len(regressed) > thresholds["max_regressions"]:
            what = "since the baseline" if since is not None else "against the base model"
            failures.append(f"{len(regressed)} case(s) regressed {what} (max {thresholds['max_regressions']:g}): "
                            f"{', '.join(regressed[:10])}")
    if "max_p_value" in thresholds:
        significance = suite.get("significance")
        if significance is None or significance["p_value"] > thresholds["max_p_value"]:
            p = "p=n/a" if significance is None else p_phrase(significance["p_value"])
            small = " (too few cases or flips to tell)" if significance and significance["too_small"] else ""
            failures.append(f"gain not significant: McNemar {p} > {thresholds['max_p_value']:g}{small}")
    if "max_cost_usd" in thresholds:
        cost = tuned.get("cost_usd")
        if cost is None:
            failures.append(f"cost of {tuned.get('model')} unknown (no price; pass --ft-prices), "
                            f"cannot check max_cost_usd {thresholds['max_cost_usd']}")
        elif cost > thresholds["max_cost_usd"]:
            failures.append(f"cost ${cost:.4f} > ${thresholds['max_cost_usd']:.4f}")
    return {"passed": not failures, "failures": failures}


def _fixture_report(calls: list[dict], prices: PriceTable, missing: set[str]) -> dict:
    by_model: dict[str, dict] = {}
    for call in calls:
        usage = by_model.setdefault(call["model"], {"prompt_tokens": 0, "completion_tokens": 0,
                                                    "cached_tokens": 0, "requests": 0, "replayed": 0})
        for key in ("prompt_tokens", "completion_tokens", "cached_tokens", "requests"):
            usage[key] += call[key]
        usage["replayed"] += bool(call.get("replayed"))
    return {"models": {m: {**u, "cost_usd": _cost(prices, m, u, missing)} for m, u in by_model.items()}}


# -- rendering -------------------------------------------------------------------------------

def _fmt_gain(gain: float | None) -> str:
    return "n/a" if gain is None else f"{gain * 100:+.1f} pp"


def _fmt_cost(cost: float | None) -> str:
    if cost is None:
        return "n/a"
    return f"{cost:,.2f}" if cost >= 1 else f"{cost:.6f}"


def render(report: dict) -> str:
    lines: list[str] = []
    for suite in report["suites"]:
        gate = suite["gate"]
        verdict = "PASSED" if gate["passed"] else "FAILED"
        lines.append(f"suite {suite['suite']} ({suite['file']}): gate {verdict}")
        rows = []
        for role, m in suite["models"].items():
            rows.append([role, m["model"], m["cases"], m["passed"], f"{m['accuracy'] * 100:.1f}%",
                         _fmt_gain(suite["gain"]) if role == "tuned" else "",
                         m["prompt_tokens"], m["completion_tokens"], _fmt_cost(m["cost_usd"]),
                         f"{m['replayed']}/{m['cases'] - m['errors']}"])
        lines.append(tabulate(rows, headers=["", "model", "cases", "passed", "accuracy", "gain", "prompt tok",
                                             "completion tok", "cost USD", "replayed"],
                              tablefmt="simple", colalign=("left", "left") + ("right",) * 8, disable_numparse=True))
        if suite["judge"]:
            j = suite["judge"]
            lines.append(f"judge {j['model']}: {j['requests']} calls, {j['prompt_tokens']} prompt + "
                         f"{j['completion_tokens']} completion tokens, cost USD {_fmt_cost(j['cost_usd'])}")
        significance = suite.get("significance")
        if significance and significance["gain"]["value"] is not None:
            low, high = significance["gain"]["ci"]
            lines.append(f"is the gain real? {_fmt_gain(significance['gain']['value'])} "
                         f"(95% CI {low * 100:+.1f} to {high * 100:+.1f} pp), McNemar "
                         f"{p_phrase(significance['p_value'])}: {significance['verdict']}")
        since = suite.get("baseline")
        if since is not None:
            then, now = since.get("accuracy_then"), since.get("accuracy_now")
            accuracy = " → ".join("n/a" if a is None else f"{a * 100:.1f}%" for a in (then, now))
            lines.append(f"since the baseline ({since['status']}): accuracy {accuracy}")
            for title in ("regressed", "fixed", "added", "removed"):
                if since.get(title):
                    lines.append("  " + _id_list(title, since[title]))
        if suite.get("cost_benefit"):
            lines.extend(_render_cost_benefit(suite["cost_benefit"]))
        if suite.get("batch"):
            lines.append("answered through the Batch API: costs are at batch rates (half the standard price)")
        if suite["thresholds"]:
            lines.append("thresholds: " + ", ".join(f"{k}={v:g}" for k, v in suite["thresholds"].items()))
        lines.append(_id_list("fixed by tuning", suite["fixed"]))
        lines.append(_id_list("regressions", suite["regressions"]))
        if suite.get("flaky"):
            lines.append(_id_list("flaky (samples disagree)", suite["flaky"]))
        for failure in gate["failures"]:
            lines.append(f"GATE FAILED: {failure}")
        lines.append("")
    if "fixtures" in report:
        rows = [[m, u["requests"], u["prompt_tokens"], u["completion_tokens"], _fmt_cost(u["cost_usd"])]
                for m, u in report["fixtures"]["models"].items()]
        lines.append("calls from Python tests (ft_complete):")
        lines.append(tabulate(rows, headers=["model", "requests", "prompt tok", "completion tok", "cost USD"], disable_numparse=True))
        lines.append("")
    for error in report["invalid_suites"]:
        lines.append(f"INVALID SUITE: {error['message']}")
    if report.get("interrupted"):
        lines.append(f"RUN NOT FINISHED: {report['interrupted']}: not passed")
    calls = report["calls"]
    lines.append(f"model calls: {calls['replayed']} replayed from recordings, {calls['live']} live")
    for model in report["unpriced_models"]:
        lines.append(f"warning: no price known for {model!r}: its cost shows as n/a (add it with --ft-prices)")
    return "\n".join(lines)


def _render_cost_benefit(entry: dict) -> list[str]:
    lines = []
    training = entry.get("training")
    if training:
        tokens = training.get("trained_tokens")
        source = f"job {training['job_id']}" if training.get("job_id") else "estimated from the training data"
        lines.append(f"training: {_fmt_cost(training['cost_usd'])} USD ({source}, "
                     f"{'n/a' if tokens is None else f'{tokens:,}'} trained tokens)")
    per = ", ".join(f"{role} {_fmt_cost(cost)}" for role, cost in entry["per_1000_requests_usd"].items())
    lines.append(f"inference per 1,000 requests (USD): {per}; gain {_fmt_gain(entry['gain'])}")
    for role, requests in entry["break_even_requests"].items():
        if requests == "never":
            lines.append(f"break-even against {role}: never (it costs no more per request than the tuned model)")
        elif requests is None:
            lines.append(f"break-even against {role}: n/a (a cost is unknown)")
        else:
            lines.append(f"break-even against {role}: tuning pays back after {requests:,} requests")
    return lines


def _id_list(title: str, ids: list[str], limit: int = 20) -> str:
    if not ids:
        return f"{title}: none"
    shown = ", ".join(ids[:limit]) + (f", … (+{len(ids) - limit})" if len(ids) > limit else "")
    return f"{title} ({len(ids)}): {shown}"


def write_json(report: dict, path: Path) -> None:
    write_atomic(path, json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")


def json_safe(value: Any) -> Any:
    """Expected values come from YAML and may hold dates etc.; keep the report JSON."""
    return json.loads(json.dumps(value, default=str))
