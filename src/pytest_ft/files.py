"""The one way pytest-ft writes a file: scrubbed of credentials, then atomically.

A run killed mid-write must never leave half a report or recording behind (nor its
temporary file), and xdist workers writing into the same folder must not race.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .redact import scrub

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once, at import, while nothing else runs: mkstemp's files are private (0600)


def write_atomic(path: str | os.PathLike, text: str, *, durable: bool = False) -> None:
    """Write ``text`` (scrubbed) to ``path`` through a temporary file in the same folder and a rename.

    ``durable`` also flushes it to the disk before the rename, for state that must survive a
    power cut (the record of a paid fine-tuning job). A recorded run writes one file per case,
    so this is a handful of system calls: the folder is made only when it is missing.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    data = scrub(text).encode("utf-8", "backslashreplace")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder or ".", prefix=f".{name[:100]}.", suffix=".tmp")
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder or ".", prefix=f".{name[:100]}.", suffix=".tmp")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
            try:
                mode = os.stat(path).st_mode & 0o777  # a file written over keeps its permissions
            except FileNotFoundError:
                mode = 0o666 & ~_UMASK
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` (scrubbed): for files other tools share, such as GitHub's step summary."""
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as handle:
        handle.write(scrub(text))
