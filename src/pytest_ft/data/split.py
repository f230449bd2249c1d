"""``split``: train and validation files from one dataset, the same for the same seed.

Two passes over the input: the first counts the examples (and, with ``stratify``, their
labels) and picks the validation lines; the second copies each line, byte for byte, to its
file. Only a byte per example is held in between.
"""

from __future__ import annotations

import json
import math
import os
import random
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import tokens
from .errors import DataError
from .io import (DEFAULT_MAX_LINE_BYTES, AtomicWriter, check_outputs, default_output, examples_strict,
                 reread, stat_key)

# More different final answers than this are free text, not labels to stratify over.
MAX_STRATIFY_LABELS = 10_000


@dataclass
class SplitReport:
    file: str
    train_file: str
    val_file: str
    examples: int
    train: int
    val: int
    seed: int
    stratify: bool
    labels: int | None = None
    blank_lines_dropped: int = 0
    label_counts: list[dict[str, Any]] = field(default_factory=list)  # the 20 most common labels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _final_answer(obj: Mapping[str, Any]) -> str:
    """The label of an example: its final assistant answer (the preferred output for DPO)."""
    if "messages" in obj:
        msgs = obj["messages"]
    else:
        msgs = obj.get("preferred_output") or []
    for msg in reversed(msgs if isinstance(msgs, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "assistant":
            text = tokens.content_text(msg.get("content"))
            if not text and (msg.get("tool_calls") or msg.get("function_call")):
                text = json.dumps(msg.get("tool_calls") or msg.get("function_call"), sort_keys=True)
            return text.strip()
    return ""


def _check_val(val: float) -> None:
    if not val > 0 or (val >= 1 and val != int(val)) or math.isinf(val):
        raise DataError(f"--val must be a fraction between 0 and 1 or a whole number of examples, got {val}")


def _val_count(n: int, val: float) -> int:
    k = int(val) if val >= 1 else round(n * val)
    if n >= 2:
        k = max(1, min(k, n - 1))
    else:
        k = 0
    return k


def split(path: str | os.PathLike, val: float = 0.1, seed: int = 0, *, stratify: bool = False,
          out_train: str | os.PathLike | None = None, out_val: str | os.PathLike | None = None,
          force: bool = False, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
          progress: bool | None = None) -> SplitReport:
    """Split a JSONL dataset into train and validation files, deterministically for a seed.

    ``val`` is a fraction (0 < val < 1) or a number of examples (>= 1). With ``stratify`` each
    final assistant answer (label) keeps its share in both files. The input is never modified.
    """
    src = Path(path)
    train_path = Path(out_train) if out_train else default_output(src, ".train.jsonl")
    val_path = Path(out_val) if out_val else default_output(src, ".val.jsonl")
    _check_val(val)
    check_outputs([train_path, val_path], [src], force)
    if not src.is_file():
        raise DataError(f"{src}: no such file" if not src.exists() else f"{src}: not a regular file")
    before = stat_key(src)

    # pass 1: count examples (and their labels)
    labels: dict[str, int] = {}
    label_of = array("I")
    blank: list[int] = []
    n = 0
    for parsed in examples_strict(src, max_line_bytes=max_line_bytes, progress=progress,
                                  label=f"split {src} (1/2)", blank=blank):
        n += 1
        if stratify:
            obj = parsed.obj
            label = _final_answer(obj) if isinstance(obj, dict) else ""
            label_of.append(labels.setdefault(label, len(labels)))
            if len(labels) > MAX_STRATIFY_LABELS:
                raise DataError(f"--stratify: more than {MAX_STRATIFY_LABELS:,} different final answers by line "
                                f"{parsed.lineno}: the answers look like free text, not labels; split without "
                                f"--stratify")
    k = _val_count(n, val)
    rng = random.Random(seed)
    in_val = bytearray(n)
    label_counts: list[dict[str, Any]] = []
    if stratify and n:
        counts = Counter(label_of)
        exact = {lab: counts[lab] * k / n for lab in counts}
        quota = {lab: math.floor(q) for lab, q in exact.items()}
        rest = k - sum(quota.values())
        for lab in sorted(counts, key=lambda lab: (-(exact[lab] - quota[lab]), lab))[:rest]:
            quota[lab] += 1
        chosen = {lab: set(rng.sample(range(counts[lab]), quota[lab])) for lab in sorted(counts)}
        seen: Counter[int] = Counter()
        for i, lab in enumerate(label_of):
            if seen[lab] in chosen[lab]:
                in_val[i] = 1
            seen[lab] += 1
        names = {v: key for key, v in labels.items()}
        for lab, c in counts.most_common(20):
            label_counts.append({"label": names[lab], "examples": c, "val": quota[lab]})
    else:
        for i in rng.sample(range(n), k):
            in_val[i] = 1
    del label_of

    # pass 2: copy each line to its file, in the input's order
    lines = reread(src, before, command="split", doing="split", max_line_bytes=max_line_bytes, progress=progress)
    i = 0
    with AtomicWriter(train_path) as ftrain, AtomicWriter(val_path) as fval:
        for _, line_data in lines:
            if i >= n:  # pragma: no cover - the file grew between the passes
                raise DataError(f"{src} changed while it was being split; try again", exit_code=1)
            (fval if in_val[i] else ftrain).write(line_data + b"\n")
            i += 1
    return SplitReport(file=str(src), train_file=str(train_path), val_file=str(val_path), examples=n,
                       train=n - k, val=k, seed=seed, stratify=stratify,
                       labels=len(labels) if stratify else None, blank_lines_dropped=len(blank),
                       label_counts=label_counts)
