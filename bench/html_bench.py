#!/usr/bin/env python3
"""Writing the reports (HTML, Markdown, JSON) of a large run: time, peak memory and file size.

Builds a synthetic JSON report shaped like the plugin's own (one suite, N cases, a base and a
tuned model; see ``report/aggregate.py``'s ``_case_entry``: about 10% flips, 1% errors, some
sampled/flaky answers, one in a hundred a JSON expected value), then, each in a fresh process so
the figures do not mix, renders and writes:

* ``html``: :func:`pytest_ft.report.render.html.write_html` (``--ft-html``),
* ``md``: :func:`pytest_ft.report.render.markdown.write_markdown` (``--ft-markdown``),
* ``json``: :func:`pytest_ft.report.render.jsonfile.write_json` (``--ft-report``),
* ``render`` (on request): :func:`pytest_ft.report.render.html.render_html` alone, without the
  write (which scrubs the page of credentials: :func:`pytest_ft.files.write_atomic`),

and prints, per N and format, the wall and CPU seconds, the peak memory above what the report
itself already took (the process's high-water mark, reset after the report is built), and the
size of the written file; then the total of the three per N (the budget: 10 s at N = 100,000).
For the HTML it also times, apart, the suites' summaries (models table, McNemar's test): the
part of the page that is not the case list.

    python bench/html_bench.py                 # N = 10,000 and 100,000
    python bench/html_bench.py --cases 5000 --formats html
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE, TUNED = "gpt-4o-mini-2024-07-18", "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"
LABELS = ("POSITIVO", "NEGATIVO", "NEUTRO")


def _entry(model: str, passed: bool, output: str | None, error: str | None, i: int, **extra) -> dict:
    verdict = "error" if error else ("pass" if passed else "fail")
    return {"model": model, "output": output, "passed": passed and not error, "score": 1.0 if passed else 0.0,
            "reason": "exact match" if passed else f"expected {LABELS[i % 3]!r}, got {output!r}",
            "replayed": True, "error": error, "prompt_tokens": 40 + i % 17, "completion_tokens": 2,
            "latency_ms": 120.0 + i % 50, **extra, "verdict": verdict}


def make_report(n: int) -> dict:
    """An N-case, two-model report in the JSON report's shape."""
    cases = []
    for i in range(n):
        label = LABELS[i % 3]
        text = (f"Review #{i}: the product arrived {'late' if i % 2 else 'on time'} and "
                f"{'works as described' if i % 3 else 'broke after a week'}. Would I buy it again? "
                f"{'Maybe.' if i % 5 else 'Absolutely not <b>ever</b> & never.'}")
        base_ok, tuned_ok = i % 4 != 0, i % 10 != 3              # ~25% base misses, ~10% tuned misses
        error = "tuned model 'ft:…': HTTP 500: upstream timeout" if i % 100 == 42 else None
        expected: object = label if i % 100 != 7 else {"label": label, "confidence": 0.9}
        extra = {}
        if i % 50 == 11:
            extra = {"samples": [label, "WRONG", label], "pass_rate": 2 / 3, "flaky": True}
        case = {"id": f"review-{i:06d}", "nodeid": f"suites/sentiment.ft.yaml::review-{i:06d}", "input": text,
                "expected": expected, "labelled": True, "errors": [error] if error else [], "error": None,
                "cassette": None,
                "base": _entry(BASE, base_ok, label if base_ok else "NEUTRO", None, i),
                "tuned": _entry(TUNED, tuned_ok, None if error else (label if tuned_ok else "WRONG"), error, i,
                                **extra)}
        cases.append(case)
    models = {}
    for role, model in (("base", BASE), ("tuned", TUNED)):
        passed = sum(1 for c in cases if c[role]["verdict"] == "pass")
        models[role] = {"model": model, "cases": n, "passed": passed,
                        "errors": sum(1 for c in cases if c[role]["verdict"] == "error"), "unscored": 0,
                        "accuracy": passed / n, "prompt_tokens": 48 * n, "completion_tokens": 2 * n,
                        "cached_tokens": 0, "requests": n, "cost_usd": 1.5e-7 * n, "replayed": n,
                        "latency_p50_ms": 145.0, "latency_p95_ms": 167.0}
    flips = [(c["id"], c["base"]["verdict"], c["tuned"]["verdict"]) for c in cases]
    suite = {"suite": "sentiment", "file": "suites/sentiment.ft.yaml", "thresholds": {"accuracy": 0.85},
             "batch": False, "preference": None, "cost_benefit": None,
             "gate": {"passed": True, "failures": []}, "models": models,
             "gain": models["tuned"]["accuracy"] - models["base"]["accuracy"], "judge": None,
             "fixed": [i for i, b, t in flips if (b, t) == ("fail", "pass")],
             "regressions": [i for i, b, t in flips if (b, t) == ("pass", "fail")],
             "errored": [c["id"] for c in cases if c["errors"]],
             "flaky": [c["id"] for c in cases if c["tuned"].get("flaky")], "reference": None, "cases": cases}
    return {"version": 1, "created": "2026-11-25T09:15:28+00:00", "passed": True, "suites": [suite],
            "invalid_suites": [], "calls": {"replayed": 2 * n, "live": 0}, "unpriced_models": [],
            "duration_s": 12.5, "interrupted": None}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(n: int, fmt: str, out: Path) -> dict:
    """In this process: build the report, reset the memory high-water mark, write one format."""
    from pytest_ft.report.render.html import render_html, write_html
    from pytest_ft.report.render.jsonfile import write_json
    from pytest_ft.report.render.markdown import write_markdown

    if os.environ.get("HTML_BENCH_NO_MCNEMAR"):
        from pytest_ft.report import stats

        stats.mcnemar_exact = lambda b, c: 1.0   # see --no-mcnemar
    report = make_report(n)
    write = {"html": write_html, "md": write_markdown, "json": write_json,
             "render": lambda report, out: out.write_text(str(len(render_html(report))))}[fmt]
    if fmt in ("html", "render"):             # Jinja2 imported and the template compiled: not per-report work
        write({**report, "suites": []}, out)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")                   # resets VmHWM to the current RSS (Linux)
        before = _rss_kib("VmRSS")
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu, wall = time.process_time(), time.perf_counter()
    write(report, out)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _rss_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {"n": n, "format": fmt, "wall_s": wall, "cpu_s": cpu, "peak_mib": max(0, peak - before) / 1024,
              "size_mib": (int(out.read_text()) if fmt == "render" else out.stat().st_size) / 2 ** 20,
              "summary_s": None}
    if fmt in ("html", "render"):
        # Of that, the suites' summaries (tables, significance): the same work before and after the
        # case list became data, and none of it per case but the significance test's counting.
        from pytest_ft.report.render import html

        roles = html.all_roles(report)
        start = time.perf_counter()
        for i, suite in enumerate(report["suites"]):
            html._suite(suite, i, roles, None)
        result["summary_s"] = time.perf_counter() - start
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--formats", nargs="+", default=["html", "md", "json"],
                        choices=["html", "md", "json", "render"],
                        help="render: render_html alone, not written (its size: the page's characters)")
    parser.add_argument("--child", nargs=2, metavar=("N", "FORMAT"), help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help="write the reports into this folder and keep them")
    parser.add_argument("--no-mcnemar", action="store_true",
                        help="replace stats.mcnemar_exact by a constant: its exact sum of binomial terms takes "
                             "time quadratic in the flips (a minute at N = 100,000), hiding the rest")
    args = parser.parse_args()
    if args.child:
        out = Path(os.environ["HTML_BENCH_OUT"])
        print(json.dumps(measure(int(args.child[0]), args.child[1], out)))
        return 0
    print(f"{'cases':>8} {'format':>6} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} {'file MiB':>9}"
          f"  {'of which summaries s':>20}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n in args.cases:
            total = 0.0
            for fmt in args.formats:
                out = folder / f"report-{n}.{fmt}"
                env = {**os.environ, "HTML_BENCH_OUT": str(out)}
                if args.no_mcnemar:
                    env["HTML_BENCH_NO_MCNEMAR"] = "1"
                proc = subprocess.run([sys.executable, __file__, "--child", str(n), fmt], env=env,
                                      capture_output=True, text=True, check=False)
                if proc.returncode:
                    sys.stderr.write(proc.stderr[-3000:])
                    return proc.returncode
                r = json.loads(proc.stdout.splitlines()[-1])
                total += r["wall_s"] if fmt != "render" else 0.0
                summary = "" if r["summary_s"] is None else f"{r['summary_s']:>22.2f}"
                print(f"{n:>8} {fmt:>6} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} {r['peak_mib']:>9.1f} "
                      f"{r['size_mib']:>9.1f}{summary}", flush=True)
            if len(set(args.formats) - {"render"}) > 1:
                print(f"{n:>8} {'all':>6} {total:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
