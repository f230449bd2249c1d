"""The run as one self-contained HTML page: tables, a chart, and every case side by side.

``--ft-html PATH`` writes it. One file with no external CSS, JS, fonts or images — it opens from a
CI artifact, an e-mail attachment or an air-gapped laptop, and shows the same thing years later.
The chart is SVG drawn here in Python; the only script is a few lines that filter the cases to
the misses and the flips, which is where a reviewer's attention goes. All text from the report
(inputs, answers, ids, reasons) is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..baseline import suite_key
from ...files import write_atomic
from .markdown import (
    flaky_cases,
    fmt_accuracy,
    fmt_cost,
    fmt_gain,
    fmt_pass_rate,
    fmt_pct,
    fmt_pp,
    role_significance,
    run_facts,
)
from ...results import Verdict, case_verdict, flip, verdict
from ..stats import wilson_interval

ROLE_COLOURS = ("#8a94a6", "#1f9d74", "#d9822b", "#7b61c4", "#c4495a", "#2d7fc1")


def esc(value: Any) -> str:
    """Escape any report value for HTML text or an attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def role_colour(index: int) -> str:
    """A stable colour per role column (base grey, tuned green, then others)."""
    return ROLE_COLOURS[index % len(ROLE_COLOURS)]


def all_roles(report: Mapping[str, Any]) -> list[str]:
    """Every role of every suite, base and tuned first, so colours match across suites."""
    roles: list[str] = []
    for suite in report.get("suites") or []:
        for role in suite.get("models") or {}:
            if role not in roles:
                roles.append(role)
    return sorted(roles, key=lambda r: (r != "base", r != "tuned", roles.index(r)))


# -- the chart ---------------------------------------------------------------------------------


def nice_axis(value: float, ticks: int = 4) -> tuple[float, int]:
    """A round axis for values up to ``value``: (maximum, number of tick steps).

    The step is 1, 2 or 5 times a power of ten (0.0031 → step 0.001, maximum 0.004, 4 steps), so
    the tick labels read 0.001, 0.002… rather than 0.00125, 0.00375.
    """
    if value <= 0:
        return 1.0, ticks
    raw = value / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if raw <= m * power * (1 + 1e-9))
    steps = max(1, math.ceil(value / step - 1e-9))
    return float(f"{step * steps:.12g}"), steps


def fmt_axis_cost(value: float) -> str:
    """Axis labels for USD: "0", "0.001", "1.5e-05" — short, since ticks are round numbers."""
    return "0" if value == 0 else f"{value:g}"


