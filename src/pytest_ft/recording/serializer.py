"""The cassettes' YAML: vcrpy's format, read and written fast, readable in code review.

Writing: :func:`dump_cassette` writes the bytes ``yaml.dump`` with vcrpy's dumper would, pretty
JSON bodies as literal blocks, several times faster. Reading: :func:`load_cassette` reads what
the writer writes — block mappings and sequences, plain or quoted words, literal blocks — into
what vcrpy's safe loader makes of it, and hands anything else (a comment, a flow collection, a
tab, a hand edit it is not sure of) to that loader. A replay reads one cassette per case, and
PyYAML's loader, even on libyaml, builds a node and resolves a tag for every scalar: most of a
replay's time.
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from typing import Any

import yaml
from vcr.serializers import yamlserializer
from yaml.nodes import MappingNode, ScalarNode, SequenceNode


class readable_yaml:
    """A vcrpy serializer: vcrpy's YAML format and loader, with bodies readable in code review."""

    @staticmethod
    def deserialize(cassette_string: str) -> dict:
        try:
            return load_cassette(cassette_string)
        except _NotPlain:
            return yamlserializer.deserialize(cassette_string)

    @staticmethod
    def serialize(cassette_dict: dict) -> str:
        return dump_cassette(cassette_dict)


class _ReadableDumper(yamlserializer._CassetteDumper):
    """vcrpy's safe cassette dumper, writing multi-line strings (the pretty JSON bodies) as blocks."""


def _represent_str(dumper: yaml.Dumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ReadableDumper.add_representer(str, _represent_str)


_DUMP_OPTIONS = {"default_flow_style": False, "sort_keys": False, "allow_unicode": True, "width": 120}


def _dump_slowly(data: Any) -> str:
    """The reference: what a cassette's text is, for any data vcrpy's dumper accepts."""
    return yaml.dump(data, Dumper=_ReadableDumper, **_DUMP_OPTIONS)


_STR, _INT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int"
_NULL, _BOOL = "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _NotPlain(Exception):
    """Data the fast writer does not write (bytes, floats, an object met twice…), or text the
    fast reader does not read: PyYAML's turn."""


def _node(value: Any, seen: set[int]) -> yaml.Node:
    """The node vcrpy's representer (with :func:`_represent_str`) makes of ``value``.

    PyYAML's representer dispatches on each value's type through several Python calls and
    tracks every object for aliases; a cassette holds only dicts, lists, strings, ints and
    None, so the nodes are built here directly. A dict or list met twice (which the
    representer writes as an alias) and any other type fall back to the representer.
    """
    kind = type(value)
    if kind is str:
        return ScalarNode(_STR, value, style="|" if "\n" in value else None)
    if kind is dict:
        if id(value) in seen:
            raise _NotPlain
        seen.add(id(value))
        return MappingNode(_MAP, [(_node(k, seen), _node(v, seen)) for k, v in value.items()], flow_style=False)
    if kind is list:
        if id(value) in seen:
            raise _NotPlain
        seen.add(id(value))
        return SequenceNode(_SEQ, [_node(v, seen) for v in value], flow_style=False)
    if kind is int:
        return ScalarNode(_INT, str(value))
    if value is None:
        return ScalarNode(_NULL, "null")
    if kind is bool:
        return ScalarNode(_BOOL, "true" if value else "false")
    raise _NotPlain


def dump_cassette(data: Any) -> str:
    """A cassette's YAML text: byte for byte :func:`_dump_slowly`'s, several times faster.

    A cassette as the recorder writes it (block mappings, short plain strings, pretty JSON
    bodies as literal blocks) is written by :func:`_emit_mapping`, which writes what libyaml
    would and refuses everything else; that goes through nodes built by :func:`_node` and
    libyaml's emitter (vcrpy's dumper is ``yaml.CDumper`` where libyaml is present), and what
    those do not cover through PyYAML's representer. vcrpy's loader reads all three the same.
    """
    try:
        out: list[str] = []
        _emit_mapping(data, "", out, None)
        return "".join(out)
    except _NotPlain:
        pass
    try:
        node = _node(data, set())
    except _NotPlain:
        return _dump_slowly(data)
    stream = io.StringIO()
    dumper = _ReadableDumper(stream, **_DUMP_OPTIONS)
    try:
        dumper.open()
        dumper.serialize(node)
        dumper.close()
    finally:
        dumper.dispose()
    return stream.getvalue()


# What _emit_mapping writes itself. Plain: a word of safe characters (":" only inside a word,
# never before a space; no quote, "#", "," or bracket), words apart by single spaces, starting
# where no YAML indicator can (libyaml then chooses plain style, in a block context). Block:
# the characters libyaml prints as they are (its IS_PRINTABLE: no tab, no C1 control, no
# astral plane, no BOM; "\n" the only line break), no space before a line break or at the end,
# no space or break first, no break last: libyaml then writes a literal block with "|-".
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_/(][-A-Za-z0-9_./()=+@~;]*(?::[-A-Za-z0-9_./()=+@~;]+)*"
                         r"(?: [-A-Za-z0-9_./()=+@~;]+(?::[-A-Za-z0-9_./()=+@~;]+)*)*")
