"""pytest-ft models against the fine-tuning API emulation: what it lists, when each model retires, how it fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_server import ORG, FakeFineTuning
from pytest_ft.cli import main as cli_main
from pytest_ft.cli import models as models_cli

KEY = "sk-" "test-key-0123456789abcdefghijklmnop"
TODAY = ["--today", "2026-11-29"]
JAN_1_2025 = 1735689600


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
    return emulation


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli_main(["models", *argv])
    out, err = capsys.readouterr()
    assert KEY not in out + err
    return code, out, err


def listed(capsys, *argv) -> list[dict]:
    code, out, err = run(capsys, "--json", *argv)
    assert code == 0, err
    return json.loads(out)


def table_rows(out: str) -> dict[str, list[str]]:
    """model → its cells, from the table's lines."""
    return {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("ft:")}


def test_lists_the_tuned_models_with_base_created_date_and_days_left(ft, capsys):
    mini = ft.add_succeeded_job("gpt-4o-mini-2024-07-18", "support", created_at=JAN_1_2025)["fine_tuned_model"]
    nano = ft.add_succeeded_job("gpt-5-nano-2025-08-07", "triage", created_at=JAN_1_2025)["fine_tuned_model"]
    code, out, err = run(capsys, *TODAY)
    assert code == 0 and err == ""
    assert out.splitlines()[0].split() == ["model", "base", "created", "retires", "days", "left"]
    rows = table_rows(out)
    assert rows[mini] == [mini, "gpt-4o-mini-2024-07-18", "2025-01-01", "2027-01-14", "46"]
    assert rows[nano] == [nano, "gpt-5-nano-2025-08-07", "2025-01-01", "2026-12-11", "12"]
    lines = out.splitlines()
    assert lines.index(next(l for l in lines if l.startswith(nano))) < \
        lines.index(next(l for l in lines if l.startswith(mini)))  # the soonest first
    assert f"warning: {nano} retires on 2026-12-11 (in 12 days): record its answers now (pytest-ft freeze)" in out
    assert f"warning: {mini} retires on 2027-01-14 (in 46 days)" in out
    assert "OpenAI stops" not in out  # not OpenAI's endpoint


def test_base_models_and_a_servers_own_models_are_not_listed_but_models_without_jobs_are(ft, capsys):
    ft.add_succeeded_job("gpt-4.1-2025-04-14", "kept")["organization_id"] = "acme-corp"
    ft.extra_models += [
        {"id": "ft:gpt-4o-2024-08-06:other-project::old1", "object": "model", "created": JAN_1_2025,
         "owned_by": "user-abc123"},
        {"id": "gpt-4o-mini-2024-07-18.ft-0123456789abcdef", "object": "model", "created": JAN_1_2025,
         "owned_by": "org-" "AnotherOrganization99"},
        {"id": "acme-distilled-v2", "object": "model", "created": JAN_1_2025, "owned_by": "acme-corp"},
        {"id": "my-lora-adapter", "object": "model", "created": JAN_1_2025, "owned_by": "vllm"},
        {"id": "gemma-3-270m", "object": "model", "created": JAN_1_2025, "owned_by": "pytest-ft"},
        "not a model", {"object": "model", "owned_by": ORG},
    ]
    models = {m["model"]: m for m in listed(capsys, *TODAY)}
    assert set(models) == {ft.jobs[next(iter(ft.jobs))]["fine_tuned_model"],
                           "ft:gpt-4o-2024-08-06:other-project::old1", "gpt-4o-mini-2024-07-18.ft-0123456789abcdef",
                           "acme-distilled-v2"}  # owned by the organization that ran the jobs
    old = models["ft:gpt-4o-2024-08-06:other-project::old1"]
    assert old == {"model": "ft:gpt-4o-2024-08-06:other-project::old1", "base": "gpt-4o-2024-08-06",
                   "created": "2025-01-01", "job": None, "retires": "2027-01-14", "days_left": 46,
                   "source": "https://developers.openai.com/api/docs/deprecations", "warning": old["warning"]}
    assert old["warning"].startswith("ft:gpt-4o-2024-08-06:other-project::old1 retires on 2027-01-14 (in 46 days)")
    azure = models["gpt-4o-mini-2024-07-18.ft-0123456789abcdef"]  # an id the calendar cannot read: no date
    assert azure["retires"] is None and azure["days_left"] is None and azure["warning"] is None


