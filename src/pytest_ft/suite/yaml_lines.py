"""Reading YAML with the line of every mapping, key and list item, within bounds.

libyaml's safe loader, extended so that every error can say ``file:line``, and bounded so that
no file makes it hang or exhaust memory: regular files only, under a size limit, and aliases
that would expand the document far beyond what is written ("billion laughs") refused before
anything is built.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import yaml

from .errors import SuiteError

MAX_DEPTH = 100  # levels of nesting: the YAML constructor and the graders recurse
# Aliases may expand a suite to ALIAS_FACTOR times the nodes written, plus ALIAS_SLACK; a scalar
# counts one node more per TEXT_PER_NODE characters, so that repeating a long text counts too.
ALIAS_FACTOR, ALIAS_SLACK, TEXT_PER_NODE = 10, 10_000, 1024


class LineMap(dict):
    """A YAML mapping that remembers the line of itself and of each of its keys."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    line: int = 0
    item_lines: list


class LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader (libyaml's when available) that annotates mappings and sequences with 1-based lines."""


def construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise SuiteError(loader.suite_path, key_node.start_mark.line + 1, None,
                             "a mapping key must be a single value, not a list or a mapping")
        key = loader.construct_object(key_node, deep=True)
        if key in result.key_lines:
            raise SuiteError(loader.suite_path, key_node.start_mark.line + 1, str(key), "duplicate key")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def construct_sequence(loader: LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def construct_unsupported(loader: LineLoader, node: yaml.Node) -> None:
    raise SuiteError(loader.suite_path, node.start_mark.line + 1, None,
                     f"{node.tag.rsplit(':', 1)[-1]}: a suite holds only strings, numbers, lists and mappings")


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
# Dates stay the text written: requests and reports are JSON.
LineLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.constructor.SafeConstructor.construct_yaml_str)
for _tag in ("binary", "set", "omap", "pairs"):
    LineLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", construct_unsupported)


def construct(loader: LineLoader, path: Path) -> Any:
    """The document's data, built once its nodes pass _check_expansion. A function of its own so that
    the nodes are freed before parse_suite: alive, they slow every garbage collection there."""
    node = loader.get_single_node()
    if node is None:
        return None
    _check_expansion(node, path)
    return loader.construct_document(node)


def open_regular(path: Path, limit: int) -> BinaryIO:
    """Opens a regular file of at most ``limit`` bytes; a FIFO, a device or a directory is refused unread."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO would block the open itself
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError("not a regular file")
        if info.st_size > limit:
            raise OSError(too_big(limit))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_lines(handle: BinaryIO, limit: int) -> Iterator[bytes]:
    """The lines of ``handle``, up to ``limit`` bytes in all (a file may grow, or lie about its size)."""
    left = limit
    while line := handle.readline(left + 1):
        left -= len(line)
        if left < 0:
            raise OSError(too_big(limit))
        yield line


def too_big(limit: int) -> str:
    size = next(f"{limit / unit:g} {name}" for unit, name in ((2**30, "GiB"), (2**20, "MiB"), (1, "bytes"))
                if limit >= unit)
    return f"larger than the limit of {size}"


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


def _weight(node: yaml.Node) -> int:
    return 1 + len(node.value) // TEXT_PER_NODE if isinstance(node, yaml.ScalarNode) else 1


def _check_expansion(root: yaml.Node, path: Path) -> None:
    """Refuses, before anything is built, nesting deeper than MAX_DEPTH and aliases that expand the
    suite far beyond what is written ("billion laughs": nine aliases of nine aliases of ...).

    Aliases make the composed nodes a graph; each list's and mapping's expanded size and depth is
    computed once, from its children's, so this costs the size of the file, not of the expansion.
    """
    size: dict[int, int] = {}  # lists and mappings, by id: their weight once expanded
    depth: dict[int, int] = {}
    scalars: dict[int, int] = {}  # each scalar written once, by id: its weight
    open_nodes: set[int] = set()
    # (node, None) visits a node; (node, its children) totals it, once its children are done.
    stack: list[tuple[yaml.Node, list | None]] = [(root, None)]
    while stack:
        node, done_children = stack.pop()
        key = id(node)
        if done_children is not None:
            open_nodes.discard(key)
            total, deepest = 1, 1 if done_children else 0
            for child in done_children:
                if type(child) is yaml.ScalarNode:
                    weight = scalars[id(child)] = _weight(child)
                    total += weight
                else:
                    total += size[id(child)]
                    deepest = max(deepest, depth[id(child)])
            size[key], depth[key] = min(total, sys.maxsize), deepest + 1
            if deepest >= MAX_DEPTH:
                raise SuiteError(path, node.start_mark.line + 1, None, f"nested more than {MAX_DEPTH} levels deep")
        elif key in open_nodes:
            raise SuiteError(path, node.start_mark.line + 1, None, "an alias inside its own anchor never ends")
        elif key not in size:
            open_nodes.add(key)
            children = _children(node)
            stack.append((node, children))
            stack.extend((child, None) for child in reversed(children) if type(child) is not yaml.ScalarNode)
    written = len(size) + sum(scalars.values())
    limit = ALIAS_FACTOR * written + ALIAS_SLACK
    if size[id(root)] > limit:
        raise _alias_bomb(root, path, limit, written)


def _alias_bomb(root: yaml.Node, path: Path, limit: int, written: int) -> SuiteError:
    """The error for aliases that expand past ``limit``: it points at the anchor being repeated
    when the expansion, followed in document order, runs over."""
    seen: set[int] = set()
    expanded = 0
    stack = [(root, None)]
    while expanded <= limit:
        node, repeated = stack.pop()
        if repeated is None and id(node) in seen:
            repeated = node
        seen.add(id(node))
        expanded += _weight(node)
        stack.extend((child, repeated) for child in reversed(_children(node)))
    culprit = repeated or node
    return SuiteError(path, culprit.start_mark.line + 1, None,
                      f"aliases of this anchor expand the suite past {limit:,} nodes "
                      f"({ALIAS_FACTOR} times the {written:,} written + {ALIAS_SLACK:,})")


def wrap(data: dict) -> LineMap:
    wrapped = LineMap(data)
    wrapped.line, wrapped.key_lines = 1, {}
    return wrapped


def plain(value: Any) -> Any:
    """Line-annotated YAML containers back to plain dict/list (they end up in JSON reports)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
