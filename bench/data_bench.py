"""Benchmark `pytest-ft data` on big files: time and peak memory per command.

    python bench/data_bench.py                      # 100,000 and 1,000,000 lines
    python bench/data_bench.py --lines 1000000 --keep --dir /tmp/ftbench

Writes a synthetic chat dataset (system + user + assistant, ~300 bytes a line, 1% duplicates)
and runs each command in a fresh Python process, reporting wall time, lines per second, the
process's resident memory once imports and the tokenizer are loaded (baseline), and its peak.
Memory must stay bounded: the peak grows with the number of lines only by the few compact
integers kept per example (token counts, a 64-bit hash), not with the file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("the order arrived late and the box was damaged but support answered quickly and kindly "
         "produto entrega atendimento excelente horrivel prazo troca reembolso qualidade preco "
         "battery screen camera shipping refund warranty invoice account password login error").split()
LABELS = ("POSITIVO", "NEGATIVO", "NEUTRO")

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, os.environ["BENCH_SRC"])
from pytest_ft import data
from pytest_ft.data import tokens

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

tokens.get_encoding(tokens.encoding_for_model("gpt-4o-mini"))
baseline = rss_mb()
cmd, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if cmd == "validate":
    r = data.validate(path, "gpt-4o-mini", progress=False)
    result = {"errors": sum(r.errors.values()), "warnings": r.warnings}
elif cmd == "stats":
    r = data.stats(path, "gpt-4o-mini", progress=False)
    result = {"examples": r.examples, "billed_tokens": r.billed_tokens, "epochs": r.epochs,
              "cost_usd": r.estimated_cost_usd}
elif cmd == "dedupe":
    r = data.dedupe(path, out + ".dedup.jsonl", force=True, progress=False)
    result = {"removed": r.removed}
elif cmd == "split":
    r = data.split(path, 0.1, seed=1, stratify=True, out_train=out + ".train.jsonl", out_val=out + ".val.jsonl",
                   force=True, progress=False)
    result = {"train": r.train, "val": r.val}
elif cmd == "check-leak":
    r = data.check_leak(path, [os.environ["BENCH_EVAL"]], progress=False)
    result = {"leaks": len(r.leaks)}
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "baseline_mb": baseline, "peak_mb": peak, "result": result}))
"""


def make_dataset(path: Path, lines: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        previous: list[str] = []
        for i in range(lines):
            if previous and rng.random() < 0.01:
                f.write(rng.choice(previous))
                continue
            user = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))) + f" #{i}"
            line = json.dumps({"messages": [
                {"role": "system", "content": "Classifique o sentimento da mensagem do cliente."},
                {"role": "user", "content": user},
                {"role": "assistant", "content": rng.choice(LABELS)},
            ]}, ensure_ascii=False) + "\n"
            f.write(line)
            if len(previous) < 1000:
                previous.append(line)


def make_evals(train: Path, path: Path, cases: int = 200, leaked: int = 20) -> None:
    """Eval cases: ``leaked`` of them copy a training input (casefolded, spaces doubled), the rest are new."""
    picked = []
    with open(train, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % 997 == 0:
                picked.append(json.loads(line)["messages"][1]["content"])
                if len(picked) == leaked:
                    break
    with open(path, "w", encoding="utf-8") as f:
        for i in range(cases):
            user = picked[i].upper().replace(" ", "  ") if i < len(picked) else f"a question never trained on {i}"
            f.write(json.dumps({"messages": [{"role": "user", "content": user},
                                             {"role": "assistant", "content": "NEUTRO"}]}) + "\n")


def run_child(cmd: str, path: Path, out: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, cmd, str(path), str(out)], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", default="100000,1000000", help="comma-separated dataset sizes")
    parser.add_argument("--commands", default="validate,stats,dedupe,split,check-leak")
    parser.add_argument("--dir", help="where to write the datasets (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ft-data-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, BENCH_SRC=str(Path(__file__).resolve().parent.parent / "src"))
    rows = []
    try:
        for n in [int(x) for x in args.lines.split(",")]:
            path = workdir / f"train_{n}.jsonl"
            if not path.exists():
                t0 = time.perf_counter()
                make_dataset(path, n)
                print(f"wrote {path} ({path.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - t0:.1f}s",
                      file=sys.stderr)
            size_mb = path.stat().st_size / 2**20
            evals = workdir / f"eval_{n}.jsonl"
            make_evals(path, evals)
            env["BENCH_EVAL"] = str(evals)
            for cmd in args.commands.split(","):
                r = run_child(cmd, path, workdir / f"out_{n}", env)
                rows.append([f"{n:,}", f"{size_mb:,.0f}", cmd, f"{r['seconds']:.1f}", f"{n / r['seconds']:,.0f}",
                             f"{r['baseline_mb']:.0f}", f"{r['peak_mb']:.0f}",
                             f"{r['peak_mb'] - r['baseline_mb']:.0f}", json.dumps(r["result"])])
                print("  ".join(rows[-1]), file=sys.stderr)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    headers = ["lines", "MiB", "command", "seconds", "lines/s", "base MB", "peak MB", "peak-base MB", "result"]
    try:
        from tabulate import tabulate
        print(tabulate(rows, headers=headers, colalign=("right",) * 2 + ("left",) + ("right",) * 5 + ("left",)))
    except ImportError:  # pragma: no cover
        print("\t".join(headers))
        for row in rows:
            print("\t".join(row))
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
