"""Garbage collection for runs that keep a large heap.

A run holds every finished case's result (the report needs them all), and collecting 100,000
cases makes 100,000 items, so the heap grows with the run; Python's default (a full collection
every tenth second-generation one) walks all of it again and again — at 10,000 cases a fifth of
the process's CPU, and more at 100,000. While a run is open, full collections are a hundred
times rarer. Each request leaves cycles behind (tasks, exceptions, futures) that the young
generations still reclaim; only the walks of what is kept anyway become rarer.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

FULL_COLLECTION_EVERY = 1000  # second-generation collections between full ones (Python's default: 10)
_lock = threading.Lock()
_open = {"holders": 0, "thresholds": gc.get_threshold()}


def fewer_full_collections() -> Callable[[], None]:
    """Make full collections rarer until the returned function is called (once, any number of
    times); the thresholds come back when the last holder lets go."""
    with _lock:
        if not _open["holders"]:
            _open["thresholds"] = young, middle, full = gc.get_threshold()
            gc.set_threshold(young, middle, max(full, FULL_COLLECTION_EVERY))
        _open["holders"] += 1
    done = threading.Event()

    def restore() -> None:
        with _lock:
            if done.is_set():
                return
            done.set()
            _open["holders"] -= 1
            if not _open["holders"]:
                gc.set_threshold(*_open["thresholds"])

    return restore
