"""``pytest-ft data``: the dataset checks."""

from ..data import register_cli  # noqa: F401
