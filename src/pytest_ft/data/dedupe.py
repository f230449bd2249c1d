"""``dedupe``: the dataset again, without the examples it repeats.

Two passes over the input: the first hashes each example (:mod:`.duplicates`) and finds the
repeats; the second copies the lines that are kept, byte for byte.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .duplicates import Duplicates, canonical_hash, text_hash
from .errors import DataError
from .inputs import example_user_texts, input_key
from .io import (DEFAULT_MAX_LINE_BYTES, AtomicWriter, check_outputs, default_output, examples_strict,
                 reread, stat_key)


@dataclass
class DedupeReport:
    file: str
    output: str
    by: str
    examples: int
    kept: int
    removed: int
    blank_lines_dropped: int = 0
    duplicates: list[dict[str, int]] = field(default_factory=list)   # first 100: {line, duplicate_of}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dedupe(path: str | os.PathLike, out: str | os.PathLike | None = None, *, by: str = "example",
           force: bool = False, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
           progress: bool | None = None) -> DedupeReport:
    """Write the dataset without repeated examples (the first occurrence is kept).

    ``by="example"`` removes lines whose JSON is equal (key order and spacing ignored);
    ``by="input"`` removes lines whose user messages are equal once normalised.
    """
    if by not in ("example", "input"):
        raise DataError(f"--by must be 'example' or 'input', got {by!r}")
    src = Path(path)
    dst = Path(out) if out else default_output(src, ".dedup.jsonl")
    check_outputs([dst], [src], force)
    if not src.is_file():
        raise DataError(f"{src}: no such file" if not src.exists() else f"{src}: not a regular file")
    before = stat_key(src)

    # pass 1: a 64-bit hash per example; repeats found in bounded memory
    finder = Duplicates()
    blank: list[int] = []
    n = last_line = 0
    for parsed in examples_strict(src, max_line_bytes=max_line_bytes, progress=progress,
                                  label=f"dedupe {src} (1/2)", blank=blank):
        n += 1
        last_line = parsed.lineno
        if by == "example":
            finder.add(canonical_hash(parsed.obj), parsed.lineno)
        else:
            finder.add(text_hash(input_key(example_user_texts(parsed.obj))), parsed.lineno)
    drop = bytearray(last_line + 1)
    dups: list[dict[str, int]] = []
    removed = 0
    for line, first in finder:
        drop[line] = 1
        removed += 1
        if len(dups) < 100:
            dups.append({"line": line, "duplicate_of": first})
    del finder

    # pass 2: copy the lines that are kept, byte for byte
    lines = reread(src, before, command="dedupe", doing="deduplicated", max_line_bytes=max_line_bytes,
                   progress=progress)
    with AtomicWriter(dst) as f:
        for lineno, line_data in lines:
            if not (lineno <= last_line and drop[lineno]):
                f.write(line_data + b"\n")
    return DedupeReport(file=str(src), output=str(dst), by=by, examples=n, kept=n - removed, removed=removed,
                        blank_lines_dropped=len(blank), duplicates=dups)
