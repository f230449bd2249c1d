"""The run as GitHub-flavoured Markdown: the page people decide from in a pull request or CI run.

``--ft-markdown PATH`` writes it; when ``GITHUB_STEP_SUMMARY`` is set it is also appended there,
so the verdict, the tables, and what flipped show on the run's summary page without opening an
artifact. Every figure comes from the JSON report dict (``--ft-report``), so the Markdown can also
be rendered later from a saved report.

The small formatting helpers here (accuracy with its interval, gain, cost, flaky cases) are shared
with :mod:`pytest_ft.html_report` so both pages say the same thing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from ...files import append_text, write_atomic
from ...results import Verdict, case_verdict
from ..baseline import suite_key
from ..formats import fmt_cost, fmt_latency, fmt_pct, fmt_pp, fmt_retires  # noqa: F401  (also read by html.py)
from ..stats import p_phrase, suite_significance, wilson_interval
from .sentences import (
    cost_benefit_lines,
    preference_lines,
    reference_lines,
    retirement_lines,
    unscored_lines,
)

DETAILS_OVER = 10  # id lists longer than this are folded into <details>

# -- shared formatting -------------------------------------------------------------------------


def fmt_accuracy(model: Mapping[str, Any], confidence: float = 0.95) -> str:
    """A model's accuracy with its Wilson interval: "70.0% [48.1–85.5]"."""
    cases = int(model.get("cases") or 0) - int(model.get("unscored") or 0)
    passed = int(model.get("passed") or 0)
    if cases <= 0:
        return "n/a"
    low, high = wilson_interval(passed, cases, confidence)
    return f"{fmt_pct(model.get('accuracy', passed / cases))} [{low * 100:.1f}–{high * 100:.1f}]"





def role_gain(suite: Mapping[str, Any], role: str) -> float | None:
    """The accuracy gain of ``role`` over base: the report's ``gain`` for tuned, else computed."""
    models = suite.get("models") or {}
    if role == "base" or "base" not in models or role not in models:
        return None
    if role == "tuned" and suite.get("gain") is not None:
        return suite["gain"]
    accuracy, base = models[role].get("accuracy", 0.0), models["base"].get("accuracy", 0.0)
    return None if accuracy is None or base is None else accuracy - base


def role_significance(suite: Mapping[str, Any], role: str) -> dict | None:
    """McNemar and the gain's interval for ``role`` against base (None for base itself)."""
    if role == "base":
        return None
    return suite_significance(dict(suite), base="base", tuned=role)


def fmt_gain(suite: Mapping[str, Any], role: str) -> str:
    """ "+25.0 pp [+3.4, +45.1] p=0.039", or "" for the base row."""
    gain = role_gain(suite, role)
    if gain is None:
        return ""
    sig = role_significance(suite, role)
    if sig is None:
        return fmt_pp(gain)
    low, high = sig["gain"]["ci"]
    return f"{fmt_pp(gain)} [{low * 100:+.1f}, {high * 100:+.1f}] {p_phrase(sig['p_value'])}"


def flaky_cases(suite: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """Cases whose sampled answers disagree: [(case id, ["tuned 2/3 passed", ...])]."""
    roles = list((suite.get("models") or {}).keys())
    found = []
    for case in suite.get("cases") or []:
        notes = [f"{role} {fmt_pass_rate(case[role])}" for role in roles
                 if isinstance(case.get(role), dict) and case[role].get("flaky")]
        if notes:
            found.append((str(case.get("id")), notes))
    return found


def fmt_pass_rate(entry: Mapping[str, Any]) -> str:
    """ "2/3 samples passed" when the samples are known, else the bare rate."""
    rate = entry.get("pass_rate")
    samples = entry.get("samples")
    if rate is None:
        return "flaky"
    if isinstance(samples, list) and samples:
        return f"{round(rate * len(samples))}/{len(samples)} samples passed"
    return f"{rate * 100:.0f}% of samples passed"


# -- Markdown escaping -------------------------------------------------------------------------

_MD_SPECIAL = "\\`*_[]<>|#"


def escape_text(text: Any) -> str:
    """Plain text safe in Markdown: specials backslash-escaped, so ids and answers render as typed."""
    out = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))
    return out.replace("\r\n", "\n").replace("\n", " ")


