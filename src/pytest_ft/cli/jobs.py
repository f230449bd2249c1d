"""``pytest-ft jobs``: fine-tuning: train and jobs."""

from ..training.jobs import register_cli  # noqa: F401