def test_a_model_from_both_sources_is_listed_once_with_its_jobs_details(ft, capsys):
    job = ft.add_succeeded_job("gpt-4o-mini-2024-07-18", "both", created_at=JAN_1_2025)
    models = listed(capsys, *TODAY)
    assert len(models) == 1
    assert models[0]["model"] == job["fine_tuned_model"] and models[0]["job"] == job["id"]
    assert models[0]["created"] == "2025-01-01"  # the job's, not the model's (created today)
    assert len(ft.calls("GET", "/models")) == 1


def test_an_unknown_model_shows_unknown_and_no_warning(ft, capsys):
    ft.extra_models.append({"id": "ft:gemma-3-270m:local::job7", "object": "model", "created": JAN_1_2025,
                            "owned_by": "local"})
    code, out, _ = run(capsys, *TODAY)
    assert code == 0
    assert table_rows(out)["ft:gemma-3-270m:local::job7"] == ["ft:gemma-3-270m:local::job7", "gemma-3-270m",
                                                             "2025-01-01", "unknown", "-"]
    assert "warning:" not in out


def test_no_warning_when_retirement_is_more_than_90_days_away(ft, capsys):
    model = ft.add_succeeded_job("gpt-4o-mini-2024-07-18", "calm")["fine_tuned_model"]
    code, out, _ = run(capsys, "--today", "2026-10-15")  # 91 days before 2027-01-14
    assert code == 0 and table_rows(out)[model][-1] == "91" and "warning:" not in out
    code, out, _ = run(capsys, "--today", "2026-10-16")
    assert table_rows(out)[model][-1] == "90" and f"warning: {model} retires on 2027-01-14 (in 90 days)" in out


def test_a_retired_model_is_still_listed_with_a_warning(ft, capsys):
    model = ft.add_succeeded_job("gpt-4.1-nano-2025-04-14", "gone")["fine_tuned_model"]
    code, out, _ = run(capsys, *TODAY)
    assert code == 0 and table_rows(out)[model][-1] == "-37"
    assert f"warning: {model} retired on 2026-10-23 (37 days ago)" in out


def test_all_pages_of_jobs_are_read(ft, capsys):
    ft.page_size = 2
    made = {ft.add_succeeded_job("gpt-4o-mini-2024-07-18", f"s{i}")["fine_tuned_model"] for i in range(5)}
    running = ft.add_succeeded_job("gpt-4.1-mini-2025-04-14", "still-training")
    running.update(status="running", fine_tuned_model=None)  # a job, but no model to call yet
    rows = listed(capsys, *TODAY)
    pages = ft.calls("GET", "/fine_tuning/jobs")
    assert len(pages) == 3 and [bool(p["query"].get("after")) for p in pages] == [False, True, True]
    assert {r["model"] for r in rows} == made
    assert all(r["job"] for r in rows)  # each found through its job, on whichever page it was


def test_an_empty_account_says_so(ft, capsys):
    code, out, err = run(capsys, *TODAY)
    assert code == 0 and err == ""
    assert out.strip() == f"no fine-tuned models visible to this key on {ft.url}"
    assert listed(capsys) == []


def test_a_rejected_key_exits_1_saying_which_variable_and_never_the_key(ft, capsys):
    # The API echoes the key it was given (OpenAI masks all but its ends): not even that is shown.
    ft.auth_fail = f"Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com."
    code, out, err = run(capsys, *TODAY)
    assert code == 1 and out == ""
    assert err.startswith("pytest-ft models: error: listing models:")
    assert "rejected the API key (HTTP 401, invalid_api_key). Check OPENAI_API_KEY" in err
    assert "Incorrect API key" not in err
    ft.auth_fail = True
    code, _, err = run(capsys, "--json")
    assert code == 1 and "rejected the API key" in err and "sk-test" not in err


def test_an_answer_that_is_not_json_exits_1(ft, capsys):
    ft.broken_json = 1
    code, out, err = run(capsys, *TODAY)
    assert code == 1 and out == ""
    assert "listing models" in err and "not JSON" in err and ft.url in err


