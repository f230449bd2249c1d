"""pytest-ft train / jobs, and the Python API behind them, against a fine-tuning API emulation."""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from pathlib import Path

import pytest
import yaml

from finetune_server import FakeFineTuning
from pytest_ft.training import api, follow, jobs
from pytest_ft.cli import main as cli_main
from pytest_ft.report.pricing import PriceTable

BASE = "gpt-4o-mini-2024-07-18"
KEY = "sk-" "test-key-0123456789abcdefghijklmnop"
FAST = ["--poll-interval", "0"]


def examples(n: int = 12, label: str = "") -> list[dict]:
    return [{"messages": [{"role": "system", "content": "Classify the sentiment."},
                          {"role": "user", "content": f"review number {i} {label}"},
                          {"role": "assistant", "content": "POSITIVE" if i % 2 else "NEGATIVE"}]} for i in range(n)]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def emulation():
    with FakeFineTuning() as server:
        yield server


@pytest.fixture
def ft(emulation, monkeypatch, tmp_path):
    """The emulation, reset; the environment pointing at it; the test in its own directory."""
    emulation.reset()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", emulation.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    write_jsonl(tmp_path / "train.jsonl", examples())
    return emulation


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    out, err = capsys.readouterr()
    assert KEY not in out + err
    return code, out, err


def train(capsys, *extra) -> tuple[int, str, str]:
    return run(capsys, "train", "--model", BASE, "--train", "train.jsonl", *FAST, *extra)


def client():
    return jobs.make_client()


def no_secret_anywhere(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert KEY not in text and "Bearer" not in text and "authorization" not in text.lower(), path


# -- train: validate, upload, create, follow --------------------------------------------------


def test_train_wait_follows_the_job_to_its_model_and_prints_the_pytest_command(ft, capsys, tmp_path):
    write_jsonl(tmp_path / "val.jsonl", examples(4, "held out"))
    code, out, err = train(capsys, "--val", "val.jsonl", "--suffix", "sentiment", "--epochs", "2",
                           "--batch-size", "4", "--lr-multiplier", "0.5", "--seed", "7", "--wait")
    assert code == 0, err
    job_id = next(iter(ft.jobs))
    assert f"job: {job_id} (validating_files)" in out

    uploads = ft.calls("POST", "/files")
    assert len(uploads) == 2 and all(b'name="purpose"\r\n\r\nfine-tune' in u["body"] for u in uploads)
    body = json.loads(ft.calls("POST", "/fine_tuning/jobs")[0]["body"])
    assert body["model"] == BASE and body["suffix"] == "sentiment" and body["seed"] == 7
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {
        "batch_size": 4, "learning_rate_multiplier": 0.5, "n_epochs": 2}}}
    assert "hyperparameters" not in body  # the deprecated top-level field is not used
    assert body["training_file"] in ft.files and body["validation_file"] in ft.files
    assert ft.file_bytes[body["training_file"]] == (tmp_path / "train.jsonl").read_bytes()
    assert len(body["metadata"][jobs.HASH_KEY]) == 64

    # each event once, in order, then the model and the exact command
    for step in range(1, 11):
        assert out.count(f"Step {step}/10: training loss=") == 1
    lines = out.splitlines()
    assert lines.index(next(l for l in lines if "Created fine-tuning job" in l)) < \
        lines.index(next(l for l in lines if "Step 1/10" in l))
    model = f"ft:{BASE}:org:sentiment:{job_id[-8:]}"
    assert "status: running" in out and "status: succeeded" in out and "step 10/10 | loss 0.2" in out
    assert f"succeeded: {model}" in out
    assert out.rstrip().endswith(f"pytest --ft-model={model}")
    assert "training cost ~$" in out


def test_train_without_wait_prints_the_id_and_how_to_follow(ft, capsys):
    code, out, _ = train(capsys)
    job_id = next(iter(ft.jobs))
    assert code == 0
    assert f"job: {job_id}" in out and f"follow it with: pytest-ft jobs wait {job_id}" in out
    assert ft.calls("GET", f"/fine_tuning/jobs/{job_id}/events") == []


