"""pytest nodes: a suite file is a collector, each case an item.

Node ids are ``<file>::<case id>``, so ``-k``, ``--lf``, ``--deselect`` and ``-x`` work as
pytest users expect. An item does not send its own requests: it asks the session for its
result, which the runner has usually finished already (see ``runner.py``).

Outcomes:
  * a request that fails for good is an ERROR carrying the API's message;
  * without thresholds a case passes when the tuned model's answer passes its graders;
  * with thresholds a miss is an XFAIL carrying the answers, and the suite's gate decides
    the exit code at the end of the run.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .redact import scrub
from .results import CaseRecord, Verdict
from .suite import Case, Suite, SuiteError, load_suite

if TYPE_CHECKING:
    from .run.session import EvalSession


class FtFile(pytest.File):
    """A ``*.ft.yaml`` suite."""

    suite: Suite

    def collect(self):
        from .run.session import SESSION_KEY

        evals: EvalSession = self.config.stash[SESSION_KEY]
        try:
            self.suite = load_suite(self.path)
            plan = evals.plan_suite(self.suite)
        except Exception as exc:
            from .run.runner import describe_failure

            # An item, not a collection error: pytest stops the whole run on collection
            # errors, and one broken suite must not keep the others from running.
            error = exc if isinstance(exc, SuiteError) else \
                SuiteError(self.path, None, None, f"cannot load the suite: {describe_failure(exc)}")
            yield FtSuiteError.from_parent(self, name="suite", error=error.relative_to(self.config.rootpath))
            return
        for case in self.suite.cases:
            yield FtCase.from_parent(self, name=case.id, case=case, plan=plan)


class FtSuiteError(pytest.Item):
    """Stands for a suite that cannot run: an ERROR that says file:line: key: what is wrong."""

    def __init__(self, *, error: SuiteError, **kwargs):
        super().__init__(**kwargs)
        self.error = error
        self.ft_error = {"file": str(error.path), "line": error.line, "key": error.key, "message": str(error)}

    def reportinfo(self):
        return self.path, (self.error.line or 1) - 1, "invalid suite"

    def setup(self) -> None:
        pytest.fail(scrub(str(self.error)), pytrace=False)

    def runtest(self) -> None:  # never reached: setup fails
        raise AssertionError("unreachable")


def upcoming_cases(item: "FtCase", after: "FtCase | None" = None) -> Iterator["FtCase"]:
    """The case items this process will run, starting with ``item``; without xdist, those after
    ``after`` when it comes later (the last one the session submitted: the ones before it are in
    flight already, and a run of 100,000 cases must not list them again at every top-up)."""
    items = item.session.items
    if not hasattr(item.config, "workerinput"):
        start = _position(item)
        if after is not None:
            start = max(start, _position(after) + 1)
        return (i for i in itertools.islice(items, start, None) if isinstance(i, FtCase))
    queue = _xdist_queue(item.config)
    if queue is None:
        return iter([item])
    with queue.lock() as pending:
        indices = list(pending)
    return iter([item] + [items[i] for i in indices if isinstance(i, int) and isinstance(items[i], FtCase)])


_POSITIONS = pytest.StashKey[dict]()


def _position(item: pytest.Item) -> int:
    """``item``'s index in the session's items, without a scan of them per top-up."""
    items = item.session.items
    positions = item.session.stash.get(_POSITIONS, None)
    index = positions.get(id(item), -1) if positions is not None else -1
    if not (0 <= index < len(items) and items[index] is item):  # first asked, or the items changed since
        positions = item.session.stash[_POSITIONS] = {id(node): i for i, node in enumerate(items)}
        index = positions[id(item)]
    return index


def _xdist_queue(config: pytest.Config):
    """The queue of item indices xdist has sent this worker (``None`` if unknown).

    Items are prefetched only under xdist's ``load``/``loadscope``/``loadfile``/``loadgroup``
    modes: ``worksteal`` may take queued items away to another worker, which would then
    send their requests a second time.
    """
    if getattr(config.option, "dist", "load") == "worksteal":
        return None
    for plugin in config.pluginmanager.get_plugins():
        queue = getattr(plugin, "torun", None)
        if queue is not None and hasattr(queue, "lock"):
            return queue
    return None



def _short(value: Any, limit: int = 300) -> str:
    """One line of a failure message: JSON for structured values, line breaks shown as ⏎."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\r\n", "\n").replace("\n", " ⏎ ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FtCase(pytest.Item):
    """One case of a suite, run on every model of the suite."""

    def __init__(self, *, case: Case, plan: Any, **kwargs):
        super().__init__(**kwargs)
        self.case = case
        self.plan = plan
        self.result: Any = None
        self.record: CaseRecord | None = None

    @property
    def suite(self) -> Suite:
        return self.parent.suite

    def reportinfo(self):
        return self.path, self.case.line - 1, f"{self.suite.name}::{self.case.id}"

    def setup(self) -> None:
        from .run.batch import Pending
        from .run.session import SESSION_KEY

        evals: EvalSession = self.config.stash[SESSION_KEY]
        try:
            self.result = evals.result_for(self, lambda after=None: upcoming_cases(self, after))
            if isinstance(self.result, Pending):
                pytest.skip(f"submitted in batch {self.result.batch_id}; "
                            "run the same command again to collect the results")
            self.record = evals.record(self, self.result)
        except Exception as exc:
            from .run.runner import describe_failure

            # The one place where any failure of a case becomes its ERROR, kept in the report
            # (where it fails the gate) instead of leaving the case out.
            self.result = evals.failed_result(self, describe_failure(exc))
            self.record = evals.record(self, self.result)
        for role, outcome in self.result.models.items():
            self.user_properties.append((f"ft.{role}.model", outcome.model))
            self.user_properties.append((f"ft.{role}.output", scrub(outcome.output or "") if outcome.error is None else ""))
            self.user_properties.append((f"ft.{role}.passed", outcome.passed))
            self.user_properties.append((f"ft.{role}.score", outcome.score))
        if self.result.errors:
            pytest.fail(scrub("\n".join(self.result.errors)), pytrace=False)

    def teardown(self) -> None:
        # Its report carries the record on; pytest keeps every item to the end of the run,
        # and 100,000 results kept twice are memory the run does not need.
        self.result = self.record = None

    def runtest(self) -> None:
        if self._verdict("tuned") is Verdict.PASS:
            return
        message = scrub(self.describe_miss())
        if self.plan.gated:
            pytest.xfail(message)
        pytest.fail(message, pytrace=False)

    def describe_miss(self) -> str:
        lines = [f"{self.suite.name}::{self.case.id}: the tuned model missed",
                 f"  input:    {_short(self.case.input)}",
                 f"  expected: {_short(self.case.expected)}"]
        for role, outcome in self.result.models.items():
            label = "miss" if self._verdict(role) is Verdict.FAIL else self._verdict(role)
            lines.append(f"  {role + ':':9} {_short(outcome.output)}  [{label}, score "
                         f"{outcome.score:.2f}] {_short(outcome.reason, 160)}")
        return "\n".join(lines)

    def _verdict(self, role: str) -> Verdict:
        return self.record.verdict(role)
