#!/usr/bin/env python3
"""Replaying a recorded suite against running as many trivial pytest tests, side by side.

Records an N-case suite once (2N calls, through a latency-injecting OpenAI-compatible server at
zero latency), then times, alternately and ``--rounds`` times each:

* ``pytest SUITE --ft-record-mode=none`` with the endpoint pointed at a closed port (replay only,
  no network), and
* ``pytest test_trivial.py`` holding N functions ``def test_i(): pass``.

Prints the median wall time of each and their ratio.

    python bench/replay_bench.py --server ../shared/bench/latency_server.py --cases 10000
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from runner_bench import start_server, write_suite  # noqa: E402

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
MODELS = ["--ft-model=ft:gpt-4o-mini:acme:tuned:abc123", "--ft-base-model=gpt-4o-mini-base"]


def timed(args: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        raise SystemExit(f"{' '.join(args[3:6])}… exited {proc.returncode}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="path of latency_server.py (used to record once)")
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        suite = write_suite(work, args.cases)
        (work / "test_trivial.py").write_text("".join(f"def test_{i}():\n    pass\n" for i in range(args.cases)))
        env = dict(os.environ, OPENAI_API_KEY="sk-bench")
        proc, url = start_server(args.server, 0, [])
        try:
            record = timed(PYTEST + [str(suite), *MODELS, f"--ft-base-url={url}", "--ft-concurrency=64"], work, env)
        finally:
            proc.terminate()
            proc.wait()
        recordings = sum(1 for _ in (work / "cassettes").rglob("*.yaml"))
        offline = {k: v for k, v in env.items() if k != "OPENAI_API_KEY"}
        replay_args = PYTEST + [str(suite), *MODELS, "--ft-base-url=http://127.0.0.1:9/v1", "--ft-record-mode=none",
                                f"--ft-report={work / 'report.json'}"]
        replays, trivials = [], []
        for _ in range(args.rounds):
            replays.append(timed(replay_args, work, offline))
            trivials.append(timed(PYTEST + ["test_trivial.py"], work, env))
        calls = json.loads((work / "report.json").read_text())["calls"]
        replay, trivial = statistics.median(replays), statistics.median(trivials)
        print(json.dumps({"cases": args.cases, "cassettes": recordings, "recorded_calls": calls["replayed"],
                          "live_calls": calls["live"], "record_s": round(record, 2),
                          "replay_s": round(replay, 2), "trivial_tests_s": round(trivial, 2),
                          "ratio": round(replay / trivial, 2),
                          "replay_runs": [round(x, 2) for x in replays],
                          "trivial_runs": [round(x, 2) for x in trivials]}))


if __name__ == "__main__":
    main()