def test_the_same_command_again_reuses_the_job_and_uploads_nothing(ft, capsys, tmp_path):
    assert train(capsys, "--suffix", "s", "--wait")[0] == 0
    code, out, _ = train(capsys, "--suffix", "s", "--wait")
    assert code == 0
    assert len(ft.calls("POST", "/fine_tuning/jobs")) == 1 and len(ft.calls("POST", "/files")) == 1
    job_id = next(iter(ft.jobs))
    assert f"reusing job {job_id} (succeeded)" in out and f"job: {job_id} (succeeded, reused)" in out
    assert "pytest --ft-model=ft:" in out
    state = json.loads((tmp_path / ".pytest-ft/jobs.json").read_text())
    assert [e["job_id"] for e in state["jobs"]] == [job_id]
    assert state["jobs"][0]["status"] == "succeeded" and state["jobs"][0]["fine_tuned_model"].startswith("ft:")
    assert not [p for p in (tmp_path / ".pytest-ft").iterdir() if p.name.endswith(".tmp")]  # atomic writes


def test_without_the_state_file_the_job_is_found_by_its_metadata(ft, capsys, tmp_path):
    train(capsys)
    (tmp_path / ".pytest-ft/jobs.json").unlink()
    code, out, _ = train(capsys)
    assert code == 0 and len(ft.jobs) == 1
    assert "found by its metadata pytest_ft_hash=" in out
    lookup = ft.calls("GET", "/fine_tuning/jobs")[-1]
    assert lookup["query"]["metadata[pytest_ft_hash]"] == next(iter(ft.jobs.values()))["metadata"][jobs.HASH_KEY]
    assert json.loads((tmp_path / ".pytest-ft/jobs.json").read_text())["jobs"][0]["job_id"] == next(iter(ft.jobs))


def test_force_and_changed_parameters_or_data_create_new_jobs(ft, capsys, tmp_path):
    train(capsys)
    train(capsys, "--force")
    assert len(ft.jobs) == 2 and len(ft.calls("POST", "/files")) == 1  # the upload is reused
    train(capsys, "--epochs", "5")
    assert len(ft.jobs) == 3
    write_jsonl(tmp_path / "train.jsonl", examples(13))
    train(capsys)
    assert len(ft.jobs) == 4 and len(ft.calls("POST", "/files")) == 2


def test_a_cancelled_job_is_not_reused(ft, capsys):
    train(capsys)
    job_id = next(iter(ft.jobs))
    assert run(capsys, "jobs", "cancel", job_id)[0] == 0
    train(capsys)
    assert len(ft.jobs) == 2


def test_invalid_data_is_refused_with_line_numbers_before_any_upload(ft, capsys, tmp_path):
    rows = examples(12)
    rows[2] = "{not json"
    rows[6] = {"messages": [{"role": "user", "content": "no answer"}]}
    write_jsonl(tmp_path / "train.jsonl", rows)
    code, _, err = train(capsys, "--wait")
    assert code == 2
    assert "the data has errors; nothing was uploaded" in err
    assert "train.jsonl:3: invalid_json:" in err or "train.jsonl:3: " in err
    assert "train.jsonl:7: example_missing_assistant_message" in err
    assert ft.requests == []


def test_warnings_are_shown_and_do_not_stop_the_launch(ft, capsys):
    code, out, _ = train(capsys)
    assert code == 0 and "data warnings (1; pytest-ft data validate FILE shows all):" in out
    assert "  train.jsonl:-: few_examples: 12 examples" in out


def test_an_open_model_on_a_local_backend(ft, capsys):
    code, out, _ = run(capsys, "train", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--train", "train.jsonl",
                       "--wait", *FAST)
    assert code == 0 and "tokenizer of 'meta-llama/Llama-3.1-8B-Instruct' unknown" in out
    job_id = next(iter(ft.jobs))
    assert out.rstrip().endswith(f"pytest --ft-model=ft:meta-llama/Llama-3.1-8B-Instruct:org::{job_id[-8:]}")


