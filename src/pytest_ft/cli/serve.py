"""``pytest-ft serve``: the local backend."""

from ..local.server import register_cli  # noqa: F401