def svg_bar_chart(title: str, groups: Sequence[str], series: Sequence[str], colours: Sequence[str],
                  values: Mapping[tuple[int, int], float | None], y_max: float, y_label: str,
                  fmt_value: Any, fmt_tick: Any, intervals: Mapping[tuple[int, int], tuple[float, float]] | None = None,
                  width: int = 560, height: int = 300, n_ticks: int = 4) -> str:
    """A grouped bar chart as inline SVG: one group per suite, one bar per role.

    ``values[(group, series)]`` is the bar's height in axis units, None for unknown (drawn as
    "n/a", never as a zero bar); ``intervals`` adds whiskers (the accuracy's confidence interval).
    The SVG scales to its box (viewBox), so ``width`` and ``height`` set the proportions.
    """
    left, right, top, bottom = 64, 12, 34, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    n_groups, n_series = max(1, len(groups)), max(1, len(series))
    group_w = plot_w / n_groups
    bar_w = min(64.0, group_w * 0.8 / n_series)

    def y(v: float) -> float:
        return top + plot_h - plot_h * max(0.0, min(v, y_max)) / y_max

    out = [(f'<svg class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">'),
           f'<title>{esc(title)}</title>',
           f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" class="ctitle">{esc(title)}</text>']
    for i in range(n_ticks + 1):  # gridlines and ticks
        tick = y_max * i / n_ticks
        ty = y(tick)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" class="tick">{esc(fmt_tick(tick))}</text>')
    out.append(f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'class="axis">{esc(y_label)}</text>')
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" class="axisline"/>')
    for g, group in enumerate(groups):
        gx = left + g * group_w + (group_w - bar_w * n_series) / 2
        for s, name in enumerate(series):
            if (g, s) not in values:
                continue
            x = gx + s * bar_w
            v = values[(g, s)]
            label = f"{name}: {fmt_value(v)}"
            if v is None:
                out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - 4}" text-anchor="middle" '
                           f'class="val na">n/a</text>')
                continue
            by = y(v)
            out.append(f'<rect x="{x + 1:.1f}" y="{by:.1f}" width="{bar_w - 2:.1f}" '
                       f'height="{top + plot_h - by:.1f}" fill="{colours[s]}"><title>{esc(group)} · '
                       f'{esc(label)}</title></rect>')
            label_y = by - 4
            if intervals and (g, s) in intervals:
                low, high = intervals[(g, s)]
                cx = x + bar_w / 2
                out.append(f'<path d="M{cx:.1f} {y(low):.1f}V{y(high):.1f}M{cx - 4:.1f} {y(low):.1f}h8'
                           f'M{cx - 4:.1f} {y(high):.1f}h8" class="whisker"/>')
                label_y = min(label_y, y(high) - 4)
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{max(top - 2, label_y):.1f}" text-anchor="middle" '
                       f'class="val">{esc(fmt_value(v))}</text>')
        short = group if len(group) <= 28 else group[:27] + "…"
        out.append(f'<text x="{left + g * group_w + group_w / 2:.1f}" y="{top + plot_h + 18}" text-anchor="middle" '
                   f'class="glabel">{esc(short)}<title>{esc(group)}</title></text>')
    legend_x = left
    for s, name in enumerate(series):
        out.append(f'<rect x="{legend_x}" y="{height - 22}" width="12" height="12" fill="{colours[s]}"/>')
        out.append(f'<text x="{legend_x + 16}" y="{height - 12}" class="legend">{esc(name)}</text>')
        legend_x += 24 + 8 * len(name)
    out.append("</svg>")
    return "".join(out)


def render_charts(report: Mapping[str, Any]) -> str:
    """Accuracy (with 95% intervals) and cost per model and suite, as two inline SVG charts."""
    suites = report.get("suites") or []
    roles = all_roles(report)
    colours = [role_colour(i) for i in range(len(roles))]
    names = [s.get("suite", "") for s in suites]
    groups = [f"{name} ({s.get('file', '')})" if names.count(name) > 1 else name for name, s in zip(names, suites)]
    accuracy: dict[tuple[int, int], float | None] = {}
    intervals: dict[tuple[int, int], tuple[float, float]] = {}
    cost: dict[tuple[int, int], float | None] = {}
    for g, suite in enumerate(suites):
        for s, role in enumerate(roles):
            model = (suite.get("models") or {}).get(role)
            if not isinstance(model, dict):
                continue
            accuracy[(g, s)] = model.get("accuracy")
            if model.get("cases"):
                intervals[(g, s)] = wilson_interval(int(model.get("passed", 0)), int(model["cases"]))
            cost[(g, s)] = model.get("cost_usd")
    width = max(520, min(1180, 120 + len(suites) * (len(roles) * 64 + 48)))
    known_costs = [c for c in cost.values() if c is not None]
    cost_max, cost_ticks = nice_axis(max(known_costs, default=0.0))
    acc_chart = svg_bar_chart("Accuracy per model and suite (bars: 95% CI)", groups, roles, colours, accuracy, 1.0,
                              "accuracy", fmt_pct, lambda t: f"{t * 100:.0f}%", intervals, width=width)
    cost_chart = svg_bar_chart("Cost per model and suite (USD)", groups, roles, colours, cost,
                               cost_max, "cost USD", fmt_cost, fmt_axis_cost, width=width, n_ticks=cost_ticks)
    return f'<div class="charts"><div class="chart">{acc_chart}</div><div class="chart">{cost_chart}</div></div>'


