"""The Markdown and HTML reports, rendered from report dicts shaped like the plugin's JSON report."""

import copy
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

from pytest_ft.report.baseline import compare
from pytest_ft.report.render.html import render_html, write_html
from pytest_ft.report.render.markdown import append_step_summary, code, escape_cell, fmt_cost, render_markdown, write_markdown

# -- report builders ---------------------------------------------------------------------------

MODELS = {"base": "gpt-4o-mini-2024-07-18", "tuned": "ft:gpt-4o-mini-2024-07-18:acme:x:1",
          "previous": "ft:gpt-4o-mini-2024-07-18:acme:x:0"}


def entry(role, passed, output=None, error=None, **extra):
    """One role's answer to a case, as the report writes it."""
    return {"model": MODELS[role], "output": None if error else (output if output is not None else
                                                                   ("POSITIVO" if passed else "WRONG")),
            "passed": passed and not error, "score": 1.0 if passed and not error else 0.0,
            "reason": "exact match" if passed else "expected 'POSITIVO', got 'WRONG'", "replayed": False,
            "error": error, "prompt_tokens": 9, "completion_tokens": 1, **extra}


def case(case_id, input_text="Adorei LABEL=POSITIVO", expected="POSITIVO", file="s.ft.yaml", **roles):
    """A case; each keyword is a role: True/False (passed) or a ready entry dict."""
    result = {"id": case_id, "nodeid": f"{file}::{case_id}", "input": input_text, "expected": expected,
              "errors": [], "cassette": None}
    for role, value in roles.items():
        result[role] = value if isinstance(value, dict) else entry(role, value)
        if result[role]["error"]:
            result["errors"].append(result[role]["error"])
    return result


def suite(name, file, cases, cost=(8.1e-06, 1.62e-05), gate=None, judge=None, thresholds=None):
    """A suite with its models' figures computed from the cases, like report.py does."""
    roles = [r for r in ("base", "tuned", "previous") if any(r in c for c in cases)]
    models = {}
    for index, role in enumerate(roles):
        outcomes = [c[role] for c in cases if role in c]
        passed = sum(1 for o in outcomes if o["passed"])
        models[role] = {"model": MODELS[role], "cases": len(outcomes), "passed": passed,
                        "errors": sum(1 for o in outcomes if o["error"]),
                        "accuracy": passed / len(outcomes) if outcomes else 0.0,
                        "prompt_tokens": 9 * len(outcomes), "completion_tokens": len(outcomes), "cached_tokens": 0,
                        "requests": len(outcomes), "cost_usd": cost[index] if index < len(cost) else None,
                        "replayed": 0}
    fixed = [c["id"] for c in cases if not c["errors"] and c["tuned"]["passed"] and not c["base"]["passed"]]
    regressions = [c["id"] for c in cases if not c["errors"] and c["base"]["passed"] and not c["tuned"]["passed"]]
    return {"suite": name, "file": file, "thresholds": thresholds or {},
            "gate": gate or {"passed": True, "failures": []}, "models": models,
            "gain": models["tuned"]["accuracy"] - models["base"]["accuracy"], "judge": judge,
            "fixed": fixed, "regressions": regressions, "errored": [c["id"] for c in cases if c["errors"]],
            "cases": cases}


def report(*suites, unpriced=()):
    return {"version": 1, "created": "2026-11-25T09:15:28+00:00",
            "passed": all(s["gate"]["passed"] for s in suites), "suites": list(suites), "invalid_suites": [],
            "calls": {"replayed": 0, "live": 14}, "unpriced_models": list(unpriced), "duration_s": 1.17}


