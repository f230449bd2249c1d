"""The report as a JSON file: the contract CI reads (see the README's Reports section)."""

from __future__ import annotations

import json
from pathlib import Path

from ...files import write_atomic


def write_json(report: dict, path: Path) -> None:
    write_atomic(path, json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
