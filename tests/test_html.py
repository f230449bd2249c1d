"""The HTML report never lets report text become markup: it is rendered by an autoescaping template.

Teams open the page from CI artifacts, and much of what it shows was written by a model, a suite
author or a failing server; any of it may carry markup. Each hostile value below must show as
text: its escaped form on the page, its raw form nowhere, and no tag or attribute of its own.

The case list is data (one JSON element, ``#ft-cases``) that the page's script draws a page at a
time; the first page is also markup, for a browser without script. Both are checked here: the
data parses back to the cases and no text in it can end its element; in a real browser, the
script draws the same markup as the template and pages and filters 5,000 cases.
"""

from __future__ import annotations

import gc
import html
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest

import pytest_ft.report.render.html as html_report
from pytest_ft.report.baseline import compare
from pytest_ft.report.render.html import render_html, write_html

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
TEMPLATES = Path(html_report.__file__).with_name("templates")


def answer(model, output="POSITIVO", passed=True, **extra):
    return {"model": model, "output": output, "passed": passed, "score": 1.0 if passed else 0.0,
            "reason": "exact match", "replayed": False, "error": None, "prompt_tokens": 9,
            "completion_tokens": 1, **extra}


def make_report(payload=None, where=None):
    """A one-suite report (base, tuned, a third role); ``payload`` goes into the field ``where``."""
    text = {field: (payload if field == where else default) for field, default in {
        "answer": "NEGATIVO", "input": "Adorei!", "expected": "POSITIVO", "suite": "sentiment",
        "case id": "c1", "error": "HTTP 500: boom", "model id": "ft:gpt-4o-mini:acme:x:1", "reason": "exact match",
        "role": "previous", "file": "s.ft.yaml", "gate failure": "accuracy 0.5 < 0.9", "threshold": "accuracy",
        "interrupted": "KeyboardInterrupt", "invalid suite": "bad.ft.yaml:3: unknown grader", "sample": "POSITIVO",
    }.items()}
    tuned, base = text["model id"], "gpt-4o-mini"
    cases = [
        {"id": text["case id"], "nodeid": f"{text['file']}::{text['case id']}", "input": text["input"],
         "expected": text["expected"], "errors": [], "base": answer(base),
         "tuned": answer(tuned, text["answer"], passed=False, reason=text["reason"],
                         samples=[text["sample"], "WRONG"], pass_rate=0.5, flaky=True),
         text["role"]: answer(tuned)},
        {"id": "c2", "nodeid": f"{text['file']}::c2", "input": "x", "expected": "y", "errors": [text["error"]],
         "base": answer(base), "tuned": answer(tuned, None, passed=False, error=text["error"]),
         text["role"]: answer(tuned)},
    ]
    models = {role: {"model": model, "cases": 2, "passed": 1, "accuracy": 0.5, "prompt_tokens": 18,
                     "completion_tokens": 2, "cost_usd": None, "replayed": None}
              for role, model in (("base", base), ("tuned", tuned), (text["role"], tuned))}
    suite = {"suite": text["suite"], "file": text["file"], "models": models, "cases": cases,
             "thresholds": {text["threshold"]: 0.9}, "gate": {"passed": False, "failures": [text["gate failure"]]},
             "judge": {"model": tuned, "requests": 2, "prompt_tokens": None, "completion_tokens": 3, "cost_usd": None},
             "fixed": [], "regressions": [text["case id"]], "errored": ["c2"]}
    return {"version": 1, "created": "2026-11-25T09:15:28+00:00", "passed": False, "suites": [suite],
            "invalid_suites": [{"message": text["invalid suite"]}], "calls": {"replayed": 0, "live": 4},
            "unpriced_models": [tuned], "duration_s": 1.0, "interrupted": text["interrupted"]}


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def tags(page: str) -> list[tuple[str, dict]]:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser.tags


FIELDS = ["answer", "input", "expected", "suite", "case id", "error", "model id", "reason", "role", "file",
          "gate failure", "threshold", "interrupted", "invalid suite", "sample"]


