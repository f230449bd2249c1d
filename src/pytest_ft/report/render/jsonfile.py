"""The report as a JSON file: the contract CI reads (see the README's Reports section)."""

from __future__ import annotations

import json
from pathlib import Path

from ...files import write_atomic

# Indented JSON reads well, but the json module indents in pure Python (seconds for a 100,000-case
# run); a report of more cases than this is written compact, by the C encoder: the same data.
INDENT_UP_TO_CASES = 5_000


def write_json(report: dict, path: Path) -> None:
    cases = sum(len(suite.get("cases") or ()) for suite in report.get("suites") or ())
    indent = 2 if cases <= INDENT_UP_TO_CASES else None
    write_atomic(path, json.dumps(report, indent=indent, ensure_ascii=False, default=str) + "\n")
