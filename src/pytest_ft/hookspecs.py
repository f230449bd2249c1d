"""Hooks pytest-ft adds to pytest; implement them in a ``conftest.py`` or a plugin."""

from __future__ import annotations

import pytest


@pytest.hookspec(historic=True)
def pytest_ft_register_graders(register):
    """Called once per run: register(name, factory) adds graders.

    ``factory`` takes the grader's options as typed keyword arguments (checked against each
    spec before any model call) and returns the grader: see :func:`pytest_ft.graders.grader`.
    Historic, like ``pytest_configure``: a conftest.py found later, next to the suites it
    serves, is called too, as soon as pytest loads it.
    """
