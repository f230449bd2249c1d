"""The HTML report never lets report text become markup: it is rendered by an autoescaping template.

Teams open the page from CI artifacts, and much of what it shows was written by a model, a suite
author or a failing server; any of it may carry markup. Each hostile value below must show as
text: its escaped form on the page, its raw form nowhere, and no tag or attribute of its own.
"""

from __future__ import annotations

import html
import re
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


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("where", FIELDS)
def test_report_text_renders_inert(where, payload):
    page = render_html(make_report(payload, where))
    assert payload not in page
    assert html.escape(payload) in page
    found = tags(page)
    assert [t for t, _ in found].count("script") == 1            # the page's own filter script only
    assert not any(t == "img" for t, _ in found)
    assert not any(name.startswith("on") for _, attrs in found for name in attrs)


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
    assert re.findall(r"https?://", page) == ["https://"]         # in the answer's text, nowhere else
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