_NOT_BLOCK_TEXT = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd]")
_NOT_BLOCK_ASCII = re.compile("[^\n\x20-\x7e]")
_IMPLICIT = _ReadableDumper.yaml_implicit_resolvers
_WIDTH = _DUMP_OPTIONS["width"]
_KEYS: set[str] = set()  # keys found plain: a recording holds the same few again and again
_PLAIN_SEEN: dict[str, str] = {}  # short strings (methods, header values, URLs) and how they are written


def _block_text(value: str) -> bool:
    if value[0] in " \n" or value[-1] in " \n" or " \n" in value:
        return False
    return not (_NOT_BLOCK_ASCII if value.isascii() else _NOT_BLOCK_TEXT).search(value)


def _plain_key(key: Any) -> bool:
    if key in _KEYS:
        return True
    if type(key) is not str or not key or " " in key or len(key) > 100 or not _PLAIN_TEXT.fullmatch(key) \
            or any(pattern.match(key) for _, pattern in _IMPLICIT.get(key[0], ())):
        return False
    if len(_KEYS) < 1000:
        _KEYS.add(key)
    return True


def _emit_scalar(value: Any, child: str, column: int) -> str:
    """`` value`` and its line end as libyaml writes it after ``key:`` or ``-`` ending at
    ``column``; ``child`` is the indentation of a block's lines. Raises :class:`_NotPlain`
    for anything whose style it cannot be sure of."""
    kind = type(value)
    if kind is str:
        if "\n" in value:
            if not _block_text(value):
                raise _NotPlain
            if "\n\n" in value:  # an empty line is written empty, not indented
                return " |-\n" + "\n".join([child + line if line else "" for line in value.split("\n")]) + "\n"
            return " |-\n" + child + value.replace("\n", "\n" + child) + "\n"
        if not value:
            return " ''\n"
        if " " in value and column + 3 + len(value) > _WIDTH:
            raise _NotPlain  # beyond the width libyaml would fold it at a space
        written = _PLAIN_SEEN.get(value)
        if written is None:
            if not _PLAIN_TEXT.fullmatch(value):
                raise _NotPlain
            written = f" {value}\n"
            for _, pattern in _IMPLICIT.get(value[0], ()):
                if pattern.match(value):  # it would read back as a number, a bool, a date…: quoted
                    written = f" '{value}'\n"
                    break
            if len(value) < 200 and len(_PLAIN_SEEN) < 10000:
                _PLAIN_SEEN[value] = written
        return written
    if kind is int:
        return f" {value}\n"
    if value is None:
        return " null\n"
    if kind is bool:
        return " true\n" if value else " false\n"
    raise _NotPlain


def _emit_mapping(mapping: Any, indent: str, out: list[str], first: str | None) -> None:
    """A non-empty block mapping with its keys at ``indent``; ``first`` starts the first line
    instead (``"- "`` for a mapping that is an item of a sequence)."""
    if type(mapping) is not dict or not mapping:
        raise _NotPlain
    for key, value in mapping.items():
        if not _plain_key(key):
            raise _NotPlain
        out.append(f"{indent if first is None else first}{key}:")
        first = None
        kind = type(value)
        if kind is dict:
            if not value:
                out.append(" {}\n")
            else:
                out.append("\n")
                _emit_mapping(value, indent + "  ", out, None)
        elif kind is list:
            if not value:
                out.append(" []\n")
                continue
            out.append("\n")
            for item in value:  # a sequence in a mapping is not indented
                if type(item) is dict:
                    _emit_mapping(item, indent + "  ", out, indent + "- ")
                elif type(item) is list:
                    raise _NotPlain
                else:
                    out.append(f"{indent}-{_emit_scalar(item, indent + '  ', len(indent) + 1)}")
        else:
            out.append(_emit_scalar(value, indent + "  ", len(indent) + len(key) + 1))


# -- reading -----------------------------------------------------------------------------------

_DECIMAL = re.compile(r"0|-?[1-9][0-9]*")  # how _emit_scalar writes an int (YAML reads "007" as octal)
_WORDS = {"null": None, "true": True, "false": False, "''": ""}


