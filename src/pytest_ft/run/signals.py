"""SIGTERM (a CI job cancelled, ``timeout``) stops a run the way Ctrl-C does."""

from __future__ import annotations

import signal
import threading


def interrupt_on_sigterm():
    """Make SIGTERM (a CI job cancelled, ``timeout``) stop the run like Ctrl-C does.

    By default SIGTERM kills Python on the spot; as a KeyboardInterrupt, pytest still runs
    its session end, so the results so far are summarised and every finished case's
    recording is already on disk. Returns the function that restores the old handler.
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)
