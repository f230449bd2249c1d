"""The one error type of the dataset commands, shared by every module of :mod:`pytest_ft.data`."""

from __future__ import annotations


class DataError(Exception):
    """A dataset or option problem the CLI reports as ``error: ...`` with an exit code."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
