#!/usr/bin/env python3
"""Throughput of a pytest-ft run against a latency-injecting OpenAI-compatible server.

N cases x 2 models (base and tuned), each request answered after a fixed latency. For each
size it runs, one after another against a fresh server each: pytest-ft with recording on
(the default users get; a fresh cassette folder, so every call is recorded), pytest-ft with
``--ft-disable-recording``, a bare ``AsyncOpenAI`` loop on the same requests (the floor for a
Python runner), and promptfoo when ``--promptfoo`` is given. It prints a JSON line per run and
then a table: wall time of the whole process, x ideal (requests x latency / concurrency), CPU
seconds and peak RSS of the process, the server's ``max_in_flight`` (the concurrency really
achieved), and for pytest-ft its time in garbage collection, in building and writing reports
and in closing the runner (which waits for the last recordings). See README.md beside it.

    python bench/runner_bench.py --server ../shared/bench/latency_server.py \\
        --sizes 1000:16 1000:64 [10000:128 100000:256] [--promptfoo ../shared/bench/promptfoo_peer.py]
    python bench/runner_bench.py --server ... --cases 1000 --concurrency 16 64     # the same sizes, old style
    python bench/runner_bench.py --server ... --sizes 1000:64 --src before=/tmp/old/src --src after=src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LABELS = ["POSITIVO", "NEGATIVO", "NEUTRO"]
SYSTEM = "Classifique o sentimento."
MODELS = ("gpt-4o-mini-base", "ft:gpt-4o-mini:acme:tuned:abc123")  # the base, then the tuned model
RUNNERS = ("record", "off", "bare", "promptfoo")

# Loaded into the pytest process with -p: when the last case finished, and the time spent in
# building and writing reports and in closing the runner.
TIMING_PLUGIN = '''
import json, os, time
import pytest

_t = {"report_s": 0.0, "close_s": 0.0, "gc_s": 0.0, "gc_runs": [0, 0, 0]}
_gc_started = []


def _gc(phase, info):
    if phase == "start":
        _gc_started.append(time.perf_counter())
    elif _gc_started:
        _t["gc_s"] += time.perf_counter() - _gc_started.pop()
        _t["gc_runs"][info["generation"]] += 1


def _timed(owner, name, key):
    original = getattr(owner, name, None)
    if original is None:
        return

    def timed(*args, **kwargs):
        if key == "close_s" and "threads_cpu_s" not in _t and os.path.isdir("/proc/self/task"):
            _t["threads_cpu_s"] = _threads_cpu()  # while the runner's threads are still there
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _t[key] += time.perf_counter() - started

    setattr(owner, name, timed)


def pytest_configure(config):
    import gc
    gc.callbacks.append(_gc)  # time in garbage collection, any thread
    if os.environ.get("FT_BENCH_GC_THRESHOLD"):  # an experiment: other collection thresholds
        gc.set_threshold(*(int(n) for n in os.environ["FT_BENCH_GC_THRESHOLD"].split(",")))
    try:
        from pytest_ft import plugin
        from pytest_ft.run import runner
    except ImportError:
        return
    _timed(plugin, "build_report", "report_s")
    _timed(getattr(plugin, "Controller", None), "_write_reports", "report_s")
    _timed(runner.Runner, "close", "close_s")


def pytest_sessionstart(session):
    _t["start"] = time.perf_counter()


def pytest_collection_finish(session):
    if os.environ.get("FT_BENCH_GC_FREEZE"):  # an experiment: what gc.freeze() after collection buys
        import gc
        gc.collect()
        gc.freeze()


def pytest_runtest_logfinish(nodeid, location):
    _t["last_case"] = time.perf_counter()


def _threads_cpu():
    """CPU seconds of each thread still alive, by name: where the process spends its CPU."""
    import threading
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        name = "asyncio (resolver)" if name.startswith("asyncio_") else name
        out[name] = round(out.get(name, 0) + (int(fields[11]) + int(fields[12])) / tick, 2)
    return {name: cpu for name, cpu in out.items() if cpu}


def pytest_unconfigure(config):
    path = os.environ.get("FT_BENCH_TIMING")
    if path and "start" in _t:
        out = {"report_s": round(_t["report_s"], 3), "close_s": round(_t["close_s"], 3),
               "cases_s": round(_t.get("last_case", _t["start"]) - _t["start"], 3),
               "gc_s": round(_t["gc_s"], 3), "gc_runs": _t["gc_runs"]}
        if "threads_cpu_s" in _t:
            out["threads_cpu_s"] = _t["threads_cpu_s"]
        with open(path, "w") as handle:
            json.dump(out, handle)
'''


def write_suite(directory: Path, cases: int) -> Path:
    lines = ["suite: bench", f"system: {SYSTEM}", "params: {temperature: 0, max_tokens: 5}",
             "grader: exact", "thresholds: {accuracy: 0.5}", "cases:"]
    for i in range(cases):
        label = LABELS[i % 3]
        lines.append(f"  - {{id: c{i}, input: 'review number {i} LABEL={label}', expected: {label}}}")
    path = directory / "bench.ft.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def stats(base: str) -> dict:
    return json.load(urllib.request.urlopen(base.rsplit("/v1", 1)[0] + "/stats"))


def start_server(script: str, latency_ms: float, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port_file = Path(tempfile.mkdtemp()) / "port"
    proc = subprocess.Popen([sys.executable, script, "--latency-ms", str(latency_ms), "--port-file", str(port_file),
                             *extra], stdout=subprocess.DEVNULL)
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("latency server did not start")


def timed_process(args: list[str], env: dict, cwd: Path, log: Path) -> tuple[float, int, dict]:
    """Run ``args``; its wall time, exit code, and its own (not its children's) peak RSS in MB
    and CPU seconds (user, system)."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, os.waitstatus_to_exitcode(status), {
        "peak_mb": round(usage.ru_maxrss / 1024, 1), "cpu_user_s": round(usage.ru_utime, 2),
        "cpu_sys_s": round(usage.ru_stime, 2)}


