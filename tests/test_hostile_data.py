"""``pytest-ft data`` on hostile input: a JSON escape that json.loads turns into a lone surrogate.

``"\\ud800"`` is valid JSON, but the string it makes is no text: encoding it to UTF-8 (for a
hash, a tokenizer or an output file) raises. Every command must report the line instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_ft import data
from pytest_ft.cli import data as data_cli

SURROGATE_LINE = '{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "x"}]}'
SURROGATE_LINENO = 4


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": user},
                         {"role": "assistant", "content": answer}]}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def hostile(tmp_path) -> Path:
    """60 valid examples with the lone-surrogate line at line 4.

    The valid ones hold escapes that are no lone surrogates: an emoji's surrogate pair, and an
    escaped backslash before "ud800".
    """
    lines = [json.dumps(chat(f"Question {i}? \U0001F600", f"Answer {i}: \\ud800 is text.")) for i in range(60)]
    assert "\\ud83d\\ude00" in lines[0] and "\\\\ud800" in lines[0]
    lines.insert(SURROGATE_LINENO - 1, SURROGATE_LINE)
    return write_lines(tmp_path / "train.jsonl", lines)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = data_cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_reports_the_lone_surrogate_line(hostile, capsys):
    report = data.validate(hostile)
    assert report.errors == {"encoding_error": 1}
    assert report.valid_examples == 60
    problem = next(p for p in report.problems if p.severity == "error")
    assert problem.line == SURROGATE_LINENO and "\\ud800" in problem.message
    code, out, _ = run(["data", "validate", str(hostile)], capsys)
    assert code == 1 and "encoding_error" in out and "\\ud800" in out


def test_validate_json_output_is_printable(hostile, capsys):
    code, out, _ = run(["data", "validate", str(hostile), "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["errors"] == {"encoding_error": 1}
    assert [p["line"] for p in report["problems"] if p["severity"] == "error"] == [SURROGATE_LINENO]


def test_stats_leaves_the_line_out(hostile, capsys):
    report = data.stats(hostile, "gpt-4o-mini")
    assert (report.examples, report.invalid_examples, report.errors) == (60, 1, {"encoding_error": 1})
    code, out, _ = run(["data", "stats", str(hostile), "--model", "gpt-4o-mini"], capsys)
    assert code == 1 and "encoding_error 1" in out


@pytest.mark.parametrize("command", [
    ["dedupe", "{file}", "-o", "{tmp}/out.jsonl"],
    ["dedupe", "{file}", "-o", "{tmp}/out.jsonl", "--by", "input"],
    ["split", "{file}", "--out-train", "{tmp}/t.jsonl", "--out-val", "{tmp}/v.jsonl"],
    ["convert", "{file}", "-o", "{tmp}/suite.ft.yaml"],
    ["check-leak", "{file}", "{tmp}/clean.jsonl"],
    ["check-leak", "{tmp}/clean.jsonl", "{file}"],
], ids=["dedupe", "dedupe-by-input", "split", "convert", "check-leak-train", "check-leak-eval"])
def test_commands_stop_at_the_line_and_write_nothing(hostile, tmp_path, capsys, command):
    write_lines(tmp_path / "clean.jsonl", [json.dumps(chat(f"Other {i}?", "Yes.")) for i in range(3)])
    argv = ["data", *(a.format(file=hostile, tmp=tmp_path) for a in command)]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run(argv, capsys)
    assert code == 1
    assert f"{hostile}: line {SURROGATE_LINENO}: encoding_error" in err and "\\ud800" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_surrogate_in_a_key_and_in_a_preference_example(tmp_path):
    rows = [json.dumps({"input": {"messages": [{"role": "user", "content": f"Q {i}"}]},
                        "preferred_output": [{"role": "assistant", "content": "good"}],
                        "non_preferred_output": [{"role": "assistant", "content": "bad"}]}) for i in range(20)]
    rows[2] = rows[2].replace('"bad"', '"b\\uDFFFad"')
    rows[5] = rows[5].replace('"content"', '"\\udc00"', 1)
    report = data.validate(write_lines(tmp_path / "dpo.jsonl", rows))
    assert report.errors == {"encoding_error": 2}
    assert [p.line for p in report.problems if p.severity == "error"] == [3, 6]


def test_lone_surrogate_walks_keys_lists_and_deep_values():
    assert data.lone_surrogate({"a": [1, None, {"b": "ok"}]}) is None
    assert data.lone_surrogate({"\ud800": 1}) == "\ud800"
    assert data.lone_surrogate([[[["x\udfff"]]]]) == "\udfff"
    deep: list = ["\udbff"]
    for _ in range(10_000):  # deeper than Python's recursion limit
        deep = [deep]
    assert data.lone_surrogate(deep) == "\udbff"
