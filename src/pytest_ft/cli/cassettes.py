"""``pytest-ft cassettes``: the recordings audit."""

from ..recording.audit import register_cli  # noqa: F401