def sample_report():
    """The shape of a real two-suite run (the plugin's own output on a fake server)."""
    first = suite("sentiment", "sample.ft.yaml", [
        case("adorei", file="sample.ft.yaml", base=True, tuned=True),
        case("pessimo", "pessimo LABEL=NEGATIVO BASEWRONG", "NEGATIVO", "sample.ft.yaml",
             base=entry("base", False), tuned=entry("tuned", True, "NEGATIVO")),
        case("neutro", "ok LABEL=NEUTRO TUNEDWRONG", "NEUTRO", "sample.ft.yaml",
             base=entry("base", True, "NEUTRO"), tuned=entry("tuned", False)),
        case("judged", "GOOD LABEL=ok", "ok", "sample.ft.yaml",
             base=entry("base", True, "ok", reason="judge 0.90: looks good", score=0.9),
             tuned=entry("tuned", True, "ok", reason="judge 0.90: looks good", score=0.9)),
    ], thresholds={"accuracy": 0.6}, judge={"model": "gpt-4o-2024-08-06-judge", "prompt_tokens": 220,
                                             "completion_tokens": 10, "cached_tokens": 0, "requests": 2,
                                             "cost_usd": None})
    second = suite("sentiment", "s.ft.yaml", [
        case("adorei", base=True, tuned=True),
        case("pessimo", "pessimo LABEL=NEGATIVO BASEWRONG", "NEGATIVO", base=False, tuned=True),
        case("neutro", "ok LABEL=NEUTRO TUNEDWRONG", "NEUTRO", base=True, tuned=False),
    ], cost=(6.15e-06, 1.23e-05),
        gate={"passed": False, "failures": ["the tuned model missed 1 case(s) and the suite has no thresholds"]})
    return report(first, second, unpriced=["gpt-4o-2024-08-06-judge"])


def rich_report():
    """Three roles, sampled and flaky answers, an error, hostile text, many regressions."""
    cases = [
        case("xss", "<script>alert('in')</script> & <b>bold</b>", "<i>POSITIVO</i>",
             base=True, tuned=entry("tuned", False, "</pre><script>alert('out')</script>"), previous=True),
        case("pipe|id", "a | b\nsecond line", "POSITIVO", base=False, tuned=True, previous=False),
        case("flaky", base=True, tuned=entry("tuned", True, samples=["POSITIVO", "WRONG", "POSITIVO"],
                                               pass_rate=2 / 3, flaky=True), previous=True),
        case("boom", base=True, tuned=entry("tuned", False, error="tuned model 'ft:x': HTTP 500: boom"),
             previous=True),
        case("json", "give json", {"label": "POSITIVO", "n": 1}, base=True, tuned=True, previous=True),
    ]
    cases += [case(f"reg{i:02d}", base=True, tuned=False, previous=True) for i in range(12)]
    big = suite("regress", "suites/regress.ft.yaml", cases, cost=(0.0012, None, 0.0031),
                gate={"passed": False, "failures": ["accuracy 0.235 < 0.900", "a | pipe and\na newline"]},
                thresholds={"accuracy": 0.9})
    return report(big, sample_report()["suites"][0], unpriced=[MODELS["tuned"]])


# -- Markdown ----------------------------------------------------------------------------------

