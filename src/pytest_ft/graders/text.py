"""Graders that compare the answer's text: exact, choices, contains, not_contains, regex.

The case's ``expected`` is a string, a number, or a list meaning "any of these"; it is
normalised once per case (``prepare``), so grading an answer is a set lookup or a scan.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Literal

from .base import NO_EXPECTED, Grade, GraderError, SyncGrader, boolean_expected, quote
from .registry import grader


def expected_texts(expected: Any) -> tuple[str, ...]:
    """The case's expected answer(s): a string, a number, or a list meaning "any of these"."""
    if expected is None:
        raise GraderError(NO_EXPECTED, "expected")
    if isinstance(expected, (list, tuple)):
        if not expected:
            raise GraderError("expected is an empty list", "expected")
        return tuple(_text(v) for v in expected)
    return (_text(expected),)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise boolean_expected(value)
    if isinstance(value, (int, float)):
        return str(value)
    raise GraderError(f"expected must be a string or a list of strings, got {type(value).__name__}", "expected")


def show(texts: Sequence[str]) -> str:
    """The expected text(s) for a reason line: ``'a'`` or ``one of 'a', 'b'``."""
    if len(texts) == 1:
        return quote(texts[0])
    shown = ", ".join(quote(t, 40) for t in texts[:5])
    return f"one of {shown}" + (f" (+{len(texts) - 5} more)" if len(texts) > 5 else "")


_WS = re.compile(r"\s+")
_TRAILING_PUNCT = ".,;:!?…。、，；：！？"


def _normaliser(*, ignore_case: bool, strip: bool, collapse_whitespace: bool,
                ignore_trailing_punctuation: bool) -> Callable[[str], str]:
    def normalise(text: str) -> str:
        if collapse_whitespace:
            text = " ".join(text.split()) if strip else _WS.sub(" ", text)
        elif strip:
            text = text.strip()
        if ignore_trailing_punctuation:
            text = text.rstrip(_TRAILING_PUNCT)
            if strip:
                text = text.rstrip()
        return text.casefold() if ignore_case else text

    return normalise


_PASS = Grade(True, 1.0, "exact match")


@grader("exact")
def exact(*, ignore_case: bool = False, strip: bool = True, collapse_whitespace: bool = True,
          ignore_trailing_punctuation: bool = False) -> SyncGrader:
    """The answer equals ``expected`` (or one of them, if ``expected`` is a list), after normalisation.

    Options: ``ignore_case`` (false), ``strip`` surrounding whitespace (true),
    ``collapse_whitespace`` inside to single spaces (true), ``ignore_trailing_punctuation``
    (false; drops trailing ``. , ; : ! ? …`` and their CJK forms, so "Paris." equals "Paris").
    Whitespace is normalised by default because a model's trailing newline is never the point
    of a test; case and punctuation are not, because they often are.
    """
    norm = _normaliser(ignore_case=ignore_case, strip=strip, collapse_whitespace=collapse_whitespace,
                       ignore_trailing_punctuation=ignore_trailing_punctuation)

    def prepare(expected: Any) -> tuple[tuple[str, ...], frozenset[str]]:
        texts = expected_texts(expected)
        return texts, frozenset(norm(t) for t in texts)

    def check(output: str, prepared: tuple[tuple[str, ...], frozenset[str]]) -> Grade:
        texts, accepted = prepared
        if norm(output) in accepted:
            return _PASS
        return Grade(False, 0.0, f"expected {show(texts)}, got {quote(output.strip() if strip else output)}")

    return SyncGrader("exact", check, prepare)


@grader("choices")
def choices(*, labels: list[str], ignore_case: bool = True, strip: bool = True, collapse_whitespace: bool = True,
            ignore_trailing_punctuation: bool = True) -> SyncGrader:
    """A classification answer: it must be one of ``labels``, and then pass iff it is the expected one.

    Unlike ``exact``, an answer outside the label set is reported as such ("invalid label"),
    which tells a format failure from a wrong class. Options: ``labels`` (required, non-empty
    list of strings), then ``exact``'s normalisation options, with ``ignore_case`` and
    ``ignore_trailing_punctuation`` on by default: "positivo." is the label POSITIVO.
    ``expected`` must be one of the labels (or a list of them).
    """
    if not labels:
        raise GraderError("labels must list at least one label", "labels")
    norm = _normaliser(ignore_case=ignore_case, strip=strip, collapse_whitespace=collapse_whitespace,
                       ignore_trailing_punctuation=ignore_trailing_punctuation)
    canonical: dict[str, str] = {}
    for i, label in enumerate(labels):
        key = norm(label)
        if not key:
            raise GraderError(f"labels[{i}] is empty after normalisation", "labels")
        if key in canonical:
            raise GraderError(f"labels {canonical[key]!r} and {label!r} are the same after normalisation", "labels")
        canonical[key] = label
    listing = ", ".join(labels)

    def prepare(expected: Any) -> tuple[tuple[str, ...], frozenset[str]]:
        wanted = []
        for text in expected_texts(expected):
            label = canonical.get(norm(text))
            if label is None:
                raise GraderError(f"expected {text!r} is not one of the labels ({listing})", "expected")
            wanted.append(label)
        return tuple(wanted), frozenset(wanted)

    def check(output: str, prepared: tuple[tuple[str, ...], frozenset[str]]) -> Grade:
        wanted, accepted = prepared
        label = canonical.get(norm(output))
        if label is None:
            return Grade(False, 0.0, f"invalid label {quote(output.strip())} (not one of {listing})")
        if label in accepted:
            return Grade(True, 1.0, f"label {label!r}")
        return Grade(False, 0.0, f"expected {show(wanted)}, got {label!r}")

    return SyncGrader("choices", check, prepare)


