"""``pytest-ft freeze``: a retiring model's answers kept as a cases_file and as training data."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hostile_server import HostileServer
from openai_server import FakeOpenAI

from pytest_ft.cli import main
from pytest_ft.data.frozen import FrozenFileError, frozen_line, prompt_key, read_frozen

FAKE_KEY = "sk-" "abcdefghijklmnop1234"  # split: no key-shaped literal in the repository
OLD = "ft:gpt-4o-2024-08-06:acme:support:old1"  # the model being shut down
SYSTEM = "You answer support tickets."

SUITE = f"""
suite: support
models:
  base: gpt-4o-mini-2024-07-18
  tuned: {OLD}
system: "{SYSTEM}"
grader: exact
cases:
  - id: greet
    input: "hello LABEL=HELLO"
    expected: HELLO
  - id: angry
    messages: [{{role: user, content: "this is broken LABEL=SORRY"}}]
    expected: SORRY
  - id: terse
    messages: [{{role: system, content: "Be terse."}}, {{role: user, content: "status? LABEL=FINE"}}]
    expected: FINE
  - id: bye
    input: "bye LABEL=BYE"
    expected: BYE
"""


def chat(user: str, answer: str | None = None, *, system: str | None = None, id: str | None = None) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    line: dict = {"messages": messages + ([{"role": "assistant", "content": answer}] if answer is not None else [])}
    if id is not None:
        line["metadata"] = {"id": id}
    return line


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def freeze(capsys, *args) -> tuple[int, str, str]:
    code = main(["freeze", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def traffic(tmp_path: Path, n: int = 10, *, fault: set[int] = frozenset()) -> Path:
    """``n`` exported conversations, each ending with the answer the old model gave then."""
    return write_jsonl(tmp_path / "traffic.jsonl", [
        chat(f"ticket {i} LABEL=L{i}" + (" FAULT=500x1" if i in fault else ""), "then", system=SYSTEM)
        for i in range(n)])


def fake_prompt_tokens(messages: list[dict]) -> int:
    """What tests/openai_server.py counts for a prompt."""
    return sum(len(str(m.get("content", "")).split()) for m in messages) + 3 * len(messages)


# --------------------------------------------------------------------------------------------
# freezing


def test_prompts_from_jsonl_and_a_suite_are_frozen_once_each_with_where_the_answer_came_from(tmp_path, server, capsys):
    source = write_jsonl(tmp_path / "prod.jsonl", [
        chat("Refund policy? LABEL=REFUND", "an old answer", system=SYSTEM),
        chat("Where is my order? LABEL=TRACKING", id="order-status"),
        {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "hello"}, {"role": "user", "content": "cancel it LABEL=CANCEL"}]},
        chat("cached prompt LABEL=OK CACHED=7"),
        "",
        chat("Where is my order? LABEL=TRACKING", "a different old answer"),  # the same prompt again
        chat("ECHO repeat after me"),
        chat("last one LABEL=LAST", id="last"),
    ])
    suite = tmp_path / "support.ft.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    out = tmp_path / "frozen.jsonl"

    before = datetime.now(timezone.utc).replace(microsecond=0)
    code, printed, err = freeze(capsys, source, suite, "--model", OLD, "--out", out,
                                "--param", "temperature=0", "--param", "max_tokens=50")
    assert (code, err) == (0, "")
    assert "frozen 10 new answers (0 already in" in printed and "1 duplicate prompt frozen once" in printed

    requests = server.chat_requests()
    assert len(requests) == 10
    assert all(r["body"]["model"] == OLD and r["body"]["temperature"] == 0 and r["body"]["max_tokens"] == 50
               for r in requests)
    sent = {prompt_key(r["body"]["messages"]) for r in requests}

    lines = lines_of(out)
    by_id = {line["metadata"]["id"]: line for line in lines}
    assert sorted(by_id) == ["angry", "bye", "greet", "last", "order-status", "prod-1", "prod-3", "prod-4", "prod-7",
                             "terse"]
    expected = {"prod-1": "REFUND", "order-status": "TRACKING", "prod-3": "CANCEL", "prod-4": "OK",
                "prod-7": "ECHO repeat after me", "last": "LAST", "greet": "HELLO", "angry": "SORRY", "terse": "FINE",
                "bye": "BYE"}
    for case_id, line in by_id.items():
        prompt, answer = line["messages"][:-1], line["messages"][-1]
        assert answer == {"role": "assistant", "content": expected[case_id]}
        assert prompt_key(prompt) in sent  # the prompt is what was asked, without the old answer
        meta = line["metadata"]["frozen"]
        assert meta["model"] == meta["requested_model"] == OLD
        assert before <= datetime.fromisoformat(meta["date"]) <= datetime.now(timezone.utc) + timedelta(seconds=1)
        assert meta["date"].endswith("Z") and len(meta["date"]) == 20
        assert meta["latency_ms"] > 0 and meta["replayed"] is False
        assert meta["usage"] == {"prompt_tokens": fake_prompt_tokens(prompt),
                                 "completion_tokens": len(expected[case_id].split()),
                                 "cached_tokens": 7 if case_id == "prod-4" else 0}
    # a suite's case is asked as the evaluation asks it: with the suite's system message, unless it has its own
    assert by_id["greet"]["messages"][0] == {"role": "system", "content": SYSTEM}
    assert by_id["terse"]["messages"][0] == {"role": "system", "content": "Be terse."}
    assert len(by_id["prod-3"]["messages"]) == 5  # a conversation ending with the user: all of it is the prompt

    frozen = read_frozen(out)
    assert len(frozen) == 10 and frozen.path == out
    assert frozen.by_id("last").text == "LAST" and frozen.by_id("nope") is None
    reordered = [{"content": m["content"], "role": m["role"]} for m in by_id["greet"]["messages"][:-1]]
    assert frozen.by_prompt(reordered).id == "greet"  # key order does not matter
    assert frozen.by_prompt([{"role": "user", "content": "never asked"}]) is None
    assert frozen.by_id("prod-4").usage == {"prompt_tokens": fake_prompt_tokens(by_id["prod-4"]["messages"][:-1]),
                                            "completion_tokens": 1, "cached_tokens": 7}


def test_a_failed_run_writes_the_others_and_a_rerun_sends_only_the_missing_prompts(tmp_path, server, capsys):
    source = traffic(tmp_path, 10, fault={2, 7})
    out = tmp_path / "frozen.jsonl"
    code, printed, _ = freeze(capsys, source, "--model", OLD, "--out", out, "--retries", "0")
    assert code == 1
    assert "frozen 8 new answers (0 already in" in printed and "2 failed: " in printed
    assert "traffic-3: frozen model" in printed and "HTTP 500: The server had an error" in printed
    assert "traffic-8: frozen model" in printed
    first = out.read_bytes()
    assert sorted(line["metadata"]["id"] for line in lines_of(out)) == \
        sorted(f"traffic-{i + 1}" for i in range(10) if i not in (2, 7))
    assert len(server.chat_requests()) == 10

    code, printed, _ = freeze(capsys, source, "--model", OLD, "--out", out, "--retries", "0")
    assert code == 0
    assert "frozen 2 new answers (8 already in" in printed
    again = server.chat_requests()[10:]
    assert sorted(r["body"]["messages"][-1]["content"] for r in again) == ["ticket 2 LABEL=L2 FAULT=500x1",
                                                                          "ticket 7 LABEL=L7 FAULT=500x1"]
    assert set(first.splitlines()) < set(out.read_bytes().splitlines())  # every line kept, byte for byte
    assert [line["metadata"]["id"] for line in lines_of(out)] == [f"traffic-{i + 1}" for i in range(10)]
    assert {line["messages"][-1]["content"] for line in lines_of(out)} == {f"L{i}" for i in range(10)}

    code, printed, _ = freeze(capsys, source, "--model", OLD, "--out", out)
    assert code == 0 and "frozen 0 new answers (10 already in" in printed
    assert len(server.chat_requests()) == 12


def test_the_frozen_file_is_valid_training_data_and_splits_line_for_line(tmp_path, server, capsys):
    out = tmp_path / "frozen.jsonl"
    assert freeze(capsys, traffic(tmp_path, 12), "--model", OLD, "--out", out)[0] == 0
    assert main(["data", "validate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "12 examples (chat), 12 valid" in printed and "OK: no errors" in printed
    assert "unrecognized_key" not in printed

    assert main(["data", "split", str(out), "--val", "3", "--out-train", str(tmp_path / "t.jsonl"),
                 "--out-val", str(tmp_path / "v.jsonl")]) == 0
    parts = (tmp_path / "t.jsonl").read_bytes().splitlines() + (tmp_path / "v.jsonl").read_bytes().splitlines()
    assert sorted(parts) == sorted(out.read_bytes().splitlines())  # metadata and all, byte for byte

    # metadata is accepted only as an object
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**chat("hi", "yo", system="s"), "metadata": "crm"}])
    capsys.readouterr()
    assert main(["data", "validate", str(bad)]) == 1
    printed = capsys.readouterr().out
    assert "data_type" in printed and "'metadata' is a string, not an object" in printed


def test_the_frozen_file_is_a_cases_file_that_grades_the_replacements(pytester, server, capsys):
    prompts = write_jsonl(pytester.path / "prod.jsonl", [
        chat("Refund? LABEL=REFUND", id="refund"), chat("Order? LABEL=TRACKING BASEWRONG", id="order"),
        chat("Cancel? LABEL=CANCEL", id="cancel")])
    assert freeze(capsys, prompts, "--model", OLD, "--out", pytester.path / "frozen.jsonl")[0] == 0
    new = "ft:gpt-4.1-mini-2025-04-14:acme:support:new2"
    (pytester.path / "replace.ft.yaml").write_text(
        f"suite: replace\nmodels: {{base: gpt-4.1-mini-2025-04-14, tuned: '{new}'}}\ncases_file: frozen.jsonl\n")

    result = pytester.runpytest("-v", "-p", "no:cacheprovider", "--ft-report=report.json")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*replace.ft.yaml::refund PASSED*", "*replace.ft.yaml::order PASSED*",
                                 "*replace.ft.yaml::cancel PASSED*"])
    suite = json.loads((pytester.path / "report.json").read_text())["suites"][0]
    # the old model's answers are the expected ones: the base model, which answers WRONG on one, misses it
    assert {c["id"]: c["base"]["passed"] for c in suite["cases"]} == {"refund": True, "order": False, "cancel": True}
    sent = server.chat_requests(new)[0]["body"]["messages"]
    assert sent[-1]["role"] == "user"  # the frozen answer is not sent


def test_with_recordings_the_freezing_replays_once_the_model_is_gone(tmp_path, monkeypatch, capsys):
    cassettes, source = tmp_path / "cassettes", traffic(tmp_path, 4)
    with FakeOpenAI() as gone:
        monkeypatch.setenv("OPENAI_BASE_URL", gone.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-" "freeze-replay-0123456789abcdef")
        code, _, _ = freeze(capsys, source, "--model", OLD, "--out", tmp_path / "live.jsonl",
                            "--cassette-dir", cassettes, "--param", "temperature=0")
        assert code == 0 and len(gone.chat_requests()) == 4
    assert sorted(p.name for p in (cassettes / "freeze-ft_gpt-4o-2024-08-06_acme_support_old1").iterdir()) == \
        [f"traffic-{i}.yaml" for i in range(1, 5)]

    code, printed, _ = freeze(capsys, source, "--model", OLD, "--out", tmp_path / "replayed.jsonl",
                              "--cassette-dir", cassettes, "--record-mode", "none", "--param", "temperature=0")
    assert code == 0 and "4 replayed from recordings" in printed
    live = {line["metadata"]["id"]: line for line in lines_of(tmp_path / "live.jsonl")}
    replayed = {line["metadata"]["id"]: line for line in lines_of(tmp_path / "replayed.jsonl")}
    assert live.keys() == replayed.keys()
    for case_id, line in replayed.items():
        assert line["messages"] == live[case_id]["messages"]
        meta, was = line["metadata"]["frozen"], live[case_id]["metadata"]["frozen"]
        assert meta["replayed"] is True and was["replayed"] is False
        assert meta["usage"] == was["usage"] and meta["model"] == was["model"]
        assert meta["latency_ms"] is not None and abs(meta["latency_ms"] - was["latency_ms"]) < 50

    # other parameters were never recorded: replay-only mode says so instead of calling
    code, printed, _ = freeze(capsys, source, "--model", OLD, "--out", tmp_path / "other.jsonl",
                              "--cassette-dir", cassettes, "--record-mode", "none", "--param", "temperature=1")
    assert code == 1 and "4 failed" in printed and "no recording of this request" in printed
    assert not (tmp_path / "other.jsonl").exists()


def test_a_prompt_holding_a_credential_is_stored_masked_and_still_found_again(tmp_path, server, capsys):
    source = write_jsonl(tmp_path / "p.jsonl", [chat("my key is " + FAKE_KEY + ", why? LABEL=NO")])
    out = tmp_path / "frozen.jsonl"
    assert freeze(capsys, source, "--model", OLD, "--out", out)[0] == 0
    assert FAKE_KEY not in out.read_text() and "sk-REDACTED" in out.read_text()
    code, printed, _ = freeze(capsys, source, "--model", OLD, "--out", out)
    assert code == 0 and "(1 already in" in printed
    assert len(server.chat_requests()) == 1


def test_ctrl_c_keeps_every_answer_received_whole(tmp_path):
    source = write_jsonl(tmp_path / "p.jsonl", [chat(f"fast {i} LABEL=F{i}") for i in range(3)]
                         + [chat(f"slow {i} LABEL=S{i} SLOW=20000") for i in range(2)])
    out = tmp_path / "frozen.jsonl"
    with FakeOpenAI() as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-" "ctrl-c-0123456789abcdef"}
        child = subprocess.Popen([sys.executable, "-m", "pytest_ft.cli", "freeze", str(source), "--model", OLD,
                                  "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "interrupted; every answer received is kept in" in err
    text = out.read_text()
    assert text.endswith("\n")
    frozen = read_frozen(out)
    assert len(frozen) == 3 and sorted(a.text for a in [frozen.by_id(f"p-{i}") for i in (1, 2, 3)]) == ["F0", "F1", "F2"]


# --------------------------------------------------------------------------------------------
# bad inputs, bad files, bad answers


BAD_LINES = {
    "not_json": ('{"messages": [', "p.jsonl:2: invalid_json"),
    "not_an_object": ("[1, 2]", "p.jsonl:2: must be a JSON object"),
    "no_messages": ({"prompt": "hi"}, "p.jsonl:2: messages: must be a non-empty list"),
    "unknown_role": ({"messages": [{"role": "human", "content": "hi"}]}, "p.jsonl:2: messages[0].role: unknown role"),
    "only_an_answer": ({"messages": [{"role": "assistant", "content": "yo"}]}, "p.jsonl:2: messages: no prompt"),
    "metadata_not_an_object": ({**chat("hi"), "metadata": [1]}, "p.jsonl:2: metadata: must be an object"),
    "unsafe_id": (chat("hi", id="a::b"), "p.jsonl:2: metadata.id: 'a::b': may not"),
}


@pytest.mark.parametrize("line, message", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_bad_input_line_is_one_error_naming_file_line_and_key_and_nothing_is_sent(tmp_path, server, capsys,
                                                                                    line, message):
    source = write_jsonl(tmp_path / "p.jsonl", [chat("fine LABEL=A"), line, chat("fine too LABEL=B")])
    out = tmp_path / "frozen.jsonl"
    code, _, err = freeze(capsys, source, "--model", OLD, "--out", out)
    assert code == 2
    assert err.count("error:") == 1 and message in err, err
    assert not out.exists() and server.chat_requests() == []
    out.write_text(json.dumps(_frozen()) + "\n")  # a file being resumed is left as it was
    before = out.read_bytes()
    assert freeze(capsys, source, "--model", OLD, "--out", out)[0] == 2
    assert out.read_bytes() == before and server.chat_requests() == []


def test_a_suite_that_fails_to_load_is_one_error_and_the_other_inputs_are_still_frozen(tmp_path, server, capsys):
    bad = tmp_path / "bad.ft.yaml"
    bad.write_text("models: {tuned: x}\ncases:\n  - id: a\n    input: hi\n    expected: y\n    expectd: z\n")
    out = tmp_path / "frozen.jsonl"
    code, printed, err = freeze(capsys, bad, traffic(tmp_path, 3), "--model", OLD, "--out", out)
    assert code == 2
    assert err.count("error:") == 1 and f"{bad}:6: expectd: unknown key" in err
    assert "frozen 3 new answers" in printed and len(read_frozen(out)) == 3


def test_ids_that_name_two_prompts_are_errors_naming_both_and_only_the_first_is_frozen(tmp_path, server, capsys):
    source = write_jsonl(tmp_path / "p.jsonl", [chat("one LABEL=1", id="q"), chat("two LABEL=2", id="q"),
                                                chat("three LABEL=3", id="a b"), chat("four LABEL=4", id="a_b"),
                                                chat("one LABEL=1", id="q")])
    out = tmp_path / "frozen.jsonl"
    code, printed, err = freeze(capsys, source, "--model", OLD, "--out", out)
    assert code == 2
    assert f"{source}:2: id 'q' is also the id of {source}:1, a different prompt: not frozen" in err
    assert f"{source}:4: id 'a_b' and 'a b' ({source}:3) would share the recording a_b.yaml" in err
    assert sorted(a["metadata"]["id"] for a in lines_of(out)) == ["a b", "q"]
    assert "1 duplicate prompt frozen once" in printed

    # the file already has 'q' for another prompt: a changed input cannot reuse the id
    write_jsonl(source, [chat("one, reworded LABEL=1", id="q")])
    code, _, err = freeze(capsys, source, "--model", OLD, "--out", out)
    assert code == 2 and f"id 'q' is already in {out} for a different prompt" in err
    assert len(server.chat_requests()) == 2


def _frozen(**changes) -> dict:
    line = json.loads(frozen_line("q1", [{"role": "user", "content": "hi"}], "yo", model=OLD, requested_model=OLD,
                                  date="2026-01-01T00:00:00Z", latency_ms=12.5, usage={"prompt_tokens": 3},
                                  replayed=False))
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = line
        for key in parents:
            node = node[key]
        node[last] = value
    return line


BROKEN_FILES = {
    "cut_off": ('{"messages": [{"role": "user"', "frozen.jsonl:2: truncated_line"),
    "not_an_object": ('"text"', "frozen.jsonl:2: line: not a JSON object"),
    "no_answer": (_frozen(messages=[{"role": "user", "content": "hi"}]), "frozen.jsonl:2: messages: no assistant"),
    "frozen_not_a_mapping": (_frozen(metadata__frozen="yes"), "frozen.jsonl:2: metadata.frozen: must be an object"),
    "bad_latency": (_frozen(metadata__frozen__latency_ms="fast"), "frozen.jsonl:2: metadata.frozen.latency_ms"),
    "negative_tokens": (_frozen(metadata__frozen__usage={"prompt_tokens": -1}), "frozen.jsonl:2: metadata.frozen.usage"),
    "bad_date": (_frozen(metadata__frozen__date="yesterday"), "frozen.jsonl:2: metadata.frozen.date"),
    "no_id": (_frozen(metadata__id=""), "frozen.jsonl:2: metadata.id: must be a non-empty string"),
    "duplicate_id": (_frozen(messages=[{"role": "user", "content": "other"}, {"role": "assistant", "content": "x"}]),
                     "frozen.jsonl:2: metadata.id: 'q1' is also the id of line 1"),
}


@pytest.mark.parametrize("line, message", BROKEN_FILES.values(), ids=BROKEN_FILES.keys())
def test_a_broken_frozen_file_is_an_error_and_is_left_as_it_was(tmp_path, server, capsys, line, message):
    out = tmp_path / "frozen.jsonl"
    out.write_text(json.dumps(_frozen()) + "\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n")
    if message.endswith("truncated_line"):
        out.write_bytes(out.read_bytes().rstrip(b"\n"))
    before = out.read_bytes()
    with pytest.raises(FrozenFileError, match=re.escape(message)):
        read_frozen(out)
    code, _, err = freeze(capsys, traffic(tmp_path, 2), "--model", OLD, "--out", out)
    assert code == 2 and message in err
    assert out.read_bytes() == before and server.chat_requests() == []


def test_a_401_fails_with_the_apis_message_and_never_the_key(tmp_path, monkeypatch, capsys):
    key = "zq-distinctive-freeze-key-4242"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    source = write_jsonl(tmp_path / "p.jsonl", [chat("ECHO401 please"), chat("ECHO401 again")])
    out, cassettes = tmp_path / "frozen.jsonl", tmp_path / "cassettes"
    with HostileServer() as hostile:
        code, printed, err = freeze(capsys, source, "--model", OLD, "--out", out, "--base-url", hostile.url,
                                    "--cassette-dir", cassettes)
        sent = {k.lower(): v for k, v in hostile.requests[0]["headers"].items()}
        assert sent["authorization"] == f"Bearer {key}"  # the server echoes it back in its error
    assert code == 1
    assert "2 failed" in printed and "HTTP 401: bad request from authorization: Bearer REDACTED" in printed
    assert key not in printed + err
    assert not out.exists()
    assert all(key not in p.read_text() for p in cassettes.rglob("*") if p.is_file())


def test_usage_errors_exit_2(tmp_path, server, capsys):
    source = traffic(tmp_path, 1)
    assert freeze(capsys, source, "--model", OLD, "--out", tmp_path / "o.jsonl", "--record-mode", "none")[0] == 2
    code, _, err = freeze(capsys, source, "--model", OLD, "--out", tmp_path / "o.jsonl", "--param", "stream=true")
    assert code == 2 and "--param stream: reserved" in err
    code, _, err = freeze(capsys, source, "--model", OLD, "--out", source)
    assert code == 2 and "is the input" in err
    assert source.read_text().count("\n") == 1 and server.chat_requests() == []


def test_answers_arrive_in_any_order_and_the_file_lists_them_in_the_prompts_order(tmp_path, server, capsys):
    """The same prompts make the same file: training a replacement on it is then reproducible."""
    lines = [chat(f"slow {i} LABEL=L{i} SLOW={300 - 100 * i}", id=f"p{i}") for i in range(3)]
    source = write_jsonl(tmp_path / "prompts.jsonl", lines)
    out = tmp_path / "frozen.jsonl"
    assert main(["freeze", str(source), "--model", OLD, "--out", str(out), "--base-url", server.url]) == 0
    # p2 answered first and p0 last (their SLOW=), yet the file is in the prompts' order
    assert [json.loads(line)["metadata"]["id"] for line in out.read_text().splitlines()] == ["p0", "p1", "p2"]


def test_tool_call_answers_are_frozen_as_calls_and_answer_again_as_calls(tmp_path, server, capsys):
    """A function-calling fine-tune: its frozen answer is the call it made, in the fine-tuning format."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    server.replies["W1"] = {"old1": {"calls": [("get_weather", {"city": "Recife"})]}}
    server.replies["W2"] = {"old1": {"calls": [("get_weather", '{"city": "Rec')]}}  # malformed: kept as sent
    source = write_jsonl(tmp_path / "prompts.jsonl", [
        {"tools": tools, "messages": [{"role": "user", "content": f"weather? {w}"}], "metadata": {"id": w}}
        for w in ("W1", "W2")])
    out = tmp_path / "frozen.jsonl"
    code, printed, _ = freeze(capsys, source, "--model", OLD, "--out", out, "--base-url", server.url)
    assert code == 0, printed
    answers = [line["messages"][-1] for line in lines_of(out)]
    assert answers[0] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Recife"}'}}]}
    assert answers[1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Rec'
    assert [r["body"]["tools"] for r in server.chat_requests()] == [tools, tools]  # the prompt's tools were sent
    assert [line["tools"] for line in lines_of(out)] == [tools, tools]  # and kept: function-calling training data
    assert main(["data", "validate", str(out)]) == 0
    frozen = read_frozen(out)
    call = frozen.by_id("W1").tool_calls[0]
    assert (call["name"], call["arguments"]) == ("get_weather", {"city": "Recife"})
    assert frozen.by_id("W2").tool_calls[0]["arguments"] is None and frozen.by_id("W2").text == ""
