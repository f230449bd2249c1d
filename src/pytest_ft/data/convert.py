"""``convert``: CSV or a ``*.ft.yaml`` suite to chat JSONL, and chat JSONL to a suite.

So that a team's spreadsheet of questions and answers, its eval suite and its training data
can each be made from another. Outputs are written atomically, never over the source.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import tokens
from .errors import DataError
from .io import BOM, SUITE_SUFFIXES, AtomicWriter, check_outputs, default_output, examples_strict, read_suite
from .schema import example_type

# The columns tried, in this order, when --input-col / --expected-col name none.
INPUT_COLUMNS = ("input", "prompt", "question", "user", "query", "instruction", "text")
EXPECTED_COLUMNS = ("expected", "completion", "answer", "output", "response", "target", "label", "assistant",
                    "expected_output", "ideal")


@dataclass
class ConvertReport:
    source: str
    output: str
    direction: str            # "csv->jsonl", "suite->jsonl", "jsonl->suite"
    written: int
    skipped: int = 0
    skipped_details: list[dict[str, Any]] = field(default_factory=list)   # first 100: {line, reason}
    columns: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _source_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith(SUITE_SUFFIXES):
        return "suite"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise DataError(f"{path}: cannot tell the format from the name: expected .csv / .tsv, a *.ft.yaml suite, "
                    f"or .jsonl")


def _pick_column(header: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str,
                 path: Path, flag: str) -> str:
    if wanted:
        if wanted in header:
            return wanted
        folded = {h.strip().casefold(): h for h in header}
        if wanted.strip().casefold() in folded:
            return folded[wanted.strip().casefold()]
        raise DataError(f"{path}: no column {wanted!r} (columns: {', '.join(header)})")
    folded = {h.strip().casefold(): h for h in header}
    for c in candidates:
        if c in folded:
            return folded[c]
    raise DataError(f"{path}: cannot find the {what} column among {', '.join(header) or 'no columns'}; "
                    f"name it with {flag}")


def _answer_text(expected: Any) -> str | None:
    if expected is None:
        return None
    if isinstance(expected, str):
        return expected
    if isinstance(expected, (bool, int, float)):
        return json.dumps(expected)
    return json.dumps(expected, ensure_ascii=False, sort_keys=True)


def _jsonl_line(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def convert(source: str | os.PathLike, output: str | os.PathLike | None = None, *,
            input_col: str | None = None, expected_col: str | None = None, system: str | None = None,
            name: str | None = None, force: bool = False, progress: bool | None = None) -> ConvertReport:
    """Convert CSV or a ``*.ft.yaml`` suite to chat JSONL, or chat JSONL to a suite.

    The direction follows the source's name: ``.csv``/``.tsv`` and ``.yaml``/``.yml`` become
    JSONL, ``.jsonl`` becomes a suite (cases inline, ids ``lineN`` as for a suite's ``cases_file``).
    """
    src = Path(source)
    kind = _source_kind(src)
    if not src.is_file():
        raise DataError(f"{src}: no such file")
    if kind == "jsonl":
        dst = Path(output) if output else default_output(src, ".ft.yaml")
    else:
        stem = src.name
        for ext in (".ft.yaml", ".ft.yml", ".yaml", ".yml", ".csv", ".tsv"):
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
                break
        dst = Path(output) if output else src.with_name(stem + ".jsonl")
    if system is not None and kind != "csv":
        raise DataError("--system applies to CSV input only (a suite carries its own system message)")
    if (input_col or expected_col) and kind != "csv":
        raise DataError("--input-col / --expected-col apply to CSV input only")
    check_outputs([dst], [src], force)
    if kind == "csv":
        return _convert_csv(src, dst, input_col, expected_col, system)
    if kind == "suite":
        return _convert_suite(src, dst)
    return _convert_jsonl(src, dst, name, progress)


def _convert_csv(src: Path, dst: Path, input_col, expected_col, system) -> ConvertReport:
    delimiter = "\t" if src.name.lower().endswith(".tsv") else ","
    skipped: list[dict[str, Any]] = []
    n_skipped = written = 0
    try:
        fh = open(src, "rb")
    except OSError as exc:
        raise DataError(f"{src}: cannot read: {exc.strerror or exc}") from None

    def text_lines() -> Iterator[str]:  # decoded one physical line at a time, for exact line numbers
        for number, raw in enumerate(fh, 1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{src}: line {number}: not valid UTF-8 (byte 0x{raw[exc.start:exc.start + 1].hex()}"
                                f" at byte {exc.start + 1}); save the file as UTF-8", 1) from None

    with fh, AtomicWriter(dst) as out:
        reader = csv.reader(text_lines(), delimiter=delimiter)
        try:
            header = next(reader, None)
            if not header:
                raise DataError(f"{src}: the file is empty (a header row naming the columns is needed)", 1)
            icol = _pick_column(header, input_col, INPUT_COLUMNS, "input", src, "--input-col")
            ecol = _pick_column(header, expected_col, EXPECTED_COLUMNS, "expected answer", src, "--expected-col")
            ii, ei = header.index(icol), header.index(ecol)
            for row in reader:
                line = reader.line_num
                if not row or not any(cell.strip() for cell in row):
                    continue
                user = row[ii] if ii < len(row) else ""
                answer = row[ei] if ei < len(row) else ""
                if not user.strip() or not answer.strip():
                    n_skipped += 1
                    if len(skipped) < 100:
                        skipped.append({"line": line, "reason": f"empty {icol if not user.strip() else ecol}"})
                    continue
                messages = ([{"role": "system", "content": system}] if system else []) + [
                    {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
                out.write(_jsonl_line({"messages": messages}))
                written += 1
        except csv.Error as exc:
            raise DataError(f"{src}: line {reader.line_num}: {exc}", 1) from None
    return ConvertReport(str(src), str(dst), "csv->jsonl", written, n_skipped, skipped,
                         columns={"input": icol, "expected": ecol})


def _convert_suite(src: Path, dst: Path) -> ConvertReport:
    suite = read_suite(src)
    skipped: list[dict[str, Any]] = []
    written = 0
    with AtomicWriter(dst) as out:
        for case in suite.cases:
            answer = _answer_text(case.expected)
            if answer is None or not answer.strip():
                skipped.append({"case": str(case.id), "reason": "no expected answer"})
                continue
            # fine-tuning data has no "developer" role: its instructions are the system message
            messages = [{**m, "role": "system"} if m.get("role") == "developer" else dict(m) for m in case.messages]
            if suite.system and not any(m.get("role") == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": suite.system})
            messages.append({"role": "assistant", "content": answer})
            out.write(_jsonl_line({"messages": messages}))
            written += 1
    return ConvertReport(str(src), str(dst), "suite->jsonl", written, len(skipped), skipped)


def _case_from_example(obj: Any, common_system: str | None) -> tuple[dict[str, Any] | None, str]:
    if example_type(obj) != "chat" or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        return None, "not a chat example"
    msgs = obj["messages"]
    last = msgs[-1]
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return None, "the last message is not the assistant's answer"
    if last.get("tool_calls") or last.get("function_call"):
        return None, "the answer is a tool call"
    answer = tokens.content_text(last.get("content"))
    if not answer.strip():
        return None, "the assistant's answer is empty"
    inputs = [{k: v for k, v in m.items() if k != "weight"} for m in msgs[:-1] if isinstance(m, dict)]
    if common_system is not None and inputs and inputs[0].get("role") == "system":
        inputs = inputs[1:]
    if not any(m.get("role") == "user" for m in inputs):
        return None, "no user message"
    case: dict[str, Any] = {}
    if len(inputs) == 1 and set(inputs[0]) == {"role", "content"} and isinstance(inputs[0]["content"], str):
        case["input"] = inputs[0]["content"]
    else:
        case["messages"] = inputs
    case["expected"] = answer
    return case, ""


def _convert_jsonl(src: Path, dst: Path, name: str | None, progress) -> ConvertReport:
    import yaml

    # pass 1: is there one system message shared by every example?
    system: str | None = None
    shared = True
    for parsed in examples_strict(src, progress=progress, label=f"convert {src} (1/2)"):
        msgs = parsed.obj.get("messages") if isinstance(parsed.obj, dict) else None
        first = msgs[0] if isinstance(msgs, list) and msgs else None
        sys_text = first.get("content") if isinstance(first, dict) and first.get("role") == "system" else None
        if not isinstance(sys_text, str):
            shared = False
            break
        if system is None:
            system = sys_text
        elif sys_text != system:
            shared = False
            break
    common = system if shared else None
    suite_name = name or (src.name[: -len(".jsonl")] if src.name.endswith(".jsonl") else src.stem)
    skipped: list[dict[str, Any]] = []
    n_skipped = written = 0

    def dump(value: Any) -> str:
        return yaml.safe_dump(value, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1 << 16)

    with AtomicWriter(dst, "w") as out:
        out.write(f"# converted by `pytest-ft data convert` from {src.name}\n")
        out.write(dump({"suite": suite_name}))
        if common is not None:
            out.write(dump({"system": common}))
        out.write("cases:\n")
        for parsed in examples_strict(src, progress=progress, label=f"convert {src} (2/2)"):
            case, reason = _case_from_example(parsed.obj, common)
            if case is None:
                n_skipped += 1
                if len(skipped) < 100:
                    skipped.append({"line": parsed.lineno, "reason": reason})
                continue
            out.write(dump([{"id": f"line{parsed.lineno}", **case}]))
            written += 1
        if not written:
            first = f" (line {skipped[0]['line']}: {skipped[0]['reason']})" if skipped else ""
            raise DataError(f"{src}: no example could become a case{first}", exit_code=1)
    return ConvertReport(str(src), str(dst), "jsonl->suite", written, n_skipped, skipped)
