"""Finding repeated examples in a million-line file without holding the examples.

Each example is reduced to a 64-bit hash of its canonical form; repeats are found among the
hashes, in about 12 bytes per example (validate's ``duplicate_example``, ``dedupe``).
"""

from __future__ import annotations

import hashlib
import json
from array import array
from typing import Any, Iterator


def text_hash(text: str) -> int:
    """A 64-bit hash of ``text``: stable across runs and processes, unlike ``hash()``."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def canonical_hash(obj: Any) -> int:
    """The hash of a JSON value with key order and spacing ignored."""
    return text_hash(json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")))


class Duplicates:
    """Finds repeated 64-bit hashes in bounded memory.

    Per item it keeps the hash and the line (12 bytes). A bitmap of about 32 bits per item
    (grown as items arrive) flags the hashes that may have been seen before; only those
    candidates (true repeats plus a few percent of bitmap collisions) are looked up at the end.
    """

    def __init__(self) -> None:
        self.bits = 1 << 16
        self.bitmap = bytearray(self.bits >> 3)
        self.hashes = array("Q")
        self.lines = array("I")
        self.candidates: set[int] = set()

    def _mark(self, h: int) -> None:
        i = h & (self.bits - 1)
        bit = 1 << (i & 7)
        if self.bitmap[i >> 3] & bit:
            self.candidates.add(h)
        else:
            self.bitmap[i >> 3] |= bit

    def add(self, h: int, line: int) -> None:
        if len(self.hashes) >= self.bits >> 5:
            self.bits <<= 2
            self.bitmap = bytearray(self.bits >> 3)
            for old in self.hashes:
                self._mark(old)
        self._mark(h)
        self.hashes.append(h)
        self.lines.append(line)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """(line, line of its first occurrence) for every repeat, in file order."""
        if not self.candidates:
            return
        first: dict[int, int] = {}
        for h, line in zip(self.hashes, self.lines, strict=True):
            if h in self.candidates:
                seen = first.get(h)
                if seen is None:
                    first[h] = line
                else:
                    yield line, seen
