"""The run as one self-contained HTML page: tables, a chart, and every case side by side.

``--ft-html PATH`` writes it. One file with no external CSS, JS, fonts or images — it opens from a
CI artifact, an e-mail attachment or an air-gapped laptop, and shows the same thing years later.
The charts are inline SVG; the one script draws the case list and filters it to the misses, the
flips or a text, which is where a reviewer's attention goes.

The page is the Jinja2 template ``templates/report.html.j2``, rendered with autoescaping on. The
report is full of text that models, suite authors and error messages wrote, and one forgotten
escape would let a model's answer run script in a page teams open from CI. So this module writes
no markup at all: it prepares plain data (numbers formatted, lists built, verdicts taken from
:mod:`pytest_ft.results`), and the template lays it out, escaping every value it prints — the SVG
charts' coordinates included.

The cases are data, not markup: a run of 100,000 cases would be hundreds of MB of HTML that no
browser lays out. Every case is in one JSON document in the page (:func:`case_data`, its ``<``
``>`` ``&`` escaped so no text ends its element), and ``templates/report.js`` draws
:data:`PAGE_SIZE` of them at a time, through ``textContent`` only, with the filters running over
all of them. The template lays out the first page too, the same way, for a browser without
script. Building the page is linear in the cases, and no per-case markup is made past page one.
"""

from __future__ import annotations

import functools
import gc
import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...files import write_atomic
from ...results import Verdict, case_verdict, flip, verdict
from ..baseline import suite_key
from ..formats import fmt_latency, fmt_retires
from ..stats import wilson_interval
from .markdown import (
    flaky_cases,
    fmt_accuracy,
    fmt_agreement,
    fmt_cost,
    fmt_gain,
    fmt_pass_rate,
    fmt_pct,
    fmt_pp,
    model_columns,
    role_significance,
    run_facts,
)
from .sentences import (
    cost_benefit_lines,
    preference_lines,
    reference_lines,
    retirement_lines,
    unscored_lines,
)

ROLE_COLOURS = ("#8a94a6", "#1f9d74", "#d9822b", "#7b61c4", "#c4495a", "#2d7fc1")
PAGE_SIZE = 100  # cases per page of the case list
TEMPLATES = Path(__file__).with_name("templates")


@functools.cache
def _template() -> Any:
    """The page template, compiled once. Jinja2 is imported here: the plugin imports this module
    on every pytest run, and most runs write no HTML."""
    import jinja2
    from markupsafe import Markup

    def show(value: Any) -> Any:
        """How the template prints every value (Jinja's ``finalize``): None as nothing, not "None".

        The rest is escaped with :func:`html.escape`, as this page always was: autoescaping alone
        would escape it too, only spelling quotes ``&#39;`` where the page has always had
        ``&#x27;``. Only the template's own markup (a macro's output, already escaped) passes as is.
        """
        if type(value) is str:  # nearly every value: the quick way
            return Markup(html.escape(value, quote=True))
        if hasattr(value, "__html__"):
            return value
        return Markup(html.escape("" if value is None else str(value), quote=True))

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, finalize=show,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    return env.get_template("report.html.j2")


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


# -- the charts --------------------------------------------------------------------------------


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