def test_train_and_wait_json(ft, capsys):
    code, out, err = train(capsys, "--wait", "--json", "--epochs", "2")
    assert code == 0
    result = json.loads(out)  # nothing but the JSON on stdout; progress went to stderr
    job = result["job"]
    assert job["status"] == "succeeded" and job["n_epochs"] == 2 and job["base_model"] == BASE
    assert result["evaluate"] == f"pytest --ft-model={job['fine_tuned_model']}"
    assert result["training_cost_usd"] == pytest.approx(job["trained_tokens"] * 3.0 / 1e6)
    assert "few_examples" in err
    code, out, _ = run(capsys, "jobs", "wait", job["id"], "--json", *FAST)
    assert code == 0 and json.loads(out)["job"]["id"] == job["id"]


def test_dpo_needs_preference_data(ft, capsys):
    code, _, err = train(capsys, "--method", "dpo")
    assert code == 2 and "--method dpo needs preference (DPO) examples" in err
    assert ft.requests == []


def test_missing_data_file(ft, capsys):
    code, _, err = run(capsys, "train", "--model", BASE, "--train", "nope.jsonl")
    assert code == 2 and "data file not found: nope.jsonl" in err


# -- errors users meet ------------------------------------------------------------------------


def test_an_invalid_api_key_is_explained_and_never_shown(ft, capsys, tmp_path):
    ft.auth_fail = True
    code, out, err = train(capsys)
    assert code == 2
    assert "rejected the API key (HTTP 401, invalid_api_key). Check OPENAI_API_KEY: it must be a valid key" in err
    assert "sk-test" not in out + err  # not even the API's masked echo of it
    no_secret_anywhere(tmp_path)


def test_an_unset_api_key_is_named(ft, capsys, monkeypatch):
    ft.auth_fail = True
    monkeypatch.delenv("OPENAI_API_KEY")
    code, _, err = run(capsys, "jobs", "list")
    assert code == 2 and "Check OPENAI_API_KEY (OPENAI_API_KEY is not set)" in err


def test_a_model_that_cannot_be_fine_tuned(ft, capsys):
    code, _, err = run(capsys, "train", "--model", "gpt-4-0613", "--train", "train.jsonl")
    assert code == 2
    assert (f"error: model 'gpt-4-0613' cannot be fine-tuned on {ft.url}: Model gpt-4-0613 is not available "
            f"for fine-tuning or does not exist.") in err
    assert "Pick a model that supports fine-tuning" in err
    assert ft.jobs == {}


def test_a_file_still_processing_is_retried_then_explained(ft, capsys):
    ft.file_not_ready = 2
    code, out, _ = train(capsys)
    assert code == 0 and len(ft.jobs) == 1
    assert out.count("the uploaded file is not ready yet; retrying") == 2

    ft.reset()
    ft.file_not_ready = 99
    code, out, err = train(capsys, "--force")
    assert code == 2
    assert "the uploaded file is still being processed by" in err
    assert "Run the same command again in a minute: the uploaded files are reused" in err
    ft.file_not_ready = 0
    assert train(capsys, "--force")[0] == 0
    assert len(ft.calls("POST", "/files")) == 1  # the file uploaded before the failure is reused


def test_a_failed_job_shows_its_error_and_the_failing_line(ft, capsys):
    ft.fail = {"code": "invalid_training_file", "param": "training_file",
               "message": "The job failed due to an invalid training file. Invalid file format on line 12."}
    code, out, err = train(capsys, "--wait")
    assert code == 1
    job_id = next(iter(ft.jobs))
    assert (f"error: job {job_id} failed: The job failed due to an invalid training file. Invalid file format "
            f"on line 12. (invalid_training_file)\n  failing line: train.jsonl:12") in err
    assert "ERROR: The job failed due to an invalid training file" in out  # the error event, once
    code, out, _ = run(capsys, "jobs", "status", job_id)
    assert "failing line: train.jsonl:12" in out


