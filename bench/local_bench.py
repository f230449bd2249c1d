#!/usr/bin/env python3
"""Speed and effect of the local backend (``pytest-ft serve``) on this machine.

Starts ``pytest-ft serve`` (the default model, Gemma 3 270M, unless ``--model``) on a free
port of 127.0.0.1 with a temporary data folder, or uses a running server (``--url``), then:

1. inference throughput of the base model on short classification prompts (the held-out
   sentiment cases, ``max_tokens`` 5, temperature 0; ``--heldout`` / ``--max-tokens`` for the
   other example suites) at several concurrencies: requests/s,
   completion tokens/s, prompt tokens/s and the median latency;
2. fine-tunes on the training set through the API (upload, job, events), and reports the
   time per epoch (from the job's "Epoch k/n done in ...s" events) and in all;
3. accuracy of base and tuned on the held-out set (an exact match of the label), and the
   throughput of the tuned model and of base + tuned requests mixed (as pytest-ft sends them).

    python bench/local_bench.py                       # everything, default model
    python bench/local_bench.py --no-train            # inference only
    python bench/local_bench.py --epochs 5 --threads 2

Needs the ``[local]`` extra. Every request goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "example_suites" / "data" / "sentiment_train.jsonl"
HELDOUT = ROOT / "example_suites" / "data" / "sentiment_heldout.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def start_server(args, data_dir: str) -> tuple[subprocess.Popen, str, list[str]]:
    cmd = [sys.executable, "-m", "pytest_ft.cli", "serve", "--port", "0", "--data-dir", data_dir,
           "--log-level", "warning", "--model", args.model]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.dtype:
        cmd += ["--dtype", args.dtype]
    if args.max_batch_size:
        cmd += ["--max-batch-size", str(args.max_batch_size)]
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    env.pop(("PYTEST_FT_SERVE_API_KEY"), None)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def pump():
        for line in proc.stderr:
            lines.append(line.rstrip())
            if args.verbose:
                print("  | " + line.rstrip(), file=sys.stderr)
            m = re.search(r"listening on (http://\S+/v1)", line)
            if m:
                found.append(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    t0 = time.monotonic()
    ready.wait(args.start_timeout)
    if not found:
        proc.kill()
        raise SystemExit("the server did not start:\n" + "\n".join(lines[-20:]))
    print(f"server up in {time.monotonic() - t0:.1f}s at {found[0]}")
    return proc, found[0], lines


def chat(client, model: str, messages: list[dict], max_tokens: int):
    return client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=max_tokens)


def run_load(client, jobs: list[tuple[str, list[dict]]], concurrency: int, max_tokens: int) -> dict:
    """Send every (model, messages) with ``concurrency`` in flight; throughput and latency."""
    latencies: list[float] = []
    outputs: list[str] = [""] * len(jobs)
    tokens = [0, 0]

    def one(i: int):
        model, messages = jobs[i]
        t = time.monotonic()
        r = chat(client, model, messages, max_tokens)
        latencies.append(time.monotonic() - t)
        outputs[i] = r.choices[0].message.content
        tokens[0] += r.usage.prompt_tokens
        tokens[1] += r.usage.completion_tokens

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(len(jobs))))
    wall = time.monotonic() - t0
    return {"requests": len(jobs), "concurrency": concurrency, "seconds": wall, "rps": len(jobs) / wall,
            "completion_tps": tokens[1] / wall, "prompt_tps": tokens[0] / wall,
            "p50_latency": statistics.median(latencies), "outputs": outputs}


def accuracy(outputs: list[str], rows: list[dict]) -> float:
    return sum(o.strip() == r["messages"][-1]["content"].strip() for o, r in zip(outputs, rows)) / len(rows)


def print_load(label: str, res: dict) -> None:
    print(f"  {label:<28} c={res['concurrency']:>2}  {res['requests']:>3} req in {res['seconds']:6.1f}s  "
          f"{res['rps']:5.2f} req/s  {res['completion_tps']:6.1f} completion tok/s  "
          f"{res['prompt_tps']:7.1f} prompt tok/s  p50 {res['p50_latency']:5.2f}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running server's /v1 URL (default: start one)")
    ap.add_argument("--api-key", default=os.environ.get("PYTEST_FT_SERVE_API_KEY", "unused"))
    ap.add_argument("--model", default="default", help="the model to serve (when starting a server)")
    ap.add_argument("--threads", type=int, default=None, help="the server's torch threads")
    ap.add_argument("--max-batch-size", type=int, default=None)
    ap.add_argument("--dtype", default=None, help="the server's --dtype (float32, bfloat16, auto)")
    ap.add_argument("--train", type=Path, default=TRAIN)
    ap.add_argument("--heldout", type=Path, default=HELDOUT)
    ap.add_argument("--epochs", type=int, default=None, help="n_epochs (default: the server's auto)")
    ap.add_argument("--lr-multiplier", type=float, default=None)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--repeat", type=int, default=2, help="times the held-out set is sent per concurrency")
    ap.add_argument("--max-tokens", type=int, default=5, help="max_tokens of every request")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--start-timeout", type=float, default=600)
    ap.add_argument("--verbose", action="store_true", help="show the server's log")
    args = ap.parse_args()

    import openai

    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="pytest-ft-bench-")
    try:
        if args.url:
            url = args.url
        else:
            proc, url, _ = start_server(args, tmp.name)
        client = openai.OpenAI(base_url=url, api_key=args.api_key, max_retries=0, timeout=600)
        base = client.models.list().data[0].id
        held = read_jsonl(args.heldout)
        prompts = [r["messages"][:-1] for r in held]
        print(f"base model {base}; {len(held)} held-out prompts, max_tokens {args.max_tokens}, temperature 0")
        chat(client, base, prompts[0], args.max_tokens)   # warm-up
        print("inference, base model:")
        base_outputs = None
        for c in args.concurrency:
            res = run_load(client, [(base, p) for p in prompts] * args.repeat, c, args.max_tokens)
            base_outputs = base_outputs or res["outputs"][:len(held)]
            print_load("base", res)
        if args.no_train:
            print(f"base accuracy: {accuracy(base_outputs, held):.3f}")
            return 0

        train = read_jsonl(args.train)
        f = client.files.create(file=(args.train.name, args.train.read_bytes()), purpose="fine-tune")
        hp = {}
        if args.epochs:
            hp["n_epochs"] = args.epochs
        if args.lr_multiplier:
            hp["learning_rate_multiplier"] = args.lr_multiplier
        job = client.fine_tuning.jobs.create(model=base, training_file=f.id, suffix="bench",
                                             **({"hyperparameters": hp} if hp else {}))
        print(f"fine-tuning on {len(train)} examples: {job.id}")
        t0 = time.monotonic()
        started = None
        while True:
            job = client.fine_tuning.jobs.retrieve(job.id)
            if job.status == "running" and started is None:
                started = time.monotonic()
            if job.status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(1)
        total = time.monotonic() - (started or t0)
        events = list(reversed(list(client.fine_tuning.jobs.list_events(job.id, limit=1000))))
        epochs = [float(m.group(1)) for e in events if (m := re.match(r"Epoch \d+/\d+ done in ([0-9.]+)s", e.message))]
        steps = [e for e in events if e.message.startswith("Step ")]
        if job.status != "succeeded":
            print(f"job {job.status}: {job.error}")
            return 1
        hpj = job.hyperparameters
        print(f"  {hpj.n_epochs} epochs, batch {hpj.batch_size}, lr multiplier {hpj.learning_rate_multiplier}: "
              f"{len(steps)} steps, trained_tokens {job.trained_tokens}, "
              f"loss {steps[0].data['train_loss']:.3f} -> {steps[-1].data['train_loss']:.3f}")
        print(f"  time per epoch: {', '.join(f'{s:.1f}s' for s in epochs)} (mean {statistics.mean(epochs):.1f}s); "
              f"job running -> succeeded {total:.1f}s")
        tuned = job.fine_tuned_model
        print(f"inference, tuned model {tuned}:")
        tuned_res = None
        for c in args.concurrency:
            res = run_load(client, [(tuned, p) for p in prompts] * args.repeat, c, args.max_tokens)
            tuned_res = tuned_res or res
            print_load("tuned", res)
        mixed = [(m, p) for p in prompts for m in (base, tuned)]
        res = run_load(client, mixed, max(args.concurrency), args.max_tokens)
        print_load("base + tuned mixed", res)
        base_acc = accuracy(base_outputs, held)
        tuned_acc = accuracy(tuned_res["outputs"][:len(held)], held)
        print(f"held-out accuracy ({len(held)} cases): base {base_acc:.3f}, tuned {tuned_acc:.3f}, "
              f"gain {tuned_acc - base_acc:+.3f}")
        print(f"  base answers:  {base_outputs[:6]}")
        print(f"  tuned answers: {tuned_res['outputs'][:6]}")
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