def escape_cell(text: Any) -> str:
    """Text for a table cell: a ``|`` would end the cell and a newline the row."""
    out = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))
    return out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def code(text: Any, in_table: bool = False) -> str:
    """Inline code that survives backticks in the text (a longer fence) and table pipes."""
    text = str(text).replace("\r\n", " ").replace("\n", " ")
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    out = f"{fence}{pad}{text}{pad}{fence}"
    return out.replace("|", "\\|") if in_table else out


def _table(headers: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A GFM table; ``align`` is one letter per column, l or r. Cells are already escaped."""
    marks = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _id_list(title: str, ids: list[str]) -> list[str]:
    """A titled list of case ids, folded into <details> when long so the page stays readable."""
    if not ids:
        return []
    items = ", ".join(code(i) for i in ids)
    if len(ids) <= DETAILS_OVER:
        return [f"**{title} ({len(ids)}):** {items}", ""]
    return [f"<details><summary><b>{title} ({len(ids)})</b></summary>", "", items, "", "</details>", ""]


# -- the page ----------------------------------------------------------------------------------


def model_columns(suite: Mapping[str, Any]) -> tuple[bool, bool]:
    """Whether the models table has an agreement column (a reference) and a retirement column."""
    models = (suite.get("models") or {}).values()
    return bool(suite.get("reference")), any(m.get("retires") for m in models)


def fmt_agreement(suite: Mapping[str, Any], role: str) -> str:
    reference = suite.get("reference") or {}
    return "(reference)" if role == reference.get("role") else fmt_pct((suite["models"][role]).get("agreement"))


def _models_table(suite: Mapping[str, Any]) -> list[str]:
    with_reference, with_retirement = model_columns(suite)
    rows = []
    for role, m in (suite.get("models") or {}).items():
        rows.append([
            escape_cell(role), code(m.get("model", ""), in_table=True), str(m.get("cases", "")),
            str(m.get("passed", "")), fmt_accuracy(m), *([fmt_agreement(suite, role)] if with_reference else []),
            fmt_gain(suite, role), fmt_latency(m),
            str(m.get("prompt_tokens", "")), str(m.get("completion_tokens", "")), fmt_cost(m.get("cost_usd")),
            *([fmt_retires(m)] if with_retirement else []),
        ])
    headers = ["role", "model", "cases", "passed", "accuracy (95% CI)",
               *(["agreement with reference"] if with_reference else []), "gain vs base (95% CI), McNemar p",
               "latency p50 / p95 ms", "prompt tok", "completion tok", "cost USD",
               *(["retires"] if with_retirement else [])]
    return _table(headers, rows, "ll" + "r" * (len(headers) - 2))


MISSES_SHOWN = 50


def _misses(suite: Mapping[str, Any]) -> list[str]:
    """The cases the tuned model did not pass, with what each model answered, folded away."""
    roles = list(suite.get("models") or {})
    missed = [case for case in suite.get("cases") or [] if isinstance(case.get("tuned"), dict)
              and case_verdict(case, "tuned") is not Verdict.PASS]
    if not missed:
        return []
    rows = []
    for case in missed[:MISSES_SHOWN]:
        answers = [escape_cell(_answer_cell(case.get(role))) for role in roles]
        rows.append([code(case.get("id", ""), in_table=True), escape_cell(_clip(_shown(case.get("expected")))),
                     *answers, escape_cell(_clip((case["tuned"].get("reason") or ""), 120))])
    more = f" (the first {MISSES_SHOWN})" if len(missed) > MISSES_SHOWN else ""
    table = _table(["case", "expected", *(escape_cell(r) for r in roles), "tuned: why"], rows,
                   "l" * (len(roles) + 3))
    return [f"<details><summary><b>Cases the tuned model missed ({len(missed)}){more}</b></summary>", "",
            *table, "", "</details>", ""]


def _answer_cell(entry: Any) -> str:
    if not isinstance(entry, dict):
        return ""
    if entry.get("error"):
        return f"ERROR: {_clip(entry['error'], 120)}"
    return _clip(entry.get("output") or "")


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()) if "\n" not in str(text) else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _baseline_lines(diff: Mapping[str, Any]) -> list[str]:
    then, now = diff.get("accuracy_then"), diff.get("accuracy_now")
    status = diff.get("status")
    if status == "new":
        head = "**Since baseline:** new suite (not in the baseline)"
    elif status == "gone":
        head = f"**Since baseline:** suite gone (accuracy then {fmt_pct(then)})"
    else:
        delta = f" ({fmt_pp(now - then)})" if then is not None and now is not None else ""
        head = (f"**Since baseline:** {diff.get('role', 'tuned')} accuracy {fmt_pct(then)} → {fmt_pct(now)}{delta}; "
                f"{len(diff.get('regressed', []))} regressed, {len(diff.get('fixed', []))} fixed, "
                f"{len(diff.get('added', []))} added, {len(diff.get('removed', []))} removed")
    lines = [head, ""]
    if status == "matched":
        lines += _id_list("Regressed since baseline", diff.get("regressed", []))
        lines += _id_list("Fixed since baseline", diff.get("fixed", []))
        lines += _id_list("Added", diff.get("added", []))
        lines += _id_list("Removed", diff.get("removed", []))
        lines += _id_list("Errored now", diff.get("errored", []))
    return lines


def _suite_section(suite: Mapping[str, Any], diff: Mapping[str, Any] | None) -> list[str]:
    gate = suite.get("gate") or {"passed": True, "failures": []}
    mark = "✅" if gate.get("passed") else "❌"
    lines = [f"## {mark} {escape_text(suite.get('suite', ''))} — {code(suite.get('file', ''))}", ""]
    if gate.get("passed"):
        lines += ["**Gate passed.**", ""]
    else:
        lines += ["**Gate failed:**", ""] + [f"- {escape_text(f)}" for f in gate.get("failures", [])] + [""]
    lines += _models_table(suite) + [""]
    sig = role_significance(suite, "tuned")
    if sig is not None:
        lines += [(f"**Is the gain real?** {escape_text(sig['verdict'])} — flips: "
                   f"{sig['discordant']['tuned_only']} only tuned passes, "
                   f"{sig['discordant']['base_only']} only base passes."), ""]
    judge = suite.get("judge")
    if judge:
        lines += [(f"**Judge** {code(judge.get('model', ''))}: {judge.get('requests', 0)} calls, "
                   f"{judge.get('prompt_tokens', 0)} prompt + {judge.get('completion_tokens', 0)} completion tokens, "
                   f"cost USD {fmt_cost(judge.get('cost_usd'))}"), ""]
    thresholds = suite.get("thresholds") or {}
    if thresholds:
        lines += ["**Thresholds:** " + ", ".join(f"{escape_text(k)}={v:g}" if isinstance(v, (int, float))
                                                  else f"{escape_text(k)}={escape_text(v)}"
                                                  for k, v in thresholds.items()), ""]
    against = reference_lines(suite, limit=DETAILS_OVER)
    if against:
        lines += [f"**{escape_text(against[0])}**", ""] + [f"- {escape_text(line.strip())}" for line in against[1:]] + [""]
    for line in preference_lines(suite) + unscored_lines(suite):
        lines += [escape_text(line), ""]
    if suite.get("cost_benefit"):
        lines += ["**Cost:** " + escape_text("; ".join(cost_benefit_lines(suite["cost_benefit"]))), ""]
    lines += _id_list("Fixed by tuning", suite.get("fixed") or [])
    lines += _id_list("Regressions", suite.get("regressions") or [])
    lines += _id_list("Errored", suite.get("errored") or [])
    flaky = flaky_cases(suite)
    if flaky:
        items = [f"- {code(case_id)}: {escape_text('; '.join(notes))}" for case_id, notes in flaky]
        if len(flaky) <= DETAILS_OVER:
            lines += [f"**Flaky ({len(flaky)}):** answers disagree across samples", ""] + items + [""]
        else:
            lines += [f"<details><summary><b>Flaky ({len(flaky)})</b></summary>", ""] + items + ["", "</details>", ""]
    lines += _misses(suite)
    if diff is not None:
        lines += _baseline_lines(diff)
    return lines


def run_facts(report: Mapping[str, Any], escape: Callable[[Any], str]) -> list[str]:
    """The run in a few words: suites, replayed and live calls, duration, when (shared with the HTML)."""
    facts = [f"{len(report.get('suites') or [])} suite(s)"]
    calls = report.get("calls") or {}
    if calls:
        facts.append(f"{calls.get('replayed', 0)} model calls replayed, {calls.get('live', 0)} live")
    if report.get("duration_s") is not None:
        facts.append(f"{report['duration_s']:.1f} s")
    if report.get("created"):
        facts.append(escape(report["created"]))
    return facts


def render_markdown(report: Mapping[str, Any], baseline_diff: Mapping[str, dict] | None = None) -> str:
    """The whole report as GitHub-flavoured Markdown.

    ``baseline_diff`` is :func:`pytest_ft.baseline.compare`'s result (keyed by suite); with it each
    suite says what regressed, got fixed, was added or removed since the baseline, and suites gone
    since then are listed at the end.
    """
    suites = report.get("suites") or []
    mark = "✅" if report.get("passed") else "❌"
    lines = [f"# {mark} pytest-ft: {'passed' if report.get('passed') else 'FAILED'}", ""]
    if report.get("interrupted"):
        lines += [f"> ❌ **The run did not finish** ({escape_text(report['interrupted'])}): not passed.", ""]
    lines += [" · ".join(run_facts(report, escape_text)), ""]
    for error in report.get("invalid_suites") or []:
        message = error.get("message", error) if isinstance(error, dict) else error
        lines += [f"> ❌ **Invalid suite:** {escape_text(message)}", ""]
    for suite in suites:
        diff = baseline_diff.get(suite_key(suite)) if baseline_diff is not None else None
        lines += _suite_section(suite, diff)
    if baseline_diff is not None:
        gone = [d for d in baseline_diff.values() if d.get("status") == "gone"]
        if gone:
            lines += ["## Suites gone since the baseline", ""]
            lines += [f"- {escape_text(d.get('suite', ''))} — {code(d.get('file', ''))}: "
                      f"{len(d.get('removed', []))} case(s), accuracy then {fmt_pct(d.get('accuracy_then'))}"
                      for d in gone] + [""]
    for line in retirement_lines(report):
        lines += [f"> ⚠️ {escape_text(line)}", ""]
    for model in report.get("unpriced_models") or []:
        lines += [f"> ⚠️ No price known for {code(model)}: its cost shows as n/a (add it with `--ft-prices`).", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_markdown(report: Mapping[str, Any], path: str | Path,
                   baseline_diff: Mapping[str, dict] | None = None) -> str:
    """Write :func:`render_markdown` to ``path`` (creating its folder); return the Markdown."""
    markdown = render_markdown(report, baseline_diff)
    write_atomic(path, markdown)
    return markdown


def append_step_summary(markdown: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Append to the file GitHub Actions names in ``GITHUB_STEP_SUMMARY``; False when unset.

    Appended, never overwritten: other steps of the job write their own summaries to the same file.
    A set but unwritable path raises OSError — the caller decides whether that fails the run.
    """
    target = environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    append_text(target, markdown if markdown.endswith("\n") else markdown + "\n")
    return True