def run_pytest(suite: Path, url: str, concurrency: int, record: bool, workers: int, src: str | None,
               recordings: Path, gc_freeze: bool = False, gc_threshold: str | None = None) -> dict:
    """One pytest-ft run of the suite (recording on, in a fresh cassette folder under
    ``recordings``, or off). The folders are deleted once every run is done: 10,000 files
    deleted just before a run made creating its files several times slower here (ext4 mounted
    with ``discard``), which penalised whichever row came next."""
    work = suite.parent
    cassettes = recordings / f"cassettes-{time.monotonic_ns()}"  # fresh: every call is recorded
    timing = work / "timing.json"
    timing.unlink(missing_ok=True)
    (work / "report.json").unlink(missing_ok=True)
    (work / "_ft_bench_timing.py").write_text(TIMING_PLUGIN)
    args = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "-p", "_ft_bench_timing",
            f"--ft-model={MODELS[1]}", f"--ft-base-model={MODELS[0]}",
            f"--ft-base-url={url}", f"--ft-concurrency={concurrency}", f"--ft-report={work / 'report.json'}"]
    args += [f"--ft-cassette-dir={cassettes}"] if record else ["--ft-disable-recording"]
    if workers:
        args += ["-n", str(workers)]
    path = [str(work)] + ([src] if src else []) + [p for p in [os.environ.get("PYTHONPATH")] if p]
    env = dict(os.environ, OPENAI_API_KEY="sk-bench", FT_BENCH_TIMING=str(timing), PYTHONPATH=os.pathsep.join(path))
    if gc_freeze:
        env["FT_BENCH_GC_FREEZE"] = "1"
    if gc_threshold:
        env["FT_BENCH_GC_THRESHOLD"] = gc_threshold
    before = stats(url)
    log = work / "pytest.log"
    wall, code, usage = timed_process(args, env, work, log)
    after = stats(url)
    if code not in (0, 1):
        sys.stderr.write(log.read_text()[-3000:])
    report = json.loads((work / "report.json").read_text()) if (work / "report.json").exists() else {}
    models = report["suites"][0]["models"] if report.get("suites") else {}
    out = {"wall_s": round(wall, 2), "session_s": report.get("duration_s"),
           "accuracy": {role: round(m["accuracy"], 4) for role, m in models.items()}, **usage, "exit": code,
           "requests": after["requests"] - before["requests"], "max_in_flight": after["max_in_flight"]}
    if timing.exists():
        out.update(json.loads(timing.read_text()))
    if record:
        out["cassettes"] = sum(1 for _ in cassettes.rglob("*.yaml")) if cassettes.exists() else 0
    return out


def run_bare(url: str, cases: int, concurrency: int, work: Path) -> dict:
    """The same requests from one AsyncOpenAI client, asyncio.gather under a semaphore, in a process of its own."""
    before = stats(url)
    log = work / "bare.log"
    result = work / "bare.json"
    wall, code, usage = timed_process([sys.executable, __file__, "--bare-worker", url, str(cases), str(concurrency),
                                       str(result)], dict(os.environ, OPENAI_API_KEY="sk-bench"), work, log)
    after = stats(url)
    if code != 0:
        sys.stderr.write(log.read_text()[-3000:])
    inner = json.loads(result.read_text()) if result.exists() else {}
    return {"wall_s": round(wall, 2), "loop_s": inner.get("loop_s"), "accuracy": inner.get("accuracy", {}),
            **usage, "exit": code,
            "requests": after["requests"] - before["requests"], "max_in_flight": after["max_in_flight"]}


