"""One pytest command trains (or reuses the job), then gates; and the cost-benefit of tuning."""

from __future__ import annotations

import json
import math

import pytest

from finetune_server import FakeFineTuning

BASE = "gpt-4o-mini-2024-07-18"
SYSTEM = "Classifique o sentimento."


@pytest.fixture
def endpoint(server, monkeypatch):
    """One endpoint that fine-tunes and answers chats, as OpenAI does."""
    with FakeFineTuning() as fine_tuning:
        fine_tuning.chat = server
        fine_tuning.steps_per_poll = 10
        monkeypatch.setenv("OPENAI_BASE_URL", fine_tuning.url)
        yield fine_tuning


def write_data(pytester) -> None:
    lines = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"review {i} ok"},
                           {"role": "assistant", "content": "POSITIVO"}]} for i in range(12)]
    (pytester.path / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def write_suite(pytester, models: str = f"models: {{base: {BASE}}}\n") -> None:
    write_data(pytester)
    (pytester.path / "s.ft.yaml").write_text(
        f"suite: s\n{models}system: {SYSTEM}\ntrain: {{file: train.jsonl, suffix: senti}}\n"
        "thresholds: {accuracy: 0.5}\ncases:\n"
        "  - {id: a, input: 'x LABEL=POSITIVO', expected: POSITIVO}\n"
        "  - {id: b, input: 'y LABEL=NEGATIVO BASEWRONG', expected: NEGATIVO}\n")


def run(pytester, *args):
    result = pytester.runpytest("-p", "no:cacheprovider", "--ft-train-poll=0.01", "--ft-report=r.json", *args)
    path = pytester.path / "r.json"
    return result, json.loads(path.read_text()) if path.exists() else None


def test_no_job_is_launched_without_the_explicit_flag(pytester, endpoint):
    write_suite(pytester)
    result, _ = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["s.ft.yaml:4: train: no fine-tuning job on * matches *train.jsonl + "
                                 f"{BASE}*pass --ft-launch to launch it (a paid fine-tuning job)"])
    assert endpoint.job_creations == 0


def test_train_then_gate_in_one_command_and_reuse_the_job(pytester, endpoint, server):
    write_suite(pytester)
    result, report = run(pytester, "--ft-launch")
    result.assert_outcomes(passed=2)
    assert endpoint.job_creations == 1
    [job] = endpoint.jobs.values()
    tuned = job["fine_tuned_model"]
    assert tuned.startswith(f"ft:{BASE}:")
    assert server.chat_requests() == []  # chats went to the fine-tuning endpoint, as with OpenAI
    suite = report["suites"][0]
    assert suite["models"]["tuned"]["model"] == tuned
    training = suite["cost_benefit"]["training"]
    assert training["job_id"] == job["id"] and training["trained_tokens"] == job["trained_tokens"]
    assert training["cost_usd"] == pytest.approx(job["trained_tokens"] * 3.00 / 1e6)
    result.stdout.fnmatch_lines([f"*training: * USD (job {job['id']}, * trained tokens)*",
                                 "*inference per 1,000 requests (USD): base *, tuned *; gain +50.0 pp*"])

    result, _ = run(pytester, "--ft-launch")  # the same data and parameters: the same job
    result.assert_outcomes(passed=2)
    assert endpoint.job_creations == 1
    result.stdout.fnmatch_lines([f"*reusing job {job['id']} (succeeded)*"])


def test_replay_only_takes_the_model_from_the_state_file_without_network(pytester, endpoint, monkeypatch):
    write_suite(pytester)
    run(pytester, "--ft-launch")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("OPENAI_API_KEY")
    endpoint.reset()
    result, report = run(pytester, "--ft-record-mode=none", "--ft-launch")
    result.assert_outcomes(passed=2)
    assert endpoint.requests == [] and report["calls"]["live"] == 0


def test_a_failed_job_fails_the_suite_with_its_reason(pytester, endpoint):
    write_suite(pytester)
    endpoint.fail = {"code": "invalid_training_file", "message": "Line 3 has no assistant message",
                     "param": "training_file"}
    result, _ = run(pytester, "--ft-launch")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["s.ft.yaml:4: train: fine-tuning job * ended failed: *Line 3 has no assistant message*"])


def test_variants_run_side_by_side_and_break_even_is_reported(pytester, endpoint, server):
    write_suite(pytester, f"models:\n  base: {BASE}\n  fewshot: {{model: {BASE}, few_shot: 3}}\n"
                          f"  prompted: {{model: {BASE}, system: 'Voce classifica avaliacoes. Responda so o rotulo.'}}\n")
    result, report = run(pytester, "--ft-launch")
    result.assert_outcomes(passed=2)
    sent = [json.loads(r["body"]) for r in endpoint.requests if r["path"].endswith("/chat/completions")]
    shots = next(m for m in (b["messages"] for b in sent) if len(m) > 2)
    assert shots[0] == {"role": "system", "content": SYSTEM}
    assert shots[1:7] == [{"role": "user", "content": "review 0 ok"}, {"role": "assistant", "content": "POSITIVO"},
                          {"role": "user", "content": "review 1 ok"}, {"role": "assistant", "content": "POSITIVO"},
                          {"role": "user", "content": "review 2 ok"}, {"role": "assistant", "content": "POSITIVO"}]
    assert any(b["messages"][0]["content"].startswith("Voce classifica") for b in sent)
    suite = report["suites"][0]
    assert list(suite["models"]) == ["base", "tuned", "fewshot", "prompted"]
    benefit = suite["cost_benefit"]
    per = {role: m["cost_usd"] / m["requests"] for role, m in suite["models"].items()}
    assert per["fewshot"] > per["tuned"]  # the examples make every request longer
    expected = math.ceil(benefit["training"]["cost_usd"] / (per["fewshot"] - per["tuned"]))
    assert benefit["break_even_requests"]["fewshot"] == expected
    result.stdout.fnmatch_lines([f"break-even against fewshot: tuning pays back after {expected:,} requests"])


def test_known_data_with_a_given_model_estimates_the_training_cost(pytester, endpoint):
    write_suite(pytester)
    result, report = run(pytester, f"--ft-model=ft:{BASE}:acme:senti:given")
    training = report["suites"][0]["cost_benefit"]["training"]
    assert training["estimated"] is True and training["job_id"] is None and training["trained_tokens"] > 0
    assert endpoint.job_creations == 0
    result.stdout.fnmatch_lines(["*training: * USD (estimated from the training data, * trained tokens)*"])
