"""Suites: the ``*.ft.yaml`` format, read with the line of everything, and its schema.

``yaml_lines`` reads YAML within bounds, keeping lines; ``load`` turns it into a checked
:class:`Suite` (``model``) or a :class:`SuiteError` naming file, line and key; ``schema`` is
the same format as JSON Schema for editors (``pytest-ft schema``).
"""

from .errors import SuiteError
from .load import (
                   MESSAGE_ROLES,
                   PASS_RULES,
                   REFERENCE,
                   REQUIRED_ROLES,
                   RESERVED_PARAMS,
                   SUITE_PATTERNS,
                   is_suite_file,
                   load_suite,
                   parse_repeat,
                   parse_suite,
)
from .model import Case, ModelSpec, Suite

__all__ = ["Case", "MESSAGE_ROLES", "ModelSpec", "PASS_RULES", "REFERENCE", "REQUIRED_ROLES", "RESERVED_PARAMS", "SUITE_PATTERNS",
           "Suite", "SuiteError", "is_suite_file", "load_suite", "parse_repeat", "parse_suite"]
