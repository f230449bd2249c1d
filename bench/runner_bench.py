#!/usr/bin/env python3
"""Throughput of a pytest-ft run against a latency-injecting OpenAI-compatible server.

N cases x 2 models (base and tuned), each request answered after a fixed latency. Prints
the wall time of the whole ``pytest`` process, the ideal (requests x latency /
concurrency), peak memory of the pytest process, and the server's ``max_in_flight`` (the
concurrency really achieved). Optionally times promptfoo on the same work, side by side.

    python bench/runner_bench.py --server ../shared/bench/latency_server.py \\
        --cases 1000 --concurrency 16 64 [--promptfoo ../shared/bench/promptfoo_peer.py]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LABELS = ["POSITIVO", "NEGATIVO", "NEUTRO"]


def write_suite(directory: Path, cases: int) -> Path:
    lines = ["suite: bench", "system: Classifique o sentimento.", "params: {temperature: 0, max_tokens: 5}",
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
    for _ in range(100):
        if port_file.exists() and port_file.read_text():
            return proc, f"http://127.0.0.1:{port_file.read_text()}/v1"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("latency server did not start")


def run_pytest(suite: Path, url: str, concurrency: int, record: bool, workers: int) -> dict:
    before = stats(url)
    cassettes = suite.parent / "cassettes"
    args = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
            "--ft-model=ft:gpt-4o-mini:acme:tuned:abc123", "--ft-base-model=gpt-4o-mini-base",
            f"--ft-base-url={url}", f"--ft-concurrency={concurrency}", f"--ft-report={suite.parent / 'report.json'}"]
    args += ["--ft-record-mode=all", f"--ft-cassette-dir={cassettes}"] if record else ["--ft-disable-recording"]
    if workers:
        args += ["-n", str(workers)]
    env = dict(os.environ, OPENAI_API_KEY="sk-bench")
    log = suite.parent / "pytest.log"
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=suite.parent)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the server's
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    after = stats(url)
    if code != 0:
        sys.stderr.write(log.read_text()[-3000:])
    report = json.loads((suite.parent / "report.json").read_text()) if code in (0, 1) else {}
    models = report["suites"][0]["models"] if report.get("suites") else {}
    accuracy = {role: round(m["accuracy"], 4) for role, m in models.items()}
    return {"wall_s": round(wall, 2), "session_s": report.get("duration_s"), "accuracy": accuracy, "peak_mb": round(usage.ru_maxrss / 1024, 1), "exit": code,
            "requests": after["requests"] - before["requests"], "max_in_flight": after["max_in_flight"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="path of latency_server.py")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--record", action="store_true", help="record cassettes while running (default: off)")
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (-n)")
    parser.add_argument("--promptfoo", help="path of promptfoo_peer.py: time promptfoo right after each run")
    parser.add_argument("--server-args", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args()

    for concurrency in args.concurrency:
        # A fresh server per run, so max_in_flight is this run's.
        proc, url = start_server(args.server, args.latency_ms, args.server_args)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                suite = write_suite(Path(tmp), args.cases)
                result = run_pytest(suite, url, concurrency, args.record, args.workers)
            ideal = 2 * args.cases * args.latency_ms / 1000 / concurrency
            line = {"runner": "pytest-ft", "cases": args.cases, "concurrency": concurrency,
                    "ideal_s": round(ideal, 2), **result, "x_ideal": round(result["wall_s"] / ideal, 2),
                    "session_x_ideal": round((result["session_s"] or 0) / ideal, 2)}
            print(json.dumps(line), flush=True)
            if args.promptfoo:
                out = subprocess.run([sys.executable, args.promptfoo, "--base-url", url, "--cases", str(args.cases),
                                      "--concurrency", str(concurrency)], capture_output=True, text=True)
                try:
                    peer = json.loads(out.stdout.strip().splitlines()[-1])
                    peer["x_ideal"] = round(peer["wall_s"] / ideal, 2)
                    print(json.dumps(peer), flush=True)
                except (IndexError, ValueError):
                    print(json.dumps({"runner": "promptfoo", "error": (out.stderr or out.stdout)[-500:]}))
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
