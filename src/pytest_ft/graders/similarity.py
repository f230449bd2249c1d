"""The ``similarity`` grader, and the text distances it scores with (token F1, ROUGE-L, edit)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

from .base import Grade, SyncGrader, quote, unit
from .registry import grader
from .text import expected_texts


def token_f1(got: Sequence[str], ref: Sequence[str]) -> float:
    """SQuAD-style F1 of the two bags of tokens."""
    if not got or not ref:
        return float(not got and not ref)
    return _f1(sum((Counter(got) & Counter(ref)).values()), len(got), len(ref))


def rouge_l(got: Sequence[str], ref: Sequence[str]) -> float:
    """ROUGE-L F1: the longest common subsequence of tokens, so word order counts."""
    if not got or not ref:
        return float(not got and not ref)
    return _f1(lcs_length(got, ref), len(got), len(ref))


def edit_similarity(got: str, ref: str) -> float:
    """1 - Levenshtein distance / length of the longer string."""
    if not got and not ref:
        return 1.0
    return 1.0 - levenshtein(got, ref) / max(len(got), len(ref))


def _f1(common: int, n_got: int, n_ref: int) -> float:
    if common == 0:
        return 0.0
    precision, recall = common / n_got, common / n_ref
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix / Hyyrö).

    One Python big-int operation per item of ``b`` instead of a ``len(a) * len(b)`` table in
    interpreted code: long answers stay in the microseconds-to-milliseconds range.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[Any, int] = {}
    for i, item in enumerate(a):
        masks[item] = masks.get(item, 0) | (1 << i)
    full = (1 << len(a)) - 1
    row = full
    for item in b:
        match = masks.get(item)
        if match:
            u = row & match
            row = ((row + u) | (row - u)) & full
    return len(a) - row.bit_count()


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute), bit-parallel (Myers / Hyyrö), for the reason above."""
    if a == b:
        return 0
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    a, b = a[start:], b[start:]
    while a and b and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(a):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    full = (1 << len(a)) - 1
    last = 1 << (len(a) - 1)
    vp, vn, distance = full, 0, len(a)
    for ch in b:
        eq = peq.get(ch, 0)
        d0 = (((eq & vp) + vp) ^ vp) | eq | vn
        hp = vn | ~(d0 | vp)
        hn = d0 & vp
        if hp & last:
            distance += 1
        elif hn & last:
            distance -= 1
        x = ((hp << 1) | 1) & full
        vn = x & d0
        vp = ((hn << 1) & full) | (~(d0 | x) & full)
    return distance


_WORD = re.compile(r"\w+")
_METRICS: dict[str, Callable[[Any, Any], float]] = {"token_f1": token_f1, "rouge_l": rouge_l, "edit": edit_similarity}


@grader("similarity")
def similarity(*, metric: Literal["token_f1", "rouge_l", "edit"] = "token_f1", threshold: float = 0.8,
               ignore_case: bool = True) -> SyncGrader:
    """The answer is close enough to ``expected`` (or the closest of a list): score >= ``threshold``.

    For free-text answers where exact wording varies. Options: ``metric``: ``token_f1``
    (default; word overlap, order ignored), ``rouge_l`` (longest common word subsequence,
    order counts) or ``edit`` (character Levenshtein similarity, for short strings, codes,
    typos); ``threshold`` (0.8); ``ignore_case`` (true). Tokens are runs of letters and
    digits, so punctuation never counts; ``edit`` compares whole strings with whitespace
    collapsed. The score is the metric itself.
    """
    unit("threshold", threshold)
    measure = _METRICS[metric]

    def units(text: str) -> Any:
        text = " ".join(text.split())
        if ignore_case:
            text = text.casefold()
        return text if metric == "edit" else _WORD.findall(text)

    def prepare(expected: Any) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        texts = expected_texts(expected)
        return texts, tuple(units(t) for t in texts)

    def check(output: str, prepared: tuple[tuple[str, ...], tuple[Any, ...]]) -> Grade:
        texts, refs = prepared
        got = units(output)
        score, best = max((measure(got, ref), i) for i, ref in enumerate(refs))
        if score >= threshold - 1e-12:
            return Grade(True, score, f"{metric} {score:.2f} >= {threshold:g}")
        return Grade(False, score, f"{metric} {score:.2f} < {threshold:g}: expected {quote(texts[best])}, "
                                   f"got {quote(output.strip())}")

    return SyncGrader("similarity", check, prepare)