def _table_rows(markdown, header_start="| role |"):
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _cells(row):
    """Split a GFM table row on its unescaped pipes."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_markdown_suites_tables_and_lists():
    md = render_markdown(sample_report())
    assert md.startswith("# ❌ pytest-ft: FAILED\n")
    assert "## ✅ sentiment — `sample.ft.yaml`" in md
    assert "## ❌ sentiment — `s.ft.yaml`" in md
    assert "- the tuned model missed 1 case(s) and the suite has no thresholds" in md
    rows = _table_rows(md)
    assert _cells(rows[0]) == ["role", "model", "cases", "passed", "accuracy (95% CI)",
                               "gain vs base (95% CI), McNemar p", "latency p50 / p95 ms", "prompt tok",
                               "completion tok", "cost USD"]
    assert _cells(rows[1]) == ["---", "---"] + ["---:"] * 8
    base_row, tuned_row = _cells(rows[2]), _cells(rows[3])
    # 3/4 → Wilson (0.300636, 0.954413)
    assert base_row == ["base", "`gpt-4o-mini-2024-07-18`", "4", "3", "75.0% [30.1–95.4]", "", "n/a", "36", "4",
                        "0.0000081"]
    # b = 1, c = 1: gain 0, McNemar p = min(1, 2·(1 + 2)/4) = 1
    assert tuned_row[5].startswith("+0.0 pp [") and tuned_row[5].endswith("p=1.00")
    assert tuned_row[9] == "0.000016"
    assert "**Judge** `gpt-4o-2024-08-06-judge`: 2 calls, 220 prompt + 10 completion tokens, cost USD n/a" in md
    assert "**Thresholds:** accuracy=0.6" in md
    assert "**Fixed by tuning (1):** `pessimo`" in md
    assert "**Regressions (1):** `neutro`" in md
    assert "**Is the gain real?** too few cases/flips to tell (4 cases, 2 flips)" in md
    assert "No price known for `gpt-4o-2024-08-06-judge`" in md


def test_markdown_escapes_cells_and_text():
    assert escape_cell("a|b\nc") == "a\\|b<br>c"
    assert code("a`b") == "``a`b``"
    assert code("x|y", in_table=True) == "`x\\|y`"
    odd = rich_report()
    odd["suites"][0]["models"]["tuned"]["model"] = "ft:evil|model\nname"
    md = render_markdown(odd)
    rows = _table_rows(md)
    assert all(len(_cells(r)) == 10 for r in rows), rows      # no pipe or newline broke a row
    assert "`ft:evil\\|model name`" in md
    # user text outside tables: a gate failure with a pipe and a newline stays one bullet, escaped
    assert "- a \\| pipe and a newline" in md
    assert "<script>" not in md


def test_markdown_three_roles_flaky_and_long_lists_fold():
    md = render_markdown(rich_report())
    rows = [_cells(r) for r in _table_rows(md)]
    assert [r[0] for r in rows[2:5]] == ["base", "tuned", "previous"]
    assert rows[3][9] == "n/a"                 # unknown price is n/a, never 0
    assert rows[4][5].startswith("+") and "p=" in rows[4][5]   # previous vs base has its own gain
    # 13 regressions > 10: folded
    assert "<details><summary><b>Regressions (13)</b></summary>" in md
    assert "`reg00`, `reg01`" in md and md.count("</details>") >= 1
    assert "**Flaky (1):** answers disagree across samples" in md
    assert "- `flaky`: tuned 2/3 samples passed" in md
    assert "**Errored (1):** `boom`" in md


def test_markdown_baseline_diff():
    now = sample_report()
    then = copy.deepcopy(now)
    first_then = then["suites"][0]
    first_then["cases"][2]["tuned"]["passed"] = True        # neutro passed then: regressed now
    first_then["cases"][1]["tuned"]["passed"] = False       # pessimo failed then: fixed now
    first_then["cases"].append(case("gone-case", base=True, tuned=True))
    first_then["models"]["tuned"]["accuracy"] = 0.8
    del now["suites"][0]["cases"][3]                         # judged: removed ...
    now["suites"][0]["cases"].append(case("fresh", base=True, tuned=True))   # ... fresh: added
    then["suites"].append(suite("old", "old.ft.yaml", [case("o1", base=True, tuned=True)]))
    md = render_markdown(now, compare(now, then))
    assert "**Since baseline:** tuned accuracy 80.0% → 75.0% (-5.0 pp); 1 regressed, 1 fixed, 1 added, 2 removed" in md
    assert "**Regressed since baseline (1):** `neutro`" in md
    assert "**Fixed since baseline (1):** `pessimo`" in md
    assert "**Added (1):** `fresh`" in md
    assert "**Removed (2):** `judged`, `gone-case`" in md
    assert "## Suites gone since the baseline" in md
    assert "- old — `old.ft.yaml`: 1 case(s), accuracy then 100.0%" in md


def test_invalid_suites_are_shown():
    data = sample_report()
    data["invalid_suites"] = [{"message": "bad.ft.yaml:3: grader: unknown grader 'nope'"}]
    assert "> ❌ **Invalid suite:** bad.ft.yaml:3: grader: unknown grader 'nope'" in render_markdown(data)
    assert "invalid suite: bad.ft.yaml:3: grader: unknown grader &#x27;nope&#x27;" in render_html(data)


def test_write_markdown_and_step_summary(tmp_path):
    md_path = tmp_path / "out" / "report.md"
    md = write_markdown(sample_report(), md_path)
    assert md_path.read_text(encoding="utf-8") == md
    summary = tmp_path / "step_summary.md"
    summary.write_text("## an earlier step\n", encoding="utf-8")
    assert append_step_summary(md, environ={"GITHUB_STEP_SUMMARY": str(summary)}) is True
    assert append_step_summary("second\n", environ={"GITHUB_STEP_SUMMARY": str(summary)}) is True
    text = summary.read_text(encoding="utf-8")
    assert text == "## an earlier step\n" + md + "second\n"     # appended, never overwritten
    assert append_step_summary(md, environ={}) is False
    assert append_step_summary(md, environ={"GITHUB_STEP_SUMMARY": ""}) is False


def test_fmt_cost_keeps_small_costs_visible():
    assert fmt_cost(None) == "n/a"
    assert fmt_cost(0.0) == "0.0000"
    assert fmt_cost(1.2345) == "1.2345"
    assert fmt_cost(8.1e-06) == "0.0000081"


# -- HTML --------------------------------------------------------------------------------------

class Page(HTMLParser):
    """Collects what the assertions need: every tag with its attributes, text per element id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []            # (tag, attrs dict)
        self.stack = []           # open elements: (tag, attrs)
        self.text_in = {}         # id of an enclosing <article> → its text
        self.scripts = []
        self.styles = []
        self.svg_texts = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag not in {"br", "meta", "input", "rect", "line", "path", "link", "img"}:
            self.stack.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        tags = [t for t, _ in self.stack]
        if tags and tags[-1] == "script":
            self.scripts.append(data)
        if tags and tags[-1] == "style":
            self.styles.append(data)
        if "svg" in tags and tags[-1] == "text":
            self.svg_texts.append(data)
        for tag, attrs in self.stack:
            if tag == "article" and "id" in attrs:
                self.text_in[attrs["id"]] = self.text_in.get(attrs["id"], "") + data

    def find(self, tag, **attrs):
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def parse(html_text):
    page = Page()
    page.feed(html_text)
    page.close()
    return page