def bar_chart(title: str, groups: Sequence[str], series: Sequence[str], colours: Sequence[str],
              values: Mapping[tuple[int, int], float | None], y_max: float, y_label: str,
              fmt_value: Callable[[Any], str], fmt_tick: Callable[[float], str],
              intervals: Mapping[tuple[int, int], tuple[float, float]] | None = None,
              width: int = 560, height: int = 300, n_ticks: int = 4) -> dict[str, Any]:
    """A grouped bar chart (one group per suite, one bar per role) as data for the template's SVG.

    ``values[(group, series)]`` is the bar's height in axis units, None for unknown (drawn as
    "n/a", never as a zero bar); ``intervals`` adds whiskers (the accuracy's confidence interval).
    Coordinates come back as short strings (one decimal); the SVG scales to its box (viewBox), so
    ``width`` and ``height`` only set the proportions.
    """
    left, right, top, bottom = 64, 12, 34, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    n_groups, n_series = max(1, len(groups)), max(1, len(series))
    group_w = plot_w / n_groups
    bar_w = min(64.0, group_w * 0.8 / n_series)

    def y(v: float) -> float:
        return top + plot_h - plot_h * max(0.0, min(v, y_max)) / y_max

    ticks = [{"y": f"{y(t):.1f}", "label_y": f"{y(t) + 4:.1f}", "label": fmt_tick(t)}
             for t in (y_max * i / n_ticks for i in range(n_ticks + 1))]
    chart_groups = []
    for g, group in enumerate(groups):
        gx = left + g * group_w + (group_w - bar_w * n_series) / 2
        bars = []
        for s, name in enumerate(series):
            if (g, s) not in values:
                continue
            x, v = gx + s * bar_w, values[(g, s)]
            bar: dict[str, Any] = {"na": v is None, "cx": f"{x + bar_w / 2:.1f}"}
            if v is not None:
                by, whisker = y(v), None
                label_y = by - 4
                if intervals and (g, s) in intervals:
                    low, high = (y(bound) for bound in intervals[(g, s)])
                    cx = x + bar_w / 2
                    whisker = f"M{cx:.1f} {low:.1f}V{high:.1f}M{cx - 4:.1f} {low:.1f}h8M{cx - 4:.1f} {high:.1f}h8"
                    label_y = min(label_y, high - 4)
                bar.update(x=f"{x + 1:.1f}", y=f"{by:.1f}", width=f"{bar_w - 2:.1f}",
                           height=f"{top + plot_h - by:.1f}", fill=colours[s], whisker=whisker,
                           tip=f"{group} · {name}: {fmt_value(v)}", value=fmt_value(v),
                           label_y=f"{max(top - 2, label_y):.1f}")
            bars.append(bar)
        chart_groups.append({"bars": bars, "x": f"{left + g * group_w + group_w / 2:.1f}", "name": group,
                             "short": group if len(group) <= 28 else group[:27] + "…"})
    legend, legend_x = [], left
    for s, name in enumerate(series):
        legend.append({"x": legend_x, "fill": colours[s], "name": name})
        legend_x += 24 + 8 * len(name)
    return {"title": title, "width": width, "height": height, "left": left, "right": left + plot_w,
            "bottom": top + plot_h, "axis_y": f"{top + plot_h / 2:.1f}", "y_label": y_label, "ticks": ticks,
            "groups": chart_groups, "legend": legend}


