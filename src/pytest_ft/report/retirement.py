"""When the models people fine-tune stop answering, so their answers are recorded before that.

A fine-tuned model (``ft:<base>:<org>:<suffix>:<id>``) retires with its base: once the base
shuts down, every model tuned from it fails, and with it the only exact record of how it
behaved. The built-in table gives each base's shutdown date with where it came from and when
it was checked; a retirement file (YAML or JSON, keyed by model id, each entry
``{retires: YYYY-MM-DD, source?, checked?, note?}``) overrides or extends it. The key
``ft:<base>`` dates every model tuned from ``<base>``; an exact id wins over it.

A model the table does not know (a local ``gemma-3-270m``, a vLLM adapter) has no date,
never a guessed one: a made-up date would either cry wolf or, worse, reassure.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from .formats import fmt_in_days
from .pricing import ALIASES as PRICED_ALIASES
from .pricing import fine_tuned_base

OPENAI_DEPRECATIONS = "https://developers.openai.com/api/docs/deprecations"
CHECKED = "2026-11-29"
WARN_DAYS = 90

_NOT_ON_PAGE = "date from {where}; not confirmed in the stored copy of the deprecations page"


@dataclass(frozen=True)
class Retirement:
    """The day ``model`` stops answering (its shutdown date), and where that date comes from."""

    model: str
    retires: datetime.date
    source: str = ""
    checked: str = ""
    note: str = ""

    def days_left(self, today: datetime.date) -> int:
        """Days from ``today`` to the shutdown: 0 on the day, negative once it is past."""
        return (self.retires - today).days


@dataclass(frozen=True)
class Cutoff:
    """A date after which something other than a model stops, such as creating fine-tuning jobs."""

    what: str
    on: datetime.date
    source: str = ""
    checked: str = ""
    note: str = ""


# Organisations still fine-tuning lose job creation on this day; those that never fine-tuned lost it on
# 2026-05-07, inactive ones (no fine-tuned inference for 60 days) on 2026-07-02.
FINE_TUNING_JOBS_END = Cutoff(
    what="creating fine-tuning jobs", on=datetime.date(2027, 1, 6), source=OPENAI_DEPRECATIONS,
    checked=CHECKED,
    note="the stored copy of the deprecations page shows the section 'Update to OpenAI's self-serve fine-tuning' "
         "(announced 2026-05-07) but not its dates; " + _NOT_ON_PAGE.format(
             where="the issue and reports quoting the page (https://aihola.com/article/openai-ends-fine-tuning-2027, "
                   "https://techscurrent.com/2026/07/openai-fine-tuning-cutoff-migration-clock/)"))

_SUMMARY = "https://dev.to/importstatic/every-openai-model-shutdown-date-until-january-2027-and-what-replaces-it-1dfk"
_GPT4O_41 = _NOT_ON_PAGE.format(
    where=f"the issue and summaries of the page's 2026-10-14 entry ({_SUMMARY}, "
          f"https://codersera.com/blog/gpt-4o-gpt-4-1-api-shutdown-migration-2026/)")
_LEGACY_2026_04_22 = ("confirmed in the stored archive of the page's '2026-04-22: Legacy GPT model snapshots' entry: "
                      "https://spybara.com/openai/api/history/docs/en/2026-04-22-0555..2026-04-23-0556/")
_GPT41_NANO = _NOT_ON_PAGE.format(
    where=f"summaries of the page's 2026-04-22 entry ({_SUMMARY}, "
          f"https://aihola.com/article/openai-ends-fine-tuning-2027); the issue gave none")
_GPT5 = (f"confirmed in the stored copy of the deprecations page ({OPENAI_DEPRECATIONS}?translationFallback=zh-Hans): "
         f"listed with its undated alias, notice given 2026-06-11")


def _r(model: str, retires: str, note: str) -> Retirement:
    return Retirement(model=model, retires=datetime.date.fromisoformat(retires), source=OPENAI_DEPRECATIONS,
                      checked=CHECKED, note=note)


# Shutdown dates of base models, by dated snapshot. A model's fine-tuned variants retire with it.
# Not here, for want of a date in the stored sources: gpt-3.5-turbo-1106, babbage-002, davinci-002.
BUILT_IN: dict[str, Retirement] = {r.model: r for r in (
    _r("gpt-4o-2024-08-06", "2027-01-14", _GPT4O_41),
    _r("gpt-4o-2024-11-20", "2027-01-14", _GPT4O_41),
    _r("gpt-4o-mini-2024-07-18", "2027-01-14", _GPT4O_41),
    _r("gpt-4.1-2025-04-14", "2027-01-14", _GPT4O_41),
    _r("gpt-4.1-mini-2025-04-14", "2027-01-14", _GPT4O_41),
    _r("gpt-4.1-nano-2025-04-14", "2026-10-23", _GPT41_NANO),
    _r("gpt-3.5-turbo-0125", "2026-10-23", _LEGACY_2026_04_22),
    _r("gpt-4-0613", "2026-10-23", _LEGACY_2026_04_22),
    _r("gpt-5-2025-08-07", "2026-12-11", _GPT5),
    _r("gpt-5-mini-2025-08-07", "2026-12-11", _GPT5),
    _r("gpt-5-nano-2025-08-07", "2026-12-11", _GPT5),
)}

# Undated names, resolved to the dated snapshot they point at.
ALIASES: dict[str, str] = {**PRICED_ALIASES, "gpt-5": "gpt-5-2025-08-07", "gpt-5-mini": "gpt-5-mini-2025-08-07",
                           "gpt-5-nano": "gpt-5-nano-2025-08-07"}

ENTRY_KEYS = ("retires", "source", "checked", "note")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RetirementFileError(ValueError):
    """A retirement file that cannot be used; the message names the file, the line when known, and the key."""


class RetirementCalendar:
    """Looks up when a model retires: the overrides, then the built-in table; ``ft:`` ids through their base."""

    def __init__(self, overrides: Mapping[str, Retirement] | None = None):
        self.overrides = dict(overrides or {})
        # The overrides by dated snapshot, so "gpt-4o-mini" or "ft:gpt-4o-mini" in a file also dates the
        # snapshot it points at; a key naming the snapshot itself wins.
        self._by_snapshot: dict[str, Retirement] = {}
        for key, entry in sorted(self.overrides.items(), key=lambda item: _snapshot_key(item[0]) != item[0]):
            self._by_snapshot.setdefault(_snapshot_key(key), entry)

    @classmethod
    def from_file(cls, path: str | Path | None) -> RetirementCalendar:
        return cls(load_retirement_file(path) if path else None)

    def lookup(self, model: str) -> Retirement | None:
        if model in self.overrides:
            return self.overrides[model]
        base = fine_tuned_base(model)
        if base is not None:
            found = self._by_snapshot.get(_snapshot_key(f"ft:{base}")) or self._base(base)
        else:
            found = self._base(model)
        return replace(found, model=model) if found else None

    def _base(self, model: str) -> Retirement | None:
        dated = _snapshot_key(model)
        return self._by_snapshot.get(dated) or BUILT_IN.get(dated)


def _snapshot_key(key: str) -> str:
    """``gpt-4o-mini`` → ``gpt-4o-mini-2024-07-18``, ``ft:gpt-4o-mini`` → ``ft:gpt-4o-mini-2024-07-18``;
    a full ``ft:`` id stays as it is."""
    base = fine_tuned_base(key)
    if base is None:
        return ALIASES.get(key, key)
    return f"ft:{ALIASES.get(base, base)}" if key == f"ft:{base}" else key


def warning(retirement: Retirement, today: datetime.date) -> str | None:
    """What to do about a model that retires within :data:`WARN_DAYS` (or has retired); None otherwise."""
    days = retirement.days_left(today)
    if days > WARN_DAYS:
        return None
    model, on = retirement.model, retirement.retires.isoformat()
    if days < 0:
        return (f"{model} retired on {on} ({-days} day{'s' if days != -1 else ''} ago): it no longer answers; "
                f"gate a replacement against the answers recorded before (pytest-ft freeze)")
    return (f"{model} retires on {on} ({fmt_in_days(days)}): record its answers now (pytest-ft freeze) "
            f"and gate a replacement against them")


def load_retirement_file(path: str | Path) -> dict[str, Retirement]:
    """Read ``{model: {retires: YYYY-MM-DD, source?, checked?, note?}}`` from YAML or JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RetirementFileError(f"{path}: cannot read retirement file: {exc}") from exc
    pairs = _json_pairs(path, text) if path.suffix.lower() == ".json" else _yaml_pairs(path, text)
    out: dict[str, Retirement] = {}
    lines: dict[str, int | None] = {}
    for key, value, line in pairs:
        model = str(key)
        if model in lines:
            first = f" (first at line {lines[model]})" if lines[model] else ""
            raise RetirementFileError(f"{_where(path, line)}: {model}: duplicate key{first}")
        lines[model] = line
        out[model] = _entry(path, model, value, line)
    return out


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