def test_html_is_self_contained():
    page = parse(render_html(rich_report()))
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "action", "data", "poster"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, attrs)
        assert not (tag == "link" and "stylesheet" in (attrs.get("rel") or "")), attrs
        assert tag not in {"iframe", "img", "object", "embed"}, tag
    assert all("src" not in a for a in page.find("script"))            # inline script only
    # the case data (JSON, never run) and the script that draws the cases from it
    assert page.find("script") == [{"type": "application/json", "id": "ft-cases"}, {}]
    assert len(page.find("style")) == 1
    assert not any("@import" in s or "url(" in s for s in page.styles)


def test_html_chart_has_bars_axes_and_values():
    page = parse(render_html(sample_report()))
    charts = page.find("svg")
    assert len(charts) == 2                                      # accuracy and cost
    bars = [a for a in page.find("rect") if a.get("fill") and "height" in a and "x" in a
            and float(a.get("width", 0)) > 12]
    assert len(bars) == 2 * 2 * 2                                # 2 suites × 2 roles × 2 charts
    texts = " ".join(page.svg_texts)
    assert "Accuracy per model and suite" in texts and "Cost per model and suite (USD)" in texts
    assert "75.0%" in texts and "66.7%" in texts                 # value labels
    assert "0%" in texts and "100%" in texts and "accuracy" in texts and "cost USD" in texts   # axes
    assert "sentiment (sample.ft.yaml)" in texts and "sentiment (s.ft.yaml)" in texts  # same name: file shown
    assert "base" in texts and "tuned" in texts                  # legend
    assert len(page.find("path", **{"class": "whisker"})) == 4   # 95% CI whiskers on accuracy bars


def test_html_chart_marks_unknown_cost_as_na():
    page = parse(render_html(rich_report()))
    assert "n/a" in page.svg_texts


def test_html_every_case_with_every_answer():
    data = rich_report()
    html_text = render_html(data)
    page = parse(html_text)
    articles = page.find("article")
    assert len(articles) == sum(len(s["cases"]) for s in data["suites"])
    for s in data["suites"]:
        for c in s["cases"]:
            text = page.text_in[c["nodeid"]]
            assert c["id"] in text
            for role in s["models"]:
                answer = c[role]["output"] if c[role]["output"] is not None else c[role]["error"]
                assert answer in text, (c["id"], role)
                assert c[role]["model"] in text
    xss = page.text_in["s.ft.yaml::xss"]
    assert "<script>alert('in')</script> & <b>bold</b>" in xss       # shown as text ...
    assert "</pre><script>alert('out')</script>" in xss
    assert len(page.find("script")) == 2                              # ... never as markup (the case data
                                                                      # and the page's script only)
    assert not any(t == "i" for t, _ in page.tags)
    assert "&lt;b&gt;bold&lt;/b&gt;" in html_text and "<b>bold</b>" not in html_text
    assert '"label": "POSITIVO"' in page.text_in["s.ft.yaml::json"]      # JSON expected, indented
    flaky = page.text_in["s.ft.yaml::flaky"]
    assert "3 samples" in flaky and "2/3 samples passed" in flaky and "flaky" in flaky
    assert "HTTP 500: boom" in page.text_in["s.ft.yaml::boom"]
    assert "score 1.00" in page.text_in["s.ft.yaml::json"]
    assert "exact match" in page.text_in["s.ft.yaml::json"]