def charts(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Accuracy (with 95% intervals) and cost per model and suite: the page's two charts."""
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
    cost_max, cost_ticks = nice_axis(max((c for c in cost.values() if c is not None), default=0.0))
    return [bar_chart("Accuracy per model and suite (bars: 95% CI)", groups, roles, colours, accuracy, 1.0,
                      "accuracy", fmt_pct, lambda t: f"{t * 100:.0f}%", intervals, width=width),
            bar_chart("Cost per model and suite (USD)", groups, roles, colours, cost, cost_max, "cost USD",
                      fmt_cost, fmt_axis_cost, width=width, n_ticks=cost_ticks)]


# -- the suites --------------------------------------------------------------------------------


def _baseline(diff: Mapping[str, Any]) -> dict[str, Any]:
    """What changed since the baseline, for one suite (``diff`` is one entry of :func:`compare`)."""
    if diff.get("status") == "new":
        return {"new": True}
    then, now = diff.get("accuracy_then"), diff.get("accuracy_now")
    lists = [("Regressed since baseline", diff.get("regressed", []), "miss"),
             ("Fixed since baseline", diff.get("fixed", []), "pass"), ("Added", diff.get("added", []), ""),
             ("Removed", diff.get("removed", []), ""), ("Errored now", diff.get("errored", []), "error")]
    return {"new": False, "role": diff.get("role", "tuned"), "then": fmt_pct(then), "now": fmt_pct(now),
            "delta": f" ({fmt_pp(now - then)})" if then is not None and now is not None else "",
            "id_lists": [entry for entry in lists if entry[1]]}


def _suite(suite: Mapping[str, Any], index: int, roles: Sequence[str], diff: Mapping[str, Any] | None) -> dict:
    """One suite's summary: gate, models table, significance, judge, notable cases, baseline."""
    gate = suite.get("gate") or {"passed": True, "failures": []}
    models = []
    with_reference, with_retirement = model_columns(suite)
    for role, m in (suite.get("models") or {}).items():
        models.append({"role": role, "colour": role_colour(roles.index(role)) if role in roles else "#999",
                       "model": m.get("model"), "cases": m.get("cases"), "passed": m.get("passed"),
                       "accuracy": fmt_accuracy(m), "gain": fmt_gain(suite, role),
                       "agreement": fmt_agreement(suite, role) if with_reference else None,
                       "latency": fmt_latency(m), "retires": fmt_retires(m) if with_retirement else None,
                       "prompt_tokens": m.get("prompt_tokens"), "completion_tokens": m.get("completion_tokens"),
                       "cost": fmt_cost(m.get("cost_usd")), "replayed": m.get("replayed")})
    sig = role_significance(suite, "tuned")
    judge = suite.get("judge")
    lists = [("Fixed by tuning", suite.get("fixed") or [], "pass"),
             ("Regressions", suite.get("regressions") or [], "miss"), ("Errored", suite.get("errored") or [], "error")]
    return {
        "index": index, "name": suite.get("suite"), "file": suite.get("file"), "ok": bool(gate.get("passed")),
        "failures": gate.get("failures", []), "models": models,
        "with_reference": with_reference, "with_retirement": with_retirement,
        "reference": reference_lines(suite, limit=50),
        "cost": cost_benefit_lines(suite["cost_benefit"]) if suite.get("cost_benefit") else [],
        "notes": preference_lines(suite) + unscored_lines(suite),
        "significance": sig and {"verdict": sig["verdict"], "tuned_only": sig["discordant"]["tuned_only"],
                                 "base_only": sig["discordant"]["base_only"]},
        "judge": judge and {"model": judge.get("model"), "requests": judge.get("requests"),
                            "prompt_tokens": judge.get("prompt_tokens"),
                            "completion_tokens": judge.get("completion_tokens"),
                            "cost": fmt_cost(judge.get("cost_usd"))},
        "thresholds": [f"{k}={v}" for k, v in (suite.get("thresholds") or {}).items()],
        "id_lists": [entry for entry in lists if entry[1]],
        "flaky": [(cid, ", ".join(notes)) for cid, notes in flaky_cases(suite)],
        "baseline": None if diff is None else _baseline(diff),
    }


# -- the cases ---------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    """Expected values may be JSON (the json grader): show them as indented JSON, strings as is."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


_STATES = {Verdict.PASS: ("pass", "pass"), Verdict.FAIL: ("miss", "miss"), Verdict.ERROR: ("error", "error"),
           Verdict.UNSCORED: ("error", "unscored")}


def _text(value: Any) -> Any:
    """A value as the page prints it: strings as they are, None as nothing, anything else as str()."""
    return value if value is None or type(value) is str else str(value)


def _count(value: Any) -> Any:
    """A token count for the case data: an int as is, anything else as text (never a float NaN,
    which JSON.parse would refuse, losing the whole case list)."""
    return value if type(value) is int else _text(value)


def _answer(entry: Mapping[str, Any] | None, case_error: str | None, model: Any) -> dict | None:
    """One model's answer to a case, as the page's case data: its verdict badge, figures, text,
    error, reason and samples. None when the model did not run the case.

    Fields at their default are left out (a long run writes this 200,000 times): ``label`` when it
    is the ``state``, ``model`` when it is the role's model in the suite (``model``), and the
    score, tokens, flags, output (None: no answer), error, reason and samples when absent.
    """
    if not isinstance(entry, dict):
        return None
    get = entry.get  # a run of 100,000 cases comes here 200,000 times: the plain way, spelt out
    state, label = _STATES[verdict(entry, case_error)]
    data: dict[str, Any] = {"state": state}
    if label != state:
        data["label"] = label
    score = get("score")
    if isinstance(score, (int, float)):
        data["score"] = f"{score:.2f}"
    prompt, completion = get("prompt_tokens"), get("completion_tokens")
    if prompt is not None or completion is not None:
        data["tokens"] = [_count(get("prompt_tokens", 0)), _count(get("completion_tokens", 0))]
    if get("replayed"):
        data["replayed"] = True
    if get("flaky"):
        data["flaky"] = True
    if get("pass_rate") is not None:
        data["pass_rate"] = fmt_pass_rate(entry)
    if get("model") != model:
        data["model"] = _text(get("model"))
    for key in ("output", "error", "reason"):  # output None: "no answer" ("" is an empty answer)
        if get(key) is not None:
            data[key] = _text(get(key))
    samples = get("samples")
    if samples and isinstance(samples, list):
        data["samples"] = [_as_text(s) for s in samples]
    return data


def _case(case: Mapping[str, Any], roles: Sequence[str], models: Sequence[Any]) -> dict:
    """One case as the page's case data: its filter flags, badges, input, expected value and every
    role's answer (``None`` where a role did not run it), ``models`` being each role's model."""
    tuned = case.get("tuned")
    change = flip(case)  # the filters: "miss" (the tuned model did not pass), "flip" (base and tuned disagree)
    data: dict[str, Any] = {"id": _text(case.get("id")), "anchor": _text(case.get("nodeid") or case.get("id")),
                            "input": _as_text(case.get("input")), "expected": _as_text(case.get("expected"))}
    if isinstance(tuned, dict) and case_verdict(case, "tuned") is not Verdict.PASS:
        data["miss"] = 1
    if change is not None:
        data["flip"] = 1
    badges = []
    if change is not None:
        badges.append(["pass", "fixed by tuning"] if change == "fixed" else ["miss", "regression"])
    errors = case.get("errors")
    if errors:
        badges.append(["error", "error"])
    entries = [case.get(r) for r in roles]
    if any(isinstance(e, dict) and e.get("flaky") for e in entries):
        badges.append(["flaky", "flaky"])
    if badges:
        data["badges"] = badges
    if errors:
        # a case error already shown under the answer it belongs to is not repeated above them
        shown = [e.get("error") for e in entries if isinstance(e, dict) and e.get("error") is not None]
        errors = [_text(e) for e in errors if e not in shown]
        if errors:
            data["errors"] = errors
    case_error = case.get("error")
    data["answers"] = [_answer(e, case_error, m) for e, m in zip(entries, models)]
    return data


def _suite_meta(suite: Mapping[str, Any], index: int, all_role_order: Sequence[str]) -> dict:
    """One suite's heading in the case data: one column per role of that suite (colours follow the
    whole run's roles), and each role's model, which the answers leave out."""
    roles = list(suite.get("models") or {})
    models = [m.get("model") if isinstance(m, dict) else None for m in (suite.get("models") or {}).values()]
    return {"index": index, "name": _text(suite.get("suite")), "file": _text(suite.get("file")), "roles": roles,
            "colours": [role_colour(all_role_order.index(r)) if r in all_role_order else "#999" for r in roles],
            "models": [_text(m) for m in models]}


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def _in_script(text: str) -> str:
    """JSON text that cannot end the ``<script>`` element holding it, nor open a comment or a tag
    in it: ``<``, ``>`` and ``&`` (which in JSON text occur only inside strings) are written as the
    escapes ``\\u003c``, ``\\u003e`` and ``\\u0026``, which JSON.parse reads back as the same
    characters. Jinja's ``|tojson`` does the same."""
    if "<" in text or ">" in text or "&" in text:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def case_data(report: Mapping[str, Any], size: int = PAGE_SIZE) -> tuple[str, list[dict]]:
    """Every case of the run as the page's case data, and the first page's cases.

    The data is one JSON document, ``{"page_size": size, "suites": [{index, name, file, roles,
    colours, models, cases: [case, ...]}, ...]}`` (a case as :func:`_case` makes it), in compact
    JSON safe inside a ``<script>`` element (:func:`_in_script`). It is written a case at a time
    and joined once, so a run of 100,000 cases never holds their dicts all at once; only the
    first ``size`` are kept, as dicts, per suite (``count``: the suite's number of cases), for
    :func:`first_page`.
    """
    roles = all_roles(report)
    pieces = [f'{{"page_size":{int(size)},"suites":[']
    suites, kept = [], 0
    for index, suite in enumerate(report.get("suites") or []):
        meta = _suite_meta(suite, index, roles)
        cases = suite.get("cases") or []
        pieces.append(("," if index else "") + _in_script(_ENCODE(meta))[:-1] + ',"cases":[')
        first = []
        for k, case in enumerate(cases):
            data = _case(case, meta["roles"], meta["models"])
            if kept < size:
                first.append(data)
                kept += 1
            if k:
                pieces.append(",")
            pieces.append(_in_script(_ENCODE(data)))
        pieces.append("]}")
        suites.append({**meta, "count": len(cases), "cases": first})
    pieces.append("]}")
    return "".join(pieces), suites


def _answer_view(answer: Mapping[str, Any] | None, role: str, colour: str, model: Any) -> dict:
    """An answer of the case data with its defaults filled in, for the template (as report.js does)."""
    if answer is None:
        return {"run": False, "role": role}
    tokens = answer.get("tokens")
    return {"run": True, "role": role, "state": answer["state"], "label": answer.get("label", answer["state"]),
            "colour": colour, "score": answer.get("score"), "tokens": tokens is not None,
            "prompt_tokens": tokens[0] if tokens else 0, "completion_tokens": tokens[1] if tokens else 0,
            "replayed": answer.get("replayed"), "flaky": answer.get("flaky"), "pass_rate": answer.get("pass_rate"),
            "model": answer.get("model", model), "output": answer.get("output"), "error": answer.get("error"),
            "reason": answer.get("reason"), "samples": answer.get("samples", [])}


def first_page(suites: Sequence[Mapping[str, Any]], size: int = PAGE_SIZE) -> list[dict]:
    """The first page of the case list, unfiltered, as the template lays it out: what the page
    shows before its script runs, or without it. The suites and cases report.js draws on page 1
    with no filter on: the first ``size`` cases of the run (``suites`` as :func:`case_data`
    returns them), and any suite without cases that falls on that page."""
    total = sum(s["count"] for s in suites)
    blocks, start = [], 0
    for s in suites:
        if start < size or (s["count"] == 0 and total <= size):
            blocks.append({"index": s["index"], "name": s["name"], "file": s["file"], "count": s["count"],
                           "columns": max(1, len(s["roles"])), "cases": [
                               {**c, "miss": c.get("miss", 0), "flip": c.get("flip", 0),
                                "badges": c.get("badges", []), "errors": c.get("errors", []),
                                "answers": [_answer_view(a, r, colour, m) for a, r, colour, m
                                            in zip(c["answers"], s["roles"], s["colours"], s["models"])]}
                               for c in s["cases"]]})
        start += s["count"]
    return blocks


# -- the page ----------------------------------------------------------------------------------


def render_html(report: Mapping[str, Any], baseline_diff: Mapping[str, dict] | None = None) -> str:
    """The report as one self-contained HTML document (no network needed to open it).

    ``baseline_diff`` is :func:`pytest_ft.baseline.compare`'s result; with it each suite shows what
    changed since the baseline.
    """
    collecting = gc.isenabled()
    gc.disable()  # the case data is a few hundred thousand small objects, no cycles: without this
    try:          # the collector rescans the whole report again and again, doubling a long run's time
        return _render(report, baseline_diff)
    finally:
        if collecting:
            gc.enable()


CASE_DATA = '<script type="application/json" id="ft-cases">'  # the element the case data goes in


def _render(report: Mapping[str, Any], baseline_diff: Mapping[str, dict] | None) -> str:
    suites = report.get("suites") or []
    roles = all_roles(report)
    ok = bool(report.get("passed"))
    data, suites_data = case_data(report)
    page = _template().render(
        title=f"pytest-ft report: {'passed' if ok else 'FAILED'}", ok=ok, facts=" · ".join(run_facts(report, str)),
        unpriced=report.get("unpriced_models") or [], interrupted=report.get("interrupted"),
        retirements=retirement_lines(report),
        invalid=[e.get("message", e) if isinstance(e, dict) else e for e in report.get("invalid_suites") or []],
        charts=charts(report),
        suites=[_suite(s, i, roles, baseline_diff.get(suite_key(s)) if baseline_diff else None)
                for i, s in enumerate(suites)],
        gone=[{"suite": d.get("suite"), "file": d.get("file"), "removed": len(d.get("removed", [])),
               "then": fmt_pct(d.get("accuracy_then"))}
              for d in (baseline_diff or {}).values() if d.get("status") == "gone"],
        total=sum(s["count"] for s in suites_data), page_size=PAGE_SIZE, first_page=first_page(suites_data),
    )
    # The case data (JSON with every < > & escaped: _in_script) goes into its empty element here,
    # not through Jinja, which would copy its tens of MB twice over. The element's opening tag is
    # the template's own: report text, escaped, can never spell it.
    at = page.index(CASE_DATA) + len(CASE_DATA)
    return "".join((page[:at], data, page[at:]))


def write_html(report: Mapping[str, Any], path: str | Path, baseline_diff: Mapping[str, dict] | None = None) -> None:
    """Write :func:`render_html` to ``path``, creating its folder."""
    write_atomic(path, render_html(report, baseline_diff))