def test_rate_limits_are_retried_honouring_retry_after(ft, capsys, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(jobs.time, "sleep", slept.append)
    ft.rate_limit, ft.retry_after = 2, "3"
    code, _, err = train(capsys)
    assert code == 0, err
    assert slept[:2] == [3.0, 3.0]
    ft.rate_limit, ft.retry_after = 99, "0"
    code, _, err = run(capsys, "jobs", "list")
    assert code == 2
    assert (f"listing fine-tuning jobs: rate limited by {ft.url} (HTTP 429) and still limited after "
            f"{api.RATE_LIMIT_RETRIES} retries that honoured Retry-After") in err


def test_a_lost_answer_to_job_creation_does_not_launch_a_second_job(ft, capsys, monkeypatch):
    monkeypatch.setattr(jobs.time, "sleep", lambda s: None)
    ft.lose_create_answer = 1
    code, out, err = train(capsys)
    assert code == 0, err
    assert len(ft.jobs) == 1 and len(ft.calls("POST", "/fine_tuning/jobs")) == 1
    assert f"job: {next(iter(ft.jobs))}" in out


def test_retry_delay_reads_both_retry_after_headers():
    import httpx2
    assert api.retry_delay(0, httpx2.Response(429, headers={"retry-after": "2"})) == 2.0
    assert api.retry_delay(0, httpx2.Response(429, headers={"retry-after-ms": "250"})) == 0.25
    assert 0.75 <= api.retry_delay(0, httpx2.Response(429)) <= 1.25


def test_the_network_down_names_the_base_url(ft, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    code, _, err = train(capsys, "--base-url", url)
    assert code == 2
    assert f"cannot reach {url} (connection refused). Is the server running and the network up?" in err


def test_an_unknown_job_id(ft, capsys):
    code, _, err = run(capsys, "jobs", "wait", "ftjob-missing", *FAST)
    assert code == 2
    assert f"no fine-tuning job 'ftjob-missing' on {ft.url} (HTTP 404)" in err


def test_an_unreadable_state_file_is_explained(ft, capsys, tmp_path):
    (tmp_path / ".pytest-ft").mkdir()
    (tmp_path / ".pytest-ft/jobs.json").write_text("{oops")
    code, _, err = train(capsys)
    assert code == 2 and "cannot read the job state file .pytest-ft/jobs.json" in err


# -- following, Ctrl-C, live status -----------------------------------------------------------


def test_ctrl_c_while_following_leaves_the_job_running_and_says_how_to_resume(ft, capsys, monkeypatch):
    ft.hold = True
    original = follow.Follower.on_poll

    def interrupt_once_running(self, job, progress):
        original(self, job, progress)
        if job.status == "running":
            raise KeyboardInterrupt

    monkeypatch.setattr(follow.Follower, "on_poll", interrupt_once_running)
    code, out, err = train(capsys, "--wait")
    job_id = next(iter(ft.jobs))
    assert code == 130
    assert f"resume:  pytest-ft jobs wait {job_id}" in err and "it keeps running" in err
    assert ft.jobs[job_id]["status"] == "running" and ft.calls("POST", "/cancel") == []

    monkeypatch.setattr(follow.Follower, "on_poll", original)
    ft.hold = False
    code, out, _ = run(capsys, "jobs", "wait", job_id, *FAST)
    assert code == 0 and f"pytest --ft-model=ft:{BASE}:org::{job_id[-8:]}" in out
    assert out.count("Step 5/10") == 1


def test_the_live_status_line_on_a_terminal(ft, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    ft.steps_per_poll = 3
    code, out, _ = train(capsys, "--wait")
    assert code == 0
    assert "\r\x1b[K" in out and "running | step 3/10 | loss 0.6667 | elapsed " in out
    assert "status: " not in out  # the line is redrawn in place, not repeated
    assert out.count("Step 4/10: training loss=0.5\n") == 1


def test_wait_for_job_calls_on_event_once_per_event(ft):
    ft.steps_per_poll = 1
    job = jobs.ensure_job(client(), base_model=BASE, train_file="train.jsonl", suffix="x",
                          hyperparameters={"n_epochs": 2}, poll_interval=0)
    seen: list[str] = []
    polls: list[tuple[str, int | None]] = []
    done = jobs.wait_for_job(client(), job.id, poll_interval=0, on_event=lambda e: seen.append(e["message"]),
                             on_poll=lambda j, p: polls.append((j.status, p.step)))
    assert len(seen) == len(set(seen)) == len(ft.events[job.id])
    assert [m for m in seen if m.startswith("Step")] == [f"Step {i}/10: training loss={round(2 / i, 4)}"
                                                        for i in range(1, 11)]
    assert polls[0] == ("queued", None) and polls[-1] == ("succeeded", 10)
    assert done.status == "succeeded" and done.fine_tuned_model == f"ft:{BASE}:org:x:{job.id[-8:]}"
    assert done.n_epochs == 2 and done.hyperparameters["batch_size"] == 1 and done.base_model == BASE
    assert done.trained_tokens == len((Path("train.jsonl")).read_bytes()) // 4 * 2
    assert done.created_at and done.error is None and done.method == "supervised"


def test_wait_for_job_lets_a_keyboard_interrupt_through_and_the_job_runs_on(ft):
    ft.hold = True
    job = jobs.ensure_job(client(), base_model=BASE, train_file="train.jsonl", poll_interval=0)

    def stop(event):
        if event["message"].startswith("Fine-tuning job started"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        jobs.wait_for_job(client(), job.id, poll_interval=0, on_event=stop)
    assert ft.jobs[job.id]["status"] == "running"


def test_many_events_between_polls_are_paged_and_printed_once(ft, capsys):
    ft.steps_per_poll, ft.total_steps = 150, 300  # more than one page of events per poll
    code, out, _ = train(capsys, "--wait")
    assert code == 0
    assert all(out.count(f"Step {i}/300:") == 1 for i in range(1, 301))


# -- the Python API -----------------------------------------------------------------------------


def test_ensure_job_never_launches_when_not_allowed(ft, tmp_path):
    with pytest.raises(jobs.LaunchNotAllowed, match=r"no fine-tuning job on .* matches train.jsonl \+ "
                                                      r"gpt-4o-mini-2024-07-18 .*launching one \(a paid job\) was "
                                                      r"not allowed") as info:
        jobs.ensure_job(client(), base_model=BASE, train_file="train.jsonl", allow_launch=False)
    assert ft.calls("POST", "/fine_tuning/jobs") == [] and ft.calls("POST", "/files") == []
    assert info.value.content_hash == jobs.job_hash(base_model=BASE, train_file="train.jsonl")

    launched = jobs.ensure_job(client(), base_model=BASE, train_file="train.jsonl", poll_interval=0,
                               state_dir=tmp_path / "state")
    assert not launched.reused and launched.content_hash == info.value.content_hash
    again = jobs.ensure_job(client(), base_model=BASE, train_file="train.jsonl", allow_launch=False,
                            state_dir=tmp_path / "state")
    assert again.reused and again.id == launched.id and len(ft.jobs) == 1


def test_ensure_job_validates_before_launching(ft, tmp_path):
    write_jsonl(tmp_path / "bad.jsonl", examples(11) + [{"messages": []}])
    with pytest.raises(jobs.JobError, match=r"bad.jsonl:12: "):
        jobs.ensure_job(client(), base_model=BASE, train_file="bad.jsonl")
    assert ft.calls("POST", "/files") == []


def test_job_hash_depends_on_content_and_parameters_not_names(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", examples())
    b = write_jsonl(tmp_path / "b.jsonl", examples())
    h = jobs.job_hash(base_model=BASE, train_file=a, hyperparameters={"n_epochs": 3, "batch_size": None})
    assert h == jobs.job_hash(base_model=BASE, train_file=b, hyperparameters={"n_epochs": 3})
    assert h != jobs.job_hash(base_model=BASE, train_file=a, hyperparameters={"n_epochs": 4})
    assert h != jobs.job_hash(base_model=BASE, train_file=a, hyperparameters={"n_epochs": 3}, seed=1)
    assert h != jobs.job_hash(base_model=BASE, train_file=a, hyperparameters={"n_epochs": 3}, suffix="x")
    assert h != jobs.job_hash(base_model=BASE, train_file=a, hyperparameters={"n_epochs": 3}, val_file=b)
    assert h != jobs.job_hash(base_model=BASE, train_file=a, hyperparameters={"n_epochs": 3}, method="dpo")


def test_training_cost():
    job = jobs.JobInfo.from_json({"id": "ftjob-1", "status": "succeeded", "model": BASE,
                                  "trained_tokens": 2_000_000, "hyperparameters": {"n_epochs": 3}})
    assert jobs.training_cost(job) == pytest.approx(6.0)  # $3.00 per 1M trained tokens
    assert jobs.training_cost(1_000_000, "gpt-4.1-mini") == pytest.approx(5.0)
    assert jobs.training_cost(1_000_000, f"ft:{BASE}:acme:x:1") == pytest.approx(3.0)
    assert jobs.training_cost(1_000_000, "unknown-model") is None
    assert jobs.training_cost(None, BASE) is None
    cheap = PriceTable.from_file(None)
    cheap.overrides[f"ft:{BASE}"] = type(cheap.lookup(f"ft:{BASE}:o:s:1"))(input=0.3, output=1.2, training=1.0)
    assert jobs.training_cost(job, prices=cheap) == pytest.approx(2.0)


def test_job_info_reads_unknown_statuses_and_fields():
    job = jobs.JobInfo.from_json({
        "id": "ftjob-az", "status": "notRunning", "model": BASE, "created_at": 1, "hyperparameters": None,
        "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1, "n_epochs": 2}}},
        "error": {"code": "bad", "message": "broken example", "param": "training_file.line.7"},
        "something_new": {"x": 1}})
    assert job.status == "notRunning" and not job.terminal and job.method == "dpo"
    assert job.hyperparameters == {"beta": 0.1, "n_epochs": 2} and job.n_epochs == 2
    assert job.error.line == 7 and job.error.param == "training_file"
    assert job.raw["something_new"] == {"x": 1}
    assert jobs.JobInfo.from_json({"id": "j", "status": "canceled"}).terminal


def test_progress_reads_events_with_or_without_data():
    p = jobs.Progress()
    p.update({"message": "Step 12/100: training loss=0.53"})
    assert (p.step, p.total_steps, p.loss) == (12, 100, 0.53)
    p.update({"message": "Step 13/100: training loss=0.51, validation loss=0.6",
              "data": {"step": 13, "train_loss": 0.5, "total_steps": 100}})
    assert (p.step, p.loss) == (13, 0.5)
    p.update({"message": "Fine-tuning job started"})
    assert p.step == 13


def test_azure_style_statuses_and_fields_are_tolerated(ft, capsys):
    ft.status_alias = {"queued": "pending"}
    ft.extra_job_fields = {"_azure_extra": {"region": "swedencentral"}, "estimated_finish": None}
    code, out, _ = train(capsys, "--wait")
    assert code == 0 and "status: pending" in out and "succeeded: ft:" in out
    code, out, _ = run(capsys, "jobs", "list", "--json")
    assert json.loads(out)[0]["status"] == "succeeded"


# -- jobs list / status / events / cancel -------------------------------------------------------


def test_jobs_list_status_events_and_cancel(ft, capsys, tmp_path):
    first = jobs.ensure_job(client(), base_model=BASE, train_file="train.jsonl", suffix="one", poll_interval=0)
    jobs.wait_for_job(client(), first.id, poll_interval=0)
    ft.hold = True
    second = jobs.ensure_job(client(), base_model=BASE, train_file="train.jsonl", suffix="two", poll_interval=0)

    code, out, _ = run(capsys, "jobs", "list")
    header, _, *rows = out.splitlines()
    assert header.split() == ["job", "status", "base", "model", "fine-tuned", "model", "trained", "tokens",
                              "created", "data", "(local)"]
    assert rows[0].startswith(second.id) and "validating_files" in rows[0] and rows[0].endswith("train.jsonl")
    assert rows[1].startswith(first.id) and "succeeded" in rows[1] and f"ft:{BASE}:org:one:" in rows[1]
    code, out, _ = run(capsys, "jobs", "list", "--json", "--limit", "1")
    listed = json.loads(out)
    assert [j["id"] for j in listed] == [second.id] and listed[0]["content_hash"] == second.content_hash

    code, out, _ = run(capsys, "jobs", "status", first.id)
    assert code == 0
    fields = dict(line.split(None, 1) if "  " not in line else line.split("  ", 1) for line in out.splitlines()[:16])
    assert fields["status"].strip() == "succeeded" and fields["epochs"].strip() == "3"
    assert "checkpoints:" in out and ":ckpt-step-10" in out
    assert out.rstrip().endswith(f"pytest --ft-model={ft.jobs[first.id]['fine_tuned_model']}")
    code, out, _ = run(capsys, "jobs", "status", first.id, "--json")
    status = json.loads(out)
    assert status["job"]["fine_tuned_model"].startswith("ft:") and len(status["checkpoints"]) == 2
    assert status["training_cost_usd"] == pytest.approx(status["job"]["trained_tokens"] * 3.0 / 1e6)

    code, out, _ = run(capsys, "jobs", "events", first.id)
    lines = out.splitlines()
    assert lines[0].split() == ["time", "level", "message"]
    assert "Created fine-tuning job" in lines[2] and "successfully completed" in lines[-1]
    code, out, _ = run(capsys, "jobs", "events", first.id, "--json", "--limit", "3")
    assert [e["message"] for e in json.loads(out)][-1] == "The job has successfully completed"

    code, out, _ = run(capsys, "jobs", "cancel", second.id)
    assert code == 0 and out.strip() == f"cancelled {second.id} (status: cancelled)"
    code, _, err = run(capsys, "jobs", "cancel", second.id)
    assert code == 2 and f"cannot cancel job {second.id}: Job {second.id} has already completed" in err
    state = json.loads((tmp_path / ".pytest-ft/jobs.json").read_text())
    assert {e["job_id"]: e["status"] for e in state["jobs"]}[second.id] == "cancelled"
    code, _, err = run(capsys, "jobs", "wait", second.id, *FAST)
    assert code == 1 and f"job {second.id} was cancelled" in err


def test_jobs_list_when_there_are_none(ft, capsys):
    code, out, _ = run(capsys, "jobs", "list")
    assert code == 0 and out.strip() == f"no fine-tuning jobs on {ft.url}"


# -- record / replay ----------------------------------------------------------------------------


def test_record_then_replay_with_the_server_down(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cassette = tmp_path / "cassettes" / "train.yaml"
    first, second = tmp_path / "first", tmp_path / "second"
    for d in (first, second):
        d.mkdir()
        write_jsonl(d / "train.jsonl", examples())
    argv = ["train", "--model", BASE, "--train", "train.jsonl", "--suffix", "rec", "--wait", *FAST,
            "--cassette", str(cassette)]
    with FakeFineTuning() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.chdir(first)
        code, recorded, err = run(capsys, *argv)
        assert code == 0, err
    recording = yaml.safe_load(cassette.read_text())
    paths = [i["request"]["uri"].split("/v1", 1)[1] for i in recording["interactions"]]
    assert paths[0].startswith("/fine_tuning/jobs?") and "/files" in paths and "/fine_tuning/jobs" in paths
    upload = recording["interactions"][paths.index("/files")]["request"]["body"]
    data = (first / "train.jsonl").read_bytes()
    assert f"<file: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}>" in upload
    assert "review number" not in cassette.read_text()  # the dataset itself is not in the cassette
    no_secret_anywhere(tmp_path)

    monkeypatch.chdir(second)  # a fresh checkout: no state file; the server is gone
    code, replayed, err = run(capsys, *argv)
    assert code == 0, err
    model_line = next(l for l in recorded.splitlines() if l.startswith("succeeded: "))
    assert model_line in replayed.splitlines()
    assert replayed.rstrip().endswith(f"pytest --ft-model={model_line.split(': ')[1]}")

    code, _, err = run(capsys, "jobs", "list", "--cassette", str(cassette), "--record-mode", "none")
    assert code == 2 and "no recording of this request in the cassette" in err


def test_the_api_key_is_never_printed_or_written(ft, capsys, monkeypatch, tmp_path):
    train(capsys, "--wait", "--cassette", "c.yaml")
    azure_key = "0123456789abcdef0123456789abcdef"  # no sk- prefix: only an exact match can hide it
    monkeypatch.setenv("OPENAI_API_KEY", azure_key)
    ft.fail = {"code": "x", "message": f"echo of the key {azure_key}", "param": None}
    code, out, err = train(capsys, "--wait", "--force")
    assert code == 1 and "echo of the key REDACTED" in err and "ERROR: echo of the key REDACTED" in out
    code, out, err = run(capsys, "jobs", "status", list(ft.jobs)[-1])
    assert "echo of the key REDACTED" in out
    run(capsys, "jobs", "list")
    assert azure_key not in out + err
    no_secret_anywhere(tmp_path)
    assert not any(azure_key in p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    headers = {k.lower(): v for k, v in ft.requests[0]["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}"  # sent, never kept