def case_data(page: str) -> dict:
    """The case data the page's script draws from: the JSON in ``<script id="ft-cases">``."""
    start = page.index('<script type="application/json" id="ft-cases">') + len(
        '<script type="application/json" id="ft-cases">')
    return json.loads(page[start:page.index("</script>", start)])


# where each field of make_report lands in the case data (the rest is only in the page's summary)
IN_CASE_DATA = {"answer", "input", "expected", "suite", "case id", "error", "model id", "reason", "role", "file",
                "sample"}


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("where", FIELDS)
def test_report_text_renders_inert(where, payload):
    page = render_html(make_report(payload, where))
    assert payload not in page
    assert html.escape(payload) in page
    found = tags(page)
    # the page's own script, and the case data it draws the cases from: never run as script
    assert [attrs for t, attrs in found if t == "script"] == [{"type": "application/json", "id": "ft-cases"}, {}]
    assert not any(t == "img" for t, _ in found)
    assert not any(name.startswith("on") for _, attrs in found for name in attrs)
    if where in IN_CASE_DATA:                                     # the case data has it, as it was
        assert payload in json.dumps(case_data(page), ensure_ascii=False)


@pytest.mark.parametrize("payload", ["</script><script>alert(1)</script>", "<!--<script>", "</SCRIPT >&lt;"])
def test_case_data_cannot_end_its_element(payload):
    """A payload that closes a <script> element (or opens a comment in one) in an answer, a case
    id, an input and an expected value stays inside the case data, and parses back unchanged."""
    report = make_report()
    case = report["suites"][0]["cases"][0]
    case.update(id=payload, nodeid=f"s.ft.yaml::{payload}", input=payload, expected=payload)
    case["tuned"]["output"] = payload
    page = render_html(report)
    assert payload not in page and html.escape(payload) in page   # the first page, as markup: escaped
    assert page.lower().count("</script") == 2                    # the data's and the script's own ends
    assert page.count("<!--") == 0
    assert len([t for t, _ in tags(page) if t == "script"]) == 2
    first = case_data(page)["suites"][0]["cases"][0]
    assert (first["id"], first["anchor"], first["input"], first["expected"], first["answers"][1]["output"]) == (
        payload, f"s.ft.yaml::{payload}", payload, payload, payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_baseline_text_renders_inert(payload):
    now = make_report()
    then = make_report()
    then["suites"][0]["suite"] = payload                          # a suite gone since the baseline
    then["suites"].append(make_report()["suites"][0])
    then["suites"][1]["cases"][0]["id"] = payload                 # a case removed since the baseline
    page = render_html(now, compare(now, then))
    assert "Suites gone since the baseline" in page and "Removed (1)" in page
    assert payload not in page and html.escape(payload) in page


def test_every_value_is_escaped_with_html_escape():
    """The page keeps html.escape's entities (&#x27;, &quot;) and prints None as nothing."""
    page = render_html(make_report("it's \"quoted\" & <b>", "answer"))
    assert "it&#x27;s &quot;quoted&quot; &amp; &lt;b&gt;" in page
    assert ">None<" not in page and "None prompt" not in page


def test_no_external_urls_even_when_the_report_mentions_them():
    page = render_html(make_report("see https://evil.example/x.js and //cdn.example/y.css", "answer"))
    for tag, attrs in tags(page):
        for name in ("src", "href", "srcset", "action", "data", "poster", "xlink:href"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, attrs)
        assert tag not in {"link", "iframe", "img", "object", "embed"}, tag
    # in the answer's text (on the first page) and in the case data, nowhere else
    assert re.findall(r"https?://", page) == ["https://", "https://"]
    assert "https://" in case_data(page)["suites"][0]["cases"][0]["answers"][1]["output"]
    assert "https://" not in render_html(make_report())


def test_template_is_autoescaped_and_never_marks_text_safe():
    assert html_report._template().environment.autoescape is True
    for template in TEMPLATES.iterdir():
        source = re.sub(r"{#.*?#}", "", template.read_text(encoding="utf-8"), flags=re.DOTALL)   # comments aside
        assert not re.search(r"\|\s*safe\b|filter\s+safe|autoescape\s+false|\bMarkup\b", source), template.name


def test_interrupted_run_and_filters_still_shown():
    page = render_html(make_report())
    assert '<span class="badge miss">NOT FINISHED</span> the run did not finish (KeyboardInterrupt)' in page
    assert 'id="f-miss"' in page and 'id="f-flip"' in page and 'id="f-count">2 of 2 cases<' in page
    articles = {a["id"]: a for t, a in tags(page) if t == "article"}
    assert articles["s.ft.yaml::c1"]["data-miss"] == "1" and articles["s.ft.yaml::c1"]["data-flip"] == "1"
    assert articles["s.ft.yaml::c2"]["data-miss"] == "1" and articles["s.ft.yaml::c2"]["data-flip"] == "0"


def test_write_html_writes_atomically(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(html_report, "write_atomic", lambda path, text: written.append((path, text)))
    write_html(make_report(), tmp_path / "r.html")
    assert written == [(tmp_path / "r.html", render_html(make_report()))]


# -- the case list: data, first page, and the script that pages it ------------------------------


def test_case_data_parses_back_to_the_cases():
    report = make_report()
    data = case_data(render_html(report))
    assert data["page_size"] == html_report.PAGE_SIZE
    [suite] = data["suites"]
    tuned = "ft:gpt-4o-mini:acme:x:1"
    assert {k: v for k, v in suite.items() if k != "cases"} == {
        "index": 0, "name": "sentiment", "file": "s.ft.yaml", "roles": ["base", "tuned", "previous"],
        "colours": [html_report.role_colour(i) for i in range(3)], "models": ["gpt-4o-mini", tuned, tuned]}
    base_answer = {"state": "pass", "score": "1.00", "tokens": [9, 1], "output": "POSITIVO", "reason": "exact match"}
    assert suite["cases"] == [
        {"id": "c1", "anchor": "s.ft.yaml::c1", "input": "Adorei!", "expected": "POSITIVO", "miss": 1, "flip": 1,
         "badges": [["miss", "regression"], ["flaky", "flaky"]],
         "answers": [base_answer,
                     {"state": "miss", "score": "0.00", "tokens": [9, 1], "flaky": True,
                      "pass_rate": "1/2 samples passed", "output": "NEGATIVO", "reason": "exact match",
                      "samples": ["POSITIVO", "WRONG"]},
                     base_answer]},
        {"id": "c2", "anchor": "s.ft.yaml::c2", "input": "x", "expected": "y", "miss": 1,
         "badges": [["error", "error"]],          # its error is shown under the tuned answer, not above
         "answers": [base_answer, {"state": "error", "score": "0.00", "tokens": [9, 1],
                                   "error": "HTTP 500: boom", "reason": "exact match"}, base_answer]},
    ]


def test_case_data_keeps_what_differs_from_the_suite():
    """An answer by another model than its role's, a JSON expected value, an unscored answer, a
    role that did not run the case, a case error of its own: all kept."""
    report = make_report()
    case = report["suites"][0]["cases"][0]
    case.update(expected={"label": "POSITIVO", "n": 1}, errors=["recording unreadable"], id=7)
    case["base"].update(model="gpt-4o", verdict="unscored", replayed=True, prompt_tokens=None)
    del case["previous"]
    [first, _] = case_data(render_html(report))["suites"][0]["cases"]
    assert first["id"] == "7" and first["expected"] == '{\n  "label": "POSITIVO",\n  "n": 1\n}'
    assert first["errors"] == ["recording unreadable"] and ["error", "error"] in first["badges"]
    assert first["answers"][0] == {"state": "error", "label": "unscored", "score": "1.00", "tokens": [None, 1],
                                   "replayed": True, "model": "gpt-4o", "output": "POSITIVO", "reason": "exact match"}
    assert first["answers"][2] is None


def big_report(sizes=(150, 100), empty=False):
    """Suites of many cases: base passes 2 in 3, tuned 3 in 4 (``empty``: a suite with none at the end)."""
    suites = []
    for s, size in enumerate(sizes):
        file = f"suite{s}.ft.yaml"
        cases = [{"id": f"c-{s}-{i:05d}", "nodeid": f"{file}::c-{s}-{i:05d}", "input": f"text {s} {i}",
                  "expected": "POSITIVO", "errors": [], "base": answer("gpt-4o-mini", passed=i % 3 != 0),
                  "tuned": answer("ft:x", passed=i % 4 != 0)} for i in range(size)]
        suites.append({"suite": f"suite {s}", "file": file, "cases": cases, "gate": {"passed": True, "failures": []},
                       "models": {r: {"model": m, "cases": size, "passed": 0, "accuracy": 0.5}
                                  for r, m in (("base", "gpt-4o-mini"), ("tuned", "ft:x"))}})
    if empty:
        suites.append({"suite": "empty", "file": "empty.ft.yaml", "cases": [], "gate": {"passed": True, "failures": []},
                       "models": {"base": {"model": "gpt-4o-mini", "cases": 0, "passed": 0, "accuracy": None}}})
    return {"version": 1, "created": "2026-11-25T09:15:28+00:00", "passed": True, "suites": suites,
            "invalid_suites": [], "calls": {"replayed": 0, "live": 0}, "unpriced_models": [], "duration_s": 1.0}


def test_only_the_first_page_is_markup():
    page = render_html(big_report((150, 100)))
    ids = [a["id"] for t, a in tags(page) if t == "article"]
    assert ids == [f"suite0.ft.yaml::c-0-{i:05d}" for i in range(html_report.PAGE_SIZE)]
    assert [a["id"] for t, a in tags(page) if t == "section" and a.get("class") == "suite-cases"] == ["cases-0"]
    assert 'id="f-count">250 of 250 cases<' in page
    assert "<noscript><p class=\"muted\">Showing the first 100 of 250 cases" in page
    data = case_data(page)
    assert [len(s["cases"]) for s in data["suites"]] == [150, 100]
    assert data["suites"][1]["cases"][99]["id"] == "c-1-00099"


def test_first_page_across_suites_and_an_empty_suite():
    page = render_html(big_report((30, 50), empty=True))
    sections = [a["id"] for t, a in tags(page) if t == "section" and a.get("class") == "suite-cases"]
    assert sections == ["cases-0", "cases-1", "cases-2"]
    assert len([t for t, _ in tags(page) if t == "article"]) == 80
    assert page.count('<p class="none">no case matches the filters.</p>') == 1      # the empty suite's
    assert "<noscript>" not in page                                                   # every case is shown


def test_render_leaves_the_garbage_collector_as_it_was():
    render_html(big_report((300,)))
    assert gc.isenabled()
    gc.disable()
    try:
        render_html(big_report((300,)))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_case_list_size_is_linear_and_the_markup_bounded():
    small, large = (render_html(big_report((n,))) for n in (1000, 4000))
    assert small.count("<article") == large.count("<article") == html_report.PAGE_SIZE
    per_case = (len(large) - len(small)) / 3000
    assert per_case < 400                            # the case's JSON: no markup, no repeated model ids
    assert len(case_data(large)["suites"][0]["cases"]) == 4000


# -- in a real browser -------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                             "(apt-get install chromium) to run the page's script")


def dump_dom(page_text: str, tmp_path: Path, fragment: str = "", after: str = "") -> str:
    """The page's DOM once its script has run (``after``: more script, run after the page's own)."""
    page = tmp_path / f"page{len(list(tmp_path.iterdir()))}.html"
    if after:
        page_text = page_text.replace("</body>", f"<script>{after}</script></body>")
    page.write_text(page_text, encoding="utf-8")
    profile = tempfile.mkdtemp(dir=tmp_path)
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               "--dump-dom", page.as_uri() + (f"#{urllib.parse.quote(fragment)}" if fragment else "")]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-2000:]
    return result.stdout


