"""A suite that cannot run, and the place to fix it."""

from __future__ import annotations

from pathlib import Path


class SuiteError(Exception):
    """A suite that cannot run, with the place to fix it."""

    def __init__(self, path: str | Path, line: int | None, key: str | None, message: str):
        self.path, self.line, self.key, self.message = str(path), line, key, message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    def relative_to(self, root: Path) -> "SuiteError":
        """The same error with the path shown relative to ``root`` (when it is below it)."""
        try:
            path = Path(self.path).relative_to(root)
        except ValueError:
            return self
        return SuiteError(path, self.line, self.key, self.message)
