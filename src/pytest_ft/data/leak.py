"""``check_leak``: eval cases the model would have seen in training.

A model fine-tuned on its own test questions scores falsely high on them. Inputs are
compared normalised (:mod:`.inputs`); the training file is streamed and only the eval cases'
keys are held.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import DataError
from .inputs import example_user_texts, input_key, normalize_input, user_texts
from .io import DEFAULT_MAX_LINE_BYTES, SUITE_SUFFIXES, examples_strict, read_suite


@dataclass
class Leak:
    suite: str
    case: str
    input: str                 # the eval case's user input (normalised)
    train_lines: list[int]     # the first training lines holding it
    train_matches: int


@dataclass
class LeakReport:
    train: str
    suites: list[str]
    cases: int
    train_examples: int
    leaks: list[Leak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.leaks

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["leaked_cases"] = len(self.leaks)
        return d


def _eval_cases(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(case id, user message texts) of each case of a suite file or of a JSONL file."""
    if path.name.endswith(SUITE_SUFFIXES):
        suite = read_suite(path)
        for case in suite.cases:
            yield str(case.id), user_texts(case.messages)
        return
    for parsed in examples_strict(path, label=f"check-leak {path}"):
        yield f"line{parsed.lineno}", example_user_texts(parsed.obj)


def check_leak(train: str | os.PathLike, suites: Sequence[str | os.PathLike], *,
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, progress: bool | None = None) -> LeakReport:
    """Eval cases whose input (normalised user messages) also appears in the training data.

    A case leaks when its user messages, normalised (:func:`normalize_input`), equal those of
    a training example, or when it has a single user message equal to any one user message of
    a training example. The training file is streamed; only the eval cases are held.
    """
    train_path = Path(train)
    wanted: dict[str, list[tuple[int, str, str]]] = {}
    n_cases = 0
    for s in suites:
        sp = Path(s)
        if not sp.exists():
            raise DataError(f"{sp}: no such file")
        for case_id, texts in _eval_cases(sp):
            key = input_key(texts)
            if key:
                wanted.setdefault(key, []).append((n_cases, str(sp), case_id))
            n_cases += 1
    hits: dict[int, Leak] = {}  # by the case's position among all eval cases
    n_train = 0
    for parsed in examples_strict(train_path, max_line_bytes=max_line_bytes, progress=progress,
                                  label=f"check-leak {train_path}"):
        n_train += 1
        texts = example_user_texts(parsed.obj)
        keys = {input_key(texts)}
        if len(texts) > 1:
            keys.update(normalize_input(t) for t in texts)
        for key in keys:
            for ordinal, suite_file, case_id in wanted.get(key, ()):
                leak = hits.get(ordinal)
                if leak is None:
                    leak = hits[ordinal] = Leak(suite_file, case_id, key, [], 0)
                leak.train_matches += 1
                if len(leak.train_lines) < 5:
                    leak.train_lines.append(parsed.lineno)
    return LeakReport(train=str(train_path), suites=[str(s) for s in suites], cases=n_cases,
                      train_examples=n_train, leaks=[hits[i] for i in sorted(hits)])