class CaseList(HTMLParser):
    """The case list's elements and text (``#case-list``), whitespace between elements aside."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tokens: list[tuple] = []
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        if self.depth or dict(attrs).get("id") == "case-list":
            self.depth += 1
            self.tokens.append(("<", tag, sorted(attrs)))

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1
            self.tokens.append((">", tag))

    def handle_data(self, data):
        if self.depth and data.strip():
            self.tokens.append(("text", data))


def case_list(page: str) -> list[tuple]:
    parser = CaseList()
    parser.feed(page)
    parser.close()
    return parser.tokens


def shown(dom: str) -> tuple[str, str, list[str]]:
    """What the page shows: its counter, its page "N of M" and the ids of the cases drawn."""
    count = re.search(r'id="f-count">([^<]*)<', dom).group(1)
    pages = set(re.findall(r'class="p-info">([^<]*)<', dom))
    assert len(pages) == 1, pages                      # the pager above the list and the one below agree
    return count, pages.pop(), [a["id"] for t, a in tags(dom) if t == "article"]


@pytest.mark.slow
@needs_chromium
def test_script_draws_the_first_page_as_the_template_does(tmp_path):
    report = make_report('</script><img src=x onerror=alert(1)> "quoted" & more', "answer")
    report["suites"][0]["cases"][0]["expected"] = {"label": "<b>POSITIVO</b>"}
    page = render_html(report)
    dom = dump_dom(page, tmp_path)
    assert case_list(dom) == case_list(page)           # same elements, attributes and text
    assert len([t for t, _ in tags(dom) if t == "article"]) == 2
    assert not any(t == "img" for t, _ in tags(dom))
    assert shown(dom)[:2] == ("2 of 2 cases", "page 1 of 1")


@pytest.mark.slow
@needs_chromium
def test_script_pages_and_filters_5000_cases(tmp_path):
    report = big_report((3000, 2000))
    page = render_html(report)
    ids = [f"suite{s}.ft.yaml::c-{s}-{i:05d}" for s, n in ((0, 3000), (1, 2000)) for i in range(n)]
    misses = [i for i in ids if int(i[-5:]) % 4 == 0]                 # tuned misses 1 in 4

    # what it shows first, then after clicks on "next" (above the list, then below it), a tick of
    # "misses only" (which runs over every case, not the page shown, and goes back to page 1), "next"
    steps = """
      var log=[],next=document.querySelectorAll('.p-next'),miss=document.getElementById('f-miss');
      function snap(){log.push([document.getElementById('f-count').textContent,
        document.querySelector('.p-info').textContent,
        Array.prototype.map.call(document.querySelectorAll('#case-list article'),function(a){return a.id;})]);}
      snap();next[0].click();next[1].click();snap();
      miss.checked=true;miss.dispatchEvent(new Event('change'));snap();next[0].click();snap();
      var out=document.createElement('pre');out.id='log';out.textContent=JSON.stringify(log);
      document.body.appendChild(out);"""
    dom = dump_dom(page, tmp_path, after=steps)
    log = json.loads(html.unescape(re.search(r'<pre id="log">(.*?)</pre>', dom, re.DOTALL).group(1)))
    miss_pages = f"page {{}} of {math.ceil(len(misses) / 100)}"
    assert [tuple(step) for step in log] == [
        ("5000 of 5000 cases", "page 1 of 50", ids[:100]), ("5000 of 5000 cases", "page 3 of 50", ids[200:300]),
        (f"{len(misses)} of 5000 cases", miss_pages.format(1), misses[:100]),
        (f"{len(misses)} of 5000 cases", miss_pages.format(2), misses[100:200])]
    assert shown(dom) == (f"{len(misses)} of 5000 cases", miss_pages.format(2), misses[100:200])
    assert all(a["data-miss"] == "1" for t, a in tags(dom) if t == "article")
    text = page.replace('id="f-text"', 'id="f-text" value="C-1-01234"')
    assert shown(dump_dom(text, tmp_path)) == ("1 of 5000 cases", "page 1 of 1", ["suite1.ft.yaml::c-1-01234"])

    # a link to a suite's cases, or to a case, opens the page it is on
    _, pages, drawn = shown(dump_dom(page, tmp_path, fragment="cases-1"))
    assert (pages, drawn[0]) == ("page 31 of 50", ids[3000])
    assert shown(dump_dom(page, tmp_path, fragment=ids[4321]))[1:] == ("page 44 of 50", ids[4300:4400])