def load_cassette(text: str) -> Any:
    """What ``yamlserializer.deserialize(text)`` returns, for text as :func:`_emit_mapping`
    writes it; raises :class:`_NotPlain` for any other text (the caller then asks PyYAML).

    Every form it takes is one the writer produces and YAML reads one way only: ``key:`` then
    a word (unless YAML would read it as a number, a bool, a date…), ``'word'``, ``''``, an
    int, ``null``, ``true``/``false``, ``{}``, ``[]``, a literal block ``|-`` indented two
    spaces, or on the next lines a mapping indented two spaces or a sequence at the key's
    indentation. Characters libyaml would not read as they are (tabs, carriage returns,
    controls, the astral plane) are left to PyYAML, which knows what to make of them.
    """
    if not text.endswith("\n") or not (text.replace("\n", "").isprintable() if text.isascii()
                                       else _NOT_BLOCK_TEXT.search(text) is None):
        raise _NotPlain
    value, end = _read_mapping(text, 0, "", "")
    if end != len(text):
        raise _NotPlain
    return value


def _read_mapping(text: str, pos: int, indent: str, prefix: str) -> tuple[dict, int]:
    """The mapping whose keys start lines at ``indent`` from ``pos`` (its first line starts with
    ``prefix`` instead: ``- `` for an item of a sequence), and where the text after it starts."""
    mapping: dict[str, Any] = {}
    n = len(text)
    while pos < n and text.startswith(prefix, pos):
        start = pos + len(prefix)
        end = text.index("\n", start)
        prefix = indent
        colon = text.find(": ", start, end)
        if colon >= 0:
            key = text[start:colon]
            if not _plain_key(key):
                raise _NotPlain
            mapping[key], pos = _read_scalar(text, colon + 1, end, indent + "  ")
            continue
        key = text[start:end - 1]
        if text[end - 1] != ":" or not _plain_key(key):
            raise _NotPlain
        pos = end + 1
        if text.startswith(indent + "- ", pos):
            mapping[key], pos = _read_sequence(text, pos, indent)
        elif text.startswith(indent + "  ", pos):
            mapping[key], pos = _read_mapping(text, pos, indent + "  ", indent + "  ")
        else:
            raise _NotPlain
    if not mapping:
        raise _NotPlain
    return mapping, pos


def _read_sequence(text: str, pos: int, indent: str) -> tuple[list, int]:
    items: list[Any] = []
    dash, child = indent + "- ", indent + "  "
    while text.startswith(dash, pos):
        start = pos + len(dash)
        end = text.index("\n", start)
        if text[start] != "'" and not text.startswith("|-\n", start) and (
                text.find(": ", start, end) >= 0 or text[end - 1] == ":"):
            item, pos = _read_mapping(text, pos, child, dash)
        else:
            item, pos = _read_scalar(text, start - 1, end, child)
        items.append(item)
    return items, pos


def _read_scalar(text: str, pos: int, end: int, child: str) -> tuple[Any, int]:
    """The value written from ``pos`` (the space after ``key:`` or ``-``) to ``end`` (its line's
    end; a block's lines follow, indented ``child``), and where the text after it starts."""
    value = text[pos + 1:end]
    if not value or text[pos] != " ":
        raise _NotPlain
    if value == "|-":
        return _read_block(text, end + 1, child)
    if value in _WORDS:
        return _WORDS[value], end + 1
    if value == "{}" or value == "[]":
        return ({} if value == "{}" else []), end + 1
    if _DECIMAL.fullmatch(value):
        return int(value), end + 1
    quoted = value[0] == "'"
    word = value[1:-1] if quoted else value
    if not _PLAIN_TEXT.fullmatch(word) or (quoted and value[-1] != "'"):
        raise _NotPlain
    if not quoted:
        for _, pattern in _IMPLICIT.get(value[0], ()):
            if pattern.match(value):
                raise _NotPlain
    return word, end + 1


@lru_cache(maxsize=64)
def _block_end(child: str) -> re.Pattern:
    """The line break after which a literal block indented ``child`` has ended."""
    return re.compile(r"\n(?!%s|\n)" % child)


def _read_block(text: str, pos: int, child: str) -> tuple[str, int]:
    width = len(child)
    if not text.startswith(child, pos) or text[pos + width] in " \n":
        raise _NotPlain  # a block YAML would indent otherwise, or that starts with a space or a break
    found = _block_end(child).search(text, pos)
    end = found.start() + 1 if found else len(text)
    return text[pos + width:end].replace("\n" + child, "\n").rstrip("\n"), end