@grader("contains")
def contains(*, values: str | list[str] | None = None, mode: Literal["all", "any"] = "all",
             ignore_case: bool = False) -> SyncGrader:
    """The answer contains the given strings.

    Options: ``values`` (a string or list; default: the case's ``expected``, itself a string
    or list), ``mode`` ``all`` (default: every value must appear; score = the fraction that
    do) or ``any`` (one is enough), ``ignore_case`` (false).
    """
    return _substrings("contains", values, mode, ignore_case, present=True)


@grader("not_contains")
def not_contains(*, values: str | list[str] | None = None, mode: Literal["all", "any"] = "all",
                 ignore_case: bool = False) -> SyncGrader:
    """The answer does not contain the given strings (a leaked system prompt, a banned word...).

    Same options as ``contains``; ``mode`` says how many values must be *absent*: ``all``
    (default: none may appear) or ``any`` (at least one must be missing).
    """
    return _substrings("not_contains", values, mode, ignore_case, present=False)


def _substrings(name: str, values: str | list[str] | None, mode: str, ignore_case: bool,
                present: bool) -> SyncGrader:
    fold = str.casefold if ignore_case else (lambda s: s)

    def needles(raw: tuple[str, ...], key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        for i, value in enumerate(raw):
            if not value:
                raise GraderError(f"{key}[{i}] is empty: every answer contains the empty string", key)
        return raw, tuple(fold(v) for v in raw)

    fixed = None
    if values is not None:
        raw = (values,) if isinstance(values, str) else tuple(values)
        if not raw:
            raise GraderError("values must list at least one string", "values")
        fixed = needles(raw, "values")

    def prepare(expected: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return fixed if fixed is not None else needles(expected_texts(expected), "expected")

    def check(output: str, prepared: tuple[tuple[str, ...], tuple[str, ...]]) -> Grade:
        raw, folded = prepared
        haystack = fold(output)
        hits = [(v in haystack) == present for v in folded]
        good = sum(hits)
        passed = good == len(hits) if mode == "all" else good > 0
        if mode == "all":
            score = good / len(hits)
        else:
            score = 1.0 if passed else 0.0
        if passed:
            return Grade(True, score, f"{'found' if present else 'absent'}: {show(raw)}" if len(raw) == 1
                         else f"{good} of {len(raw)} {'found' if present else 'absent'}")
        bad = ", ".join(quote(v, 40) for v, ok in zip(raw, hits) if not ok)
        if present:
            what = f"missing {bad}" if mode == "all" else f"none of {bad}"
        else:
            what = f"found forbidden {bad}" if mode == "all" else f"found all of {bad}"
        return Grade(False, score, f"{what} in {quote(output.strip())}")

    return SyncGrader(name, check, prepare)


@lru_cache(maxsize=4096)
def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


@grader("regex")
def regex(*, pattern: str | None = None, ignore_case: bool = False, multiline: bool = False, dotall: bool = False,
          match: Literal["search", "match", "fullmatch"] = "search", strip: bool = True) -> SyncGrader:
    """The answer matches a regular expression (Python ``re`` syntax).

    Options: ``pattern`` (default: the case's ``expected`` is the pattern, so one suite-wide
    ``grader: regex`` serves cases with different patterns), ``ignore_case``, ``multiline``
    (``^``/``$`` at each line), ``dotall`` (``.`` matches newlines), all false; ``match``:
    ``search`` anywhere (default), ``match`` at the start, ``fullmatch`` the whole answer;
    ``strip`` surrounding whitespace first (true), so ``fullmatch`` forgives a trailing newline.
    """
    flags = (re.IGNORECASE if ignore_case else 0) | (re.MULTILINE if multiline else 0) | (re.DOTALL if dotall else 0)
    where = {"search": "", "match": " at the start of", "fullmatch": " as the whole of"}[match]

    def compiled(source: str, key: str) -> re.Pattern[str]:
        try:
            return _compile(source, flags)
        except re.error as exc:
            raise GraderError(f"invalid regex {source!r}: {exc}", key) from None

    fixed = None if pattern is None else compiled(pattern, "pattern")

    def prepare(expected: Any) -> re.Pattern[str]:
        if fixed is not None:
            return fixed
        if expected is None:
            raise GraderError("regex needs a 'pattern' option or the pattern as the case's expected", "expected")
        if not isinstance(expected, str):
            raise GraderError(f"expected must be a regex string, got {type(expected).__name__}", "expected")
        return compiled(expected, "expected")

    def check(output: str, compiled_pattern: re.Pattern[str]) -> Grade:
        text = output.strip() if strip else output
        found = getattr(compiled_pattern, match)(text)
        if found:
            return Grade(True, 1.0, f"matched {quote(found.group(0), 40)}")
        return Grade(False, 0.0, f"no match for /{compiled_pattern.pattern}/{where} {quote(text)}")

    return SyncGrader("regex", check, prepare)