# -- tables ------------------------------------------------------------------------------------


def _badge(kind: str, text: str) -> str:
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


def _verdict(passed: bool) -> str:
    """The gate's verdict as a coloured badge, not an emoji: no emoji font is needed to read it."""
    return _badge("pass", "PASSED") if passed else _badge("miss", "FAILED")


def _ids(title: str, ids: Sequence[str], kind: str) -> str:
    if not ids:
        return ""
    links = " ".join(f'<code class="cid {esc(kind)}">{esc(i)}</code>' for i in ids)
    if len(ids) <= 10:
        return f'<p><b>{esc(title)} ({len(ids)}):</b> {links}</p>'
    return f'<details><summary><b>{esc(title)} ({len(ids)})</b></summary><p>{links}</p></details>'


def _models_table(suite: Mapping[str, Any], roles: Sequence[str]) -> str:
    head = ("role", "model", "cases", "passed", "accuracy (95% CI)", "gain vs base (95% CI), McNemar p",
            "prompt tok", "completion tok", "cost USD", "replayed")
    rows = []
    for role, m in (suite.get("models") or {}).items():
        colour = role_colour(roles.index(role)) if role in roles else "#999"
        rows.append(
            "<tr>"
            f'<td><span class="swatch" style="background:{colour}"></span>{esc(role)}</td>'
            f'<td><code>{esc(m.get("model"))}</code></td><td class="n">{esc(m.get("cases"))}</td>'
            f'<td class="n">{esc(m.get("passed"))}</td><td class="n">{esc(fmt_accuracy(m))}</td>'
            f'<td class="n">{esc(fmt_gain(suite, role))}</td><td class="n">{esc(m.get("prompt_tokens"))}</td>'
            f'<td class="n">{esc(m.get("completion_tokens"))}</td><td class="n">{esc(fmt_cost(m.get("cost_usd")))}</td>'
            f'<td class="n">{esc(m.get("replayed"))}</td>'
            "</tr>")
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    return (f'<div class="tablewrap"><table class="models"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _baseline_html(diff: Mapping[str, Any]) -> str:
    status = diff.get("status")
    if status == "new":
        return '<div class="baseline"><b>Since baseline:</b> new suite (not in the baseline)</div>'
    then, now = diff.get("accuracy_then"), diff.get("accuracy_now")
    delta = f" ({fmt_pp(now - then)})" if then is not None and now is not None else ""
    head = (f'<b>Since baseline:</b> {esc(diff.get("role", "tuned"))} accuracy {esc(fmt_pct(then))} → '
            f'{esc(fmt_pct(now))}{esc(delta)}')
    body = "".join([_ids("Regressed since baseline", diff.get("regressed", []), "miss"),
                    _ids("Fixed since baseline", diff.get("fixed", []), "pass"),
                    _ids("Added", diff.get("added", []), ""), _ids("Removed", diff.get("removed", []), ""),
                    _ids("Errored now", diff.get("errored", []), "error")])
    return f'<div class="baseline">{head}{body or "<p>no case changed.</p>"}</div>'


def _suite_summary(suite: Mapping[str, Any], index: int, roles: Sequence[str], diff: Mapping[str, Any] | None) -> str:
    gate = suite.get("gate") or {"passed": True, "failures": []}
    ok = bool(gate.get("passed"))
    parts = [(f'<section class="suite" id="suite-{index}"><h2>{_verdict(ok)} {esc(suite.get("suite"))} '
              f'<small><code>{esc(suite.get("file"))}</code></small></h2>')]
    if ok:
        parts.append('<p class="gate ok">Gate passed.</p>')
    else:
        parts.append('<div class="gate bad"><b>Gate failed:</b><ul>'
                     + "".join(f"<li>{esc(f)}</li>" for f in gate.get("failures", [])) + "</ul></div>")
    parts.append(_models_table(suite, roles))
    sig = role_significance(suite, "tuned")
    if sig is not None:
        parts.append(f'<p><b>Is the gain real?</b> {esc(sig["verdict"])} — flips: '
                     f'{sig["discordant"]["tuned_only"]} only tuned passes, {sig["discordant"]["base_only"]} '
                     f'only base passes.</p>')
    judge = suite.get("judge")
    if judge:
        parts.append(f'<p><b>Judge</b> <code>{esc(judge.get("model"))}</code>: {esc(judge.get("requests"))} calls, '
                     f'{esc(judge.get("prompt_tokens"))} prompt + {esc(judge.get("completion_tokens"))} completion '
                     f'tokens, cost USD {esc(fmt_cost(judge.get("cost_usd")))}</p>')
    thresholds = suite.get("thresholds") or {}
    if thresholds:
        parts.append("<p><b>Thresholds:</b> " + ", ".join(f"{esc(k)}={esc(v)}" for k, v in thresholds.items())
                     + "</p>")
    parts.append(_ids("Fixed by tuning", suite.get("fixed") or [], "pass"))
    parts.append(_ids("Regressions", suite.get("regressions") or [], "miss"))
    parts.append(_ids("Errored", suite.get("errored") or [], "error"))
    flaky = flaky_cases(suite)
    if flaky:
        parts.append('<p><b>Flaky (' + str(len(flaky)) + '):</b> '
                     + "; ".join(f'<code class="cid">{esc(i)}</code> {esc(", ".join(n))}' for i, n in flaky) + "</p>")
    if diff is not None:
        parts.append(_baseline_html(diff))
    parts.append(f'<p><a href="#cases-{index}">cases of this suite ↓</a></p></section>')
    return "".join(parts)


# -- cases -------------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    """Expected values may be JSON (the json grader): show them as indented JSON, strings as is."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def case_flags(case: Mapping[str, Any]) -> dict[str, bool]:
    """What the filters need: the tuned model missed; base and tuned disagree."""
    tuned = case.get("tuned")
    return {"miss": isinstance(tuned, dict) and case_verdict(case, "tuned") is not Verdict.PASS,
            "flip": flip(case) is not None}


_STATES = {Verdict.PASS: ("pass", "pass"), Verdict.FAIL: ("miss", "miss"), Verdict.ERROR: ("error", "error"),
           Verdict.UNSCORED: ("error", "unscored")}


def _answer(role: str, entry: Mapping[str, Any] | None, colour: str, case_error: str | None = None) -> str:
    if not isinstance(entry, dict):
        return f'<div class="answer"><div class="role">{esc(role)}</div><p class="muted">not run</p></div>'
    state, label = _STATES[verdict(entry, case_error)]
    badge = _badge(state, label)
    extra = []
    if entry.get("flaky"):
        extra.append(_badge("flaky", "flaky"))
    if entry.get("pass_rate") is not None:
        extra.append(f'<span class="meta">{esc(fmt_pass_rate(entry))}</span>')
    score = entry.get("score")
    score_text = f'<span class="meta">score {score:.2f}</span>' if isinstance(score, (int, float)) else ""
    tokens = ""
    if entry.get("prompt_tokens") is not None or entry.get("completion_tokens") is not None:
        tokens = (f'<span class="meta">{esc(entry.get("prompt_tokens", 0))}+'
                  f'{esc(entry.get("completion_tokens", 0))} tok</span>')
    replayed = '<span class="meta">replayed</span>' if entry.get("replayed") else ""
    body = (f'<pre class="out">{esc(entry.get("output"))}</pre>' if entry.get("output") is not None
            else '<p class="muted">no answer</p>')
    error = f'<p class="err">{esc(entry.get("error"))}</p>' if entry.get("error") else ""
    reason = f'<p class="reason">{esc(entry.get("reason"))}</p>' if entry.get("reason") else ""
    samples = ""
    if isinstance(entry.get("samples"), list) and entry["samples"]:
        items = "".join(f'<li><pre class="out">{esc(_as_text(s))}</pre></li>' for s in entry["samples"])
        samples = f'<details class="samples"><summary>{len(entry["samples"])} samples</summary><ol>{items}</ol></details>'
    return (f'<div class="answer {state}" style="border-top-color:{colour}"><div class="role">{esc(role)} {badge} '
            f'{score_text} {tokens} {replayed} {"".join(extra)}</div>'
            f'<div class="model"><code>{esc(entry.get("model"))}</code></div>{body}{error}{reason}{samples}</div>')


def _case_html(case: Mapping[str, Any], roles: Sequence[str], all_role_order: Sequence[str]) -> str:
    flags = case_flags(case)
    badges = []
    if flags["flip"]:
        badges.append(_badge("pass", "fixed by tuning") if flip(case) == "fixed" else _badge("miss", "regression"))
    if case.get("errors"):
        badges.append(_badge("error", "error"))
    if any(isinstance(case.get(r), dict) and case[r].get("flaky") for r in roles):
        badges.append(_badge("flaky", "flaky"))
    answers = "".join(_answer(r, case.get(r), role_colour(all_role_order.index(r)) if r in all_role_order else "#999",
                              case.get("error")) for r in roles)
    errors = "".join(f'<p class="err">{esc(e)}</p>' for e in case.get("errors") or []
                     if not any(isinstance(case.get(r), dict) and case[r].get("error") == e for r in roles))
    return (f'<article class="case" data-miss="{int(flags["miss"])}" data-flip="{int(flags["flip"])}" '
            f'id="{esc(case.get("nodeid") or case.get("id"))}">'
            f'<header><code class="cid">{esc(case.get("id"))}</code> {" ".join(badges)}</header>'
            f'<div class="io"><div><h4>input</h4><pre>{esc(_as_text(case.get("input")))}</pre></div>'
            f'<div><h4>expected</h4><pre>{esc(_as_text(case.get("expected")))}</pre></div></div>'
            f'{errors}<div class="answers" style="grid-template-columns:repeat({max(1, len(roles))},minmax(0,1fr))">'
            f'{answers}</div></article>')


def _cases_section(report: Mapping[str, Any], roles: Sequence[str]) -> str:
    suites = report.get("suites") or []
    total = sum(len(s.get("cases") or []) for s in suites)
    controls = ('<div class="filters" role="group" aria-label="filter cases">'
                '<label><input type="checkbox" id="f-miss"> misses only <small>(tuned missed)</small></label>'
                '<label><input type="checkbox" id="f-flip"> flips only <small>(base and tuned disagree)</small></label>'
                '<input type="search" id="f-text" placeholder="filter by text…" aria-label="filter by text">'
                f'<button type="button" id="f-reset">show all</button>'
                f'<span id="f-count">{total} of {total} cases</span></div>')
    blocks = []
    for index, suite in enumerate(suites):
        suite_roles = list(suite.get("models") or {})
        cases = "".join(_case_html(c, suite_roles, roles) for c in suite.get("cases") or [])
        blocks.append(f'<section class="suite-cases" id="cases-{index}"><h3>{esc(suite.get("suite"))} '
                      f'<small><code>{esc(suite.get("file"))}</code> · {len(suite.get("cases") or [])} cases</small>'
                      f'</h3>{cases}<p class="none" hidden>no case matches the filters.</p></section>')
    return f'<section id="cases"><h2>Cases</h2>{controls}{"".join(blocks)}</section>'


# -- the page ----------------------------------------------------------------------------------

_CSS = """
:root{--ok:#1f9d74;--bad:#c4495a;--warn:#d9822b;--muted:#667;--line:#dde1e8;font-family:system-ui,-apple-system,
"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2330;background:#f6f7f9}
body{margin:0 auto;max-width:1240px;padding:16px 24px 48px;font-size:14px;line-height:1.45}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:0 0 8px}h1 .badge,h2 .badge{vertical-align:middle}h3{font-size:16px;margin:24px 0 8px}
h4{margin:0 0 2px;font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
small{color:var(--muted);font-weight:normal}code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
.facts{color:var(--muted);margin:0 0 12px}.warn{color:var(--warn)}
nav a{margin-right:14px;text-decoration:none}nav a:hover{text-decoration:underline}
.suite,.chartbox,#cases{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:14px 0}
table.models{border-collapse:collapse;width:100%;margin:8px 0}
.tablewrap{overflow-x:auto}
table.models th,table.models td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;white-space:nowrap}
table.models th{white-space:normal;vertical-align:bottom}
table.models th{font-size:12px;color:var(--muted);font-weight:600}table.models td.n{text-align:right}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.gate.ok{color:var(--ok);font-weight:600}.gate.bad{color:var(--bad)}.gate.bad ul{margin:4px 0}
.charts{display:flex;flex-wrap:wrap;gap:16px}div.chart{flex:1 1 460px;min-width:0}
svg.chart{background:#fff;width:100%;height:auto;display:block}
svg .ctitle{font-size:13px;font-weight:600;fill:#1d2330}svg .tick,svg .glabel,svg .legend{font-size:11px;fill:#445}
svg .axis{font-size:11px;fill:var(--muted)}svg .grid{stroke:#eceff3}svg .axisline{stroke:#889}
svg .val{font-size:10.5px;fill:#1d2330}svg .val.na{fill:var(--muted);font-style:italic}
svg .whisker{stroke:#1d2330;stroke-width:1.2;fill:none}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:11px;font-weight:600;color:#fff;line-height:18px}
.badge.pass{background:var(--ok)}.badge.miss{background:var(--bad)}.badge.error{background:#555}
.badge.flaky{background:var(--warn)}
code.cid{background:#eef1f5;border-radius:4px;padding:0 4px}code.cid.miss{background:#fbe7ea}
code.cid.pass{background:#e3f4ee}
.baseline{border-left:3px solid #2d7fc1;padding:4px 10px;margin:8px 0;background:#f3f8fc}
.filters{display:flex;flex-wrap:wrap;gap:14px;align-items:center;position:sticky;top:0;background:#fff;
padding:8px 0;border-bottom:1px solid var(--line);z-index:1}
.filters input[type=search]{padding:3px 6px;min-width:180px}#f-count{color:var(--muted);margin-left:auto}
.case{border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:10px 0}
.case[data-miss="1"]{border-left:4px solid var(--bad)}.case header{margin-bottom:6px}
.io{display:grid;grid-template-columns:2fr 1fr;gap:12px;margin-bottom:8px}
pre{margin:0;white-space:pre-wrap;word-break:break-word;background:#f6f7f9;border-radius:4px;padding:6px 8px;
max-height:260px;overflow:auto;font-size:12.5px}
.answers{display:grid;gap:10px}.answer{border:1px solid var(--line);border-top:3px solid #999;border-radius:4px;
padding:6px 8px;min-width:0}.answer.miss{background:#fff8f9}.answer.error{background:#f7f7f7}
.role{font-weight:600;margin-bottom:2px}.meta{color:var(--muted);font-weight:normal;font-size:12px;margin-left:6px}
.model{color:var(--muted);margin-bottom:4px;overflow-wrap:anywhere}.reason{color:var(--muted);margin:4px 0 0}
.err{color:var(--bad);margin:4px 0}.muted{color:var(--muted)}
.samples ol{padding-left:20px;margin:4px 0}.samples li{margin:2px 0}
[hidden]{display:none!important}
"""

_JS = """
(function(){
  var miss=document.getElementById('f-miss'),flip=document.getElementById('f-flip'),
      text=document.getElementById('f-text'),count=document.getElementById('f-count'),
      reset=document.getElementById('f-reset');
  function apply(){
    var q=text.value.trim().toLowerCase(),shown=0,total=0;
    document.querySelectorAll('.suite-cases').forEach(function(block){
      var visible=0;
      block.querySelectorAll('.case').forEach(function(el){
        total++;
        var ok=(!miss.checked||el.getAttribute('data-miss')==='1')&&
               (!flip.checked||el.getAttribute('data-flip')==='1')&&
               (!q||el.textContent.toLowerCase().indexOf(q)>=0);
        el.hidden=!ok; if(ok){shown++;visible++;}
      });
      block.querySelector('.none').hidden=visible>0;
    });
    count.textContent=shown+' of '+total+' cases';
  }
  miss.addEventListener('change',apply);flip.addEventListener('change',apply);
  text.addEventListener('input',apply);
  reset.addEventListener('click',function(){miss.checked=false;flip.checked=false;text.value='';apply();});
  apply();
})();
"""


def render_html(report: Mapping[str, Any], baseline_diff: Mapping[str, dict] | None = None) -> str:
    """The report as one self-contained HTML document (no network needed to open it).

    ``baseline_diff`` is :func:`pytest_ft.baseline.compare`'s result; with it each suite shows what
    changed since the baseline.
    """
    suites = report.get("suites") or []
    roles = all_roles(report)
    ok = bool(report.get("passed"))
    facts = run_facts(report, str)
    warnings = [f'<p class="warn">warning: no price known for <code>{esc(m)}</code>: its cost shows as n/a '
                f'(add it with --ft-prices)</p>' for m in report.get("unpriced_models") or []]
    if report.get("interrupted"):
        warnings.append(f'<p class="gate bad">{_badge("miss", "NOT FINISHED")} the run did not finish '
                        f'({esc(report["interrupted"])}): not passed</p>')
    for error in report.get("invalid_suites") or []:
        message = error.get("message", error) if isinstance(error, dict) else error
        warnings.append(f'<p class="gate bad">{_badge("miss", "INVALID")} invalid suite: {esc(message)}</p>')
    nav = " ".join(f'<a href="#suite-{i}">{_verdict(bool((s.get("gate") or {}).get("passed")))} '
                   f'{esc(s.get("suite"))} <small>{esc(s.get("file"))}</small></a>' for i, s in enumerate(suites))
    summaries = "".join(_suite_summary(s, i, roles, baseline_diff.get(suite_key(s)) if baseline_diff else None)
                        for i, s in enumerate(suites))
    gone = ""
    if baseline_diff:
        gone_items = [d for d in baseline_diff.values() if d.get("status") == "gone"]
        if gone_items:
            gone = ('<section class="suite"><h2>Suites gone since the baseline</h2><ul>'
                    + "".join(f'<li>{esc(d.get("suite"))} <code>{esc(d.get("file"))}</code>: '
                              f'{len(d.get("removed", []))} case(s), accuracy then {esc(fmt_pct(d.get("accuracy_then")))}'
                              f'</li>' for d in gone_items) + "</ul></section>")
    title = f"pytest-ft report: {'passed' if ok else 'FAILED'}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<title>{esc(title)}</title><style>{_CSS}</style></head><body>'
        f'<header><h1>{_verdict(ok)} pytest-ft report</h1><p class="facts">{esc(" · ".join(facts))}</p>'
        f'{"".join(warnings)}<nav>{nav}</nav></header>'
        f'<section class="chartbox" id="chart"><h2>Accuracy and cost</h2>{render_charts(report)}</section>'
        f'{summaries}{gone}{_cases_section(report, roles)}'
        f'<script>{_JS}</script></body></html>\n'
    )


def write_html(report: Mapping[str, Any], path: str | Path, baseline_diff: Mapping[str, dict] | None = None) -> None:
    """Write :func:`render_html` to ``path``, creating its folder."""
    write_atomic(path, render_html(report, baseline_diff))