_EXPECTED = "expected a mapping of model id to {retires: YYYY-MM-DD, source?, checked?, note?}"


class _DuplicateKey(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _json_pairs(path: Path, text: str) -> Iterator[tuple[Any, Any, int | None]]:
    """Each top-level entry; JSON gives no line per key, only for a syntax error."""
    try:
        data = json.loads(text, object_pairs_hook=_unique)
    except _DuplicateKey as exc:
        raise RetirementFileError(f"{path}: {exc.args[0]}: duplicate key") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise RetirementFileError(f"{_where(path, line)}: not valid JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(data, dict):
        raise RetirementFileError(f"{path}: {_EXPECTED}")
    for key, value in data.items():
        yield key, value, None


def _yaml_pairs(path: Path, text: str) -> Iterator[tuple[Any, Any, int | None]]:
    """Each top-level entry with its line; values are built one by one so a bad one is reported where it is."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            raise RetirementFileError(f"{_where(path, mark.line + 1 if mark else None)}: not valid YAML: "
                                      f"{problem}") from None
        if not isinstance(root, yaml.MappingNode):
            raise RetirementFileError(f"{_where(path, root.start_mark.line + 1 if root else None)}: {_EXPECTED}")
        for key_node, value_node in root.value:
            key = _construct(loader, path, key_node, "?")
            line = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                value = {}
                for field_node, item_node in value_node.value:
                    field = _construct(loader, path, field_node, key)
                    if field in value:
                        raise RetirementFileError(f"{_where(path, field_node.start_mark.line + 1)}: {key}: "
                                                  f"duplicate key {field!r}")
                    value[field] = _construct(loader, path, item_node, f"{key}: {field}")
            else:
                value = _construct(loader, path, value_node, key)
            yield key, value, line
    finally:
        loader.dispose()


def _construct(loader: yaml.SafeLoader, path: Path, node: yaml.Node, where: str) -> Any:
    """The node's value; YAML's own errors (an impossible date such as 2027-02-30) carry the node's line."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raw = node.value if isinstance(node, yaml.ScalarNode) else node.tag
        raise RetirementFileError(f"{_where(path, node.start_mark.line + 1)}: {where}: cannot read {raw!r} "
                                  f"({exc})") from None


def _entry(path: Path, model: str, entry: Any, line: int | None) -> Retirement:
    where = f"{_where(path, line)}: {model}"
    if not isinstance(entry, dict):
        raise RetirementFileError(f"{where}: expected a mapping with 'retires' (YYYY-MM-DD), "
                                  f"got {_describe(entry)}")
    unknown = sorted(str(k) for k in entry if k not in ENTRY_KEYS)
    if unknown:
        raise RetirementFileError(f"{where}: unknown key {unknown[0]!r} (expected {', '.join(ENTRY_KEYS)})")
    if entry.get("retires") is None:
        raise RetirementFileError(f"{where}: missing 'retires' (YYYY-MM-DD)")
    return Retirement(model=model, retires=_date(where, entry["retires"]), source=str(entry.get("source") or path),
                      checked=str(entry.get("checked") or ""), note=str(entry.get("note") or ""))


def _date(where: str, value: Any) -> datetime.date:
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise RetirementFileError(f"{where}: 'retires' must be a date YYYY-MM-DD, got {_describe(value)}")


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return "nothing" if value is None else repr(value if not isinstance(value, datetime.date) else str(value))