def bare_worker(url: str, cases: int, concurrency: int, out: str) -> None:
    import asyncio

    import openai

    async def main() -> dict:
        try:
            import httpx2 as httpx
        except ImportError:
            import httpx
        limits = httpx.Limits(max_connections=max(concurrency, 100), max_keepalive_connections=max(concurrency, 100))
        client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0,
                                    http_client=openai.DefaultAsyncHttpxClient(limits=limits))
        gate = asyncio.Semaphore(concurrency)
        right = dict.fromkeys(MODELS, 0)

        async def one(i: int, model: str) -> None:
            label = LABELS[i % 3]
            async with gate:
                answer = await client.chat.completions.create(
                    model=model, temperature=0, max_tokens=5,
                    messages=[{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": f"review number {i} LABEL={label}"}])
            right[model] += (answer.choices[0].message.content or "").strip() == label

        started = time.perf_counter()
        await asyncio.gather(*(one(i, model) for i in range(cases) for model in MODELS))
        loop_s = time.perf_counter() - started
        await client.close()
        return {"loop_s": round(loop_s, 2),
                "accuracy": {"base": round(right[MODELS[0]] / cases, 4), "tuned": round(right[MODELS[1]] / cases, 4)}}

    Path(out).write_text(json.dumps(asyncio.run(main())))


def run_promptfoo(script: str, url: str, cases: int, concurrency: int, work: Path) -> dict:
    """promptfoo_peer.py on the same work; peak RSS is its largest process (node), CPU all of them."""
    log = work / "promptfoo.log"
    wall, code, usage = timed_process([sys.executable, script, "--base-url", url, "--cases", str(cases),
                                       "--concurrency", str(concurrency)], dict(os.environ), work, log)
    try:
        peer = json.loads(log.read_text().strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": log.read_text()[-500:], "wall_s": round(wall, 2)}
    peer.pop("runner", None), peer.pop("cases", None), peer.pop("concurrency", None)
    # promptfoo's own wall time (it exits 100 when some assertions fail: the base model's wrong answers)
    return {**peer, "wall_s": round(peer["wall_s"], 2), **usage, "exit": 0 if peer.get("exit") in (0, 100) else peer.get("exit")}


def one_run(args: argparse.Namespace, runner: str, src_label: str | None, src: str | None,
            cases: int, concurrency: int, suite: Path) -> dict:
    # A fresh server per run, so max_in_flight is this run's alone.
    proc, url = start_server(args.server, args.latency_ms, args.server_args)
    load = round(os.getloadavg()[0], 2)
    try:
        if runner in ("record", "off"):
            result = run_pytest(suite, url, concurrency, runner == "record", args.workers, src, args.recordings,
                                args.gc_freeze, args.gc_threshold)
            name = f"pytest-ft[{src_label}]" if src_label else "pytest-ft"
            name += " record" if runner == "record" else " off"
        elif runner == "bare":
            result, name = run_bare(url, cases, concurrency, suite.parent), "bare AsyncOpenAI"
        else:
            result, name = run_promptfoo(args.promptfoo, url, cases, concurrency, suite.parent), "promptfoo"
            result["max_in_flight"] = stats(url)["max_in_flight"]
    finally:
        proc.terminate()
        proc.wait()
    ideal = 2 * cases * args.latency_ms / 1000 / concurrency
    line = {"runner": name, "cases": cases, "concurrency": concurrency, "ideal_s": round(ideal, 2),
            "load_before": load, **result}
    if "wall_s" in result:
        line["x_ideal"] = round(result["wall_s"] / ideal, 2)
    if result.get("session_s"):
        line["session_x_ideal"] = round(result["session_s"] / ideal, 2)
    return line


def median_row(rows: list[dict]) -> dict:
    """The run with the median wall time, with every run's wall time beside it."""
    walls = sorted(r.get("wall_s", float("inf")) for r in rows)
    middle = statistics.median_low(walls)
    row = dict(next(r for r in rows if r.get("wall_s", float("inf")) == middle))
    if len(rows) > 1:
        row["walls_s"] = walls
    return row


def table(rows: list[dict]) -> str:
    head = ["size", "runner", "wall s", "x ideal", "vs off", "CPU s", "GC s", "peak MB", "in flight", "report s",
            "close s", "load"]
    lines = [head]
    off = {(r["cases"], r["concurrency"], r["runner"].rsplit(" ", 1)[0]): r["wall_s"]
           for r in rows if r["runner"].endswith(" off") and "wall_s" in r}
    for r in rows:
        key = (r["cases"], r["concurrency"], r["runner"].rsplit(" ", 1)[0])
        vs_off = f"{r['wall_s'] / off[key]:.2f}" if r["runner"].endswith(" record") and key in off else ""
        wall = f"{r['wall_s']:.2f}" if "wall_s" in r else "-"
        if r.get("walls_s"):
            wall += " (" + "/".join(f"{w:.1f}" for w in r["walls_s"]) + ")"
        if r.get("error") or r.get("exit") not in (0, 1, None):
            wall += " !"
        lines.append([f"{r['cases']:,}x2 @{r['concurrency']}", r["runner"], wall,
                      f"{r['x_ideal']:.2f}" if "x_ideal" in r else "-", vs_off,
                      f"{r['cpu_user_s'] + r['cpu_sys_s']:.1f}" if "cpu_user_s" in r else "-",
                      f"{r['gc_s']:.2f}" if "gc_s" in r else "",
                      f"{r['peak_mb']:.0f}" if "peak_mb" in r else "-",
                      str(r.get("max_in_flight", "-")),
                      f"{r['report_s']:.2f}" if "report_s" in r else "",
                      f"{r['close_s']:.2f}" if "close_s" in r else "", f"{r['load_before']:.1f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def parse_size(text: str) -> tuple[int, int]:
    try:
        cases, concurrency = text.split(":")
        return int(cases), int(concurrency)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is CASES:CONCURRENCY, e.g. 1000:64 (got {text!r})") from None


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-worker":
        url, cases, concurrency, out = sys.argv[2:6]
        bare_worker(url, int(cases), int(concurrency), out)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="path of latency_server.py")
    parser.add_argument("--sizes", type=parse_size, nargs="+", metavar="CASES:CONCURRENCY",
                        help="sizes to run, e.g. 1000:16 1000:64 10000:128 100000:256 (default: --cases x --concurrency)")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--runners", nargs="+", choices=RUNNERS,
                        help="what to run for each size (default: record off bare, and promptfoo with --promptfoo)")
    parser.add_argument("--record", action="store_true",
                        help="(older option) with no --runners: pytest-ft with recording on only")
    parser.add_argument("--src", action="append", default=[], metavar="LABEL=DIR",
                        help="run pytest-ft from this source tree (put first on PYTHONPATH); repeat to compare trees")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each row (interleaved); the median is shown")
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (-n)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="experiment: gc.freeze() in the pytest process once collection is done")
    parser.add_argument("--gc-threshold", metavar="G0,G1,G2",
                        help="experiment: gc.set_threshold(G0, G1, G2) in the pytest process (e.g. 700,10,1000)")
    parser.add_argument("--promptfoo", help="path of promptfoo_peer.py (promptfoo on PATH): time promptfoo too")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH",
                        help="write every run as one JSON document to PATH (or, bare, to stdout instead of the table)")
    parser.add_argument("--server-args", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args()

    sizes = args.sizes or [(args.cases, c) for c in args.concurrency]
    runners = args.runners or (["record"] if args.record else ["record", "off", "bare"])
    if args.promptfoo and "promptfoo" not in runners and not args.runners:
        runners.append("promptfoo")
    if "promptfoo" in runners and not args.promptfoo:
        parser.error("--runners promptfoo needs --promptfoo PATH")
    # Each run has a folder of its own as its working directory: paths given relative to here
    # must still find their files.
    args.server = os.path.abspath(args.server)
    args.promptfoo = args.promptfoo and os.path.abspath(args.promptfoo)
    trees = [(label, os.path.abspath(path)) for label, path in
             (s.split("=", 1) if "=" in s else (s, s) for s in args.src)] or [(None, None)]
    to_stdout = args.json == "-"

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ft-bench-recordings-") as recordings:
        args.recordings = Path(recordings)
        for cases, concurrency in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                suite = write_suite(Path(tmp), cases)
                plan = [(r, label, src) for r in runners
                        for label, src in (trees if r in ("record", "off") else [(None, None)])]
                runs: dict[tuple, list[dict]] = {}
                for _ in range(args.repeat):
                    for runner, label, src in plan:
                        line = one_run(args, runner, label, src, cases, concurrency, suite)
                        runs.setdefault((runner, label), []).append(line)
                        if not to_stdout:
                            print(json.dumps(line), flush=True)
                rows += [median_row(runs[(runner, label)]) for runner, label, _ in plan]
    document = {"latency_ms": args.latency_ms, "cpus": os.cpu_count(), "python": sys.version.split()[0],
                "rows": rows}
    if to_stdout:
        print(json.dumps(document, indent=2))
        return
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