def test_html_filter_controls_and_flags():
    page = parse(render_html(rich_report()))
    assert page.find("input", type="checkbox", id="f-miss")
    assert page.find("input", type="checkbox", id="f-flip")
    assert page.find("button", id="f-reset")
    script = "".join(page.scripts)
    assert "f-miss" in script and "data-miss" in script and "data-flip" in script
    flags = {a["id"]: (a["data-miss"], a["data-flip"]) for a in page.find("article")}
    assert flags["s.ft.yaml::xss"] == ("1", "1")          # base passed, tuned missed
    assert flags["s.ft.yaml::pipe|id"] == ("0", "1")      # fixed by tuning
    assert flags["s.ft.yaml::json"] == ("0", "0")
    assert flags["s.ft.yaml::boom"] == ("1", "0")         # an error is a miss, not a flip
    assert flags["sample.ft.yaml::neutro"] == ("1", "1")


def test_html_summary_tables_and_baseline():
    now = rich_report()
    then = copy.deepcopy(now)
    then["suites"][0]["cases"][0]["tuned"]["passed"] = True       # xss regressed since
    then["suites"].append(suite("old", "old.ft.yaml", [case("o1", base=True, tuned=True)]))
    html_text = render_html(now, compare(now, then))
    page = parse(html_text)
    assert len(page.find("table", **{"class": "models"})) == 2        # one summary table per suite
    assert html_text.count('<span class="swatch"') == 3 + 2            # a row per role
    assert "75.0% [30.1–95.4]" in html_text                            # accuracy with its 95% CI
    assert "Regressed since baseline (1)" in html_text
    assert "Suites gone since the baseline" in html_text
    assert "accuracy 0.235 &lt; 0.900" in html_text                    # gate failures, escaped
    assert "Is the gain real?" in html_text
    assert "Regressions (13)</b></summary>" in html_text               # long lists folded


def test_write_html(tmp_path):
    path = tmp_path / "deep" / "report.html"
    write_html(sample_report(), path)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# -- in a real browser -------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                             "(apt-get install chromium) to render the HTML")


def _chromium(*args, tmp_path):
    profile = tempfile.mkdtemp(dir=tmp_path)
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(tmp_path)})


@pytest.mark.slow
@needs_chromium
def test_html_renders_in_headless_chromium(tmp_path):
    page = tmp_path / "ft_report.html"
    write_html(rich_report(), page)
    shot = tmp_path / "ft_report.png"
    result = _chromium(f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri(), tmp_path=tmp_path)
    assert shot.exists(), result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000                 # a blank page is a few kB


@pytest.mark.slow
@needs_chromium
def test_html_filters_work_in_headless_chromium(tmp_path):
    # The filter runs once on load, so a page saved with "misses only" ticked shows what a click would.
    page = tmp_path / "misses.html"
    page.write_text(render_html(rich_report()).replace('id="f-miss"', 'id="f-miss" checked'), encoding="utf-8")
    result = _chromium("--dump-dom", page.as_uri(), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = parse(result.stdout)
    shown = {a["id"] for a in dom.find("article")}                    # the page draws only what matches
    assert "s.ft.yaml::xss" in shown and "sample.ft.yaml::neutro" in shown
    assert "s.ft.yaml::json" not in shown and "s.ft.yaml::pipe|id" not in shown
    assert all(a["data-miss"] == "1" for a in dom.find("article"))
    count = re.search(r'id="f-count">(\d+) of (\d+) cases<', result.stdout)
    assert count and int(count.group(1)) == len(shown) < int(count.group(2))