def test_an_answer_that_is_not_json_from_the_jobs_listing_exits_1(ft, capsys, monkeypatch):
    ft.add_succeeded_job("gpt-4o-mini-2024-07-18", "p")
    real_models = ft.models

    def models_then_break():  # /models answers well; the request after it (the jobs listing) does not
        ft.broken_json = 1
        return real_models()

    monkeypatch.setattr(ft, "models", models_then_break)
    code, out, err = run(capsys, *TODAY)
    assert code == 1 and out == "" and "listing fine-tuning jobs" in err and "not JSON" in err
    assert len(ft.calls("GET", "/fine_tuning/jobs")) == 1


def test_an_unreachable_endpoint_exits_1(ft, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    code, out, err = run(capsys, *TODAY)
    assert code == 1 and out == "" and "cannot reach http://127.0.0.1:9/v1" in err


def test_a_retirement_file_overrides_the_dates(ft, capsys, tmp_path):
    model = ft.add_succeeded_job("gpt-4o-mini-2024-07-18", "moved")["fine_tuned_model"]
    (tmp_path / "dates.yaml").write_text("ft:gpt-4o-mini-2024-07-18:\n  retires: 2027-06-30\n"
                                         "  source: https://example.com/our-contract\n")
    [row] = listed(capsys, *TODAY, "--retirements", "dates.yaml")
    assert row["model"] == model and row["retires"] == "2027-06-30" and row["days_left"] == 213
    assert row["source"] == "https://example.com/our-contract" and row["warning"] is None


def test_a_bad_retirement_file_is_a_usage_error_before_any_request(ft, capsys, tmp_path):
    (tmp_path / "dates.yaml").write_text("gpt-4o:\n  retires: someday\n")
    code, out, err = run(capsys, "--retirements", "dates.yaml")
    assert code == 2 and out == "" and ft.requests == []
    assert err.strip() == ("pytest-ft models: error: dates.yaml:1: gpt-4o: 'retires' must be a date YYYY-MM-DD, "
                           "got 'someday'")


def test_a_bad_today_is_a_usage_error(ft, capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["models", "--today", "29/11/2026"])
    assert info.value.code == 2
    assert "expected a date YYYY-MM-DD, got '29/11/2026'" in capsys.readouterr().err
    assert ft.requests == []


def test_on_openais_endpoint_it_says_when_job_creation_ends(ft, capsys, monkeypatch):
    monkeypatch.setattr(models_cli, "OPENAI_HOSTS", frozenset({"127.0.0.1"}))
    code, out, _ = run(capsys, *TODAY)
    assert code == 0
    assert out.splitlines()[-1] == (
        "OpenAI stops creating fine-tuning jobs on 2027-01-06 (in 38 days): retrain or tune a replacement before then "
        "(https://developers.openai.com/api/docs/deprecations)")
    code, out, _ = run(capsys, "--today", "2027-01-07")
    assert out.splitlines()[-1].startswith("OpenAI stopped creating fine-tuning jobs on 2027-01-06: no model can be")
    code, out, _ = run(capsys, "--json", *TODAY)
    assert json.loads(out) == []  # --json prints the list, nothing else


def test_the_command_runs_as_a_module_in_its_own_process(ft, tmp_path):
    model = ft.add_succeeded_job("gpt-5-mini-2025-08-07", "sub")["fine_tuned_model"]
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": ft.url}
    src = str(Path(models_cli.__file__).parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (src, env.get("PYTHONPATH"))))
    done = subprocess.run([sys.executable, "-m", "pytest_ft", "models", *TODAY], capture_output=True, text=True, check=False,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{model}  gpt-5-mini-2025-08-07" in done.stdout
    assert f"warning: {model} retires on 2026-12-11 (in 12 days)" in done.stdout
    assert KEY not in done.stdout + done.stderr
    ft.auth_fail = True
    done = subprocess.run([sys.executable, "-m", "pytest_ft", "models"], capture_output=True, text=True, check=False,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and "HTTP 401" in done.stderr and KEY not in done.stdout + done.stderr
