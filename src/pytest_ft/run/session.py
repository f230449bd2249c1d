"""The evaluation session: plans each suite (see :mod:`.plan`) and feeds the runner.

When the first case item is set up it submits every case this process will run (all
selected items, or on an xdist worker the items xdist has queued for it), so their requests
are in flight together while pytest reports the items one by one.

The session exists in every pytest run of an environment where pytest-ft is installed; the
planner and the runner (vcrpy, httpx, openai) are imported when a suite or a fixture needs
them, so a project's plain tests do not pay for them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from ..config import Options
from ..redact import scrub
from ..report.baseline import BaselineError, load_baseline
from ..report.pricing import PriceFileError, PriceTable
from ..report.retirement import RetirementCalendar, RetirementFileError
from ..results import CaseRecord
from .heap import fewer_full_collections
from .signals import interrupt_on_sigterm

if TYPE_CHECKING:
    from ..items import FtCase
    from ..suite import Suite
    from .batch import Pending
    from .plan import Planner, SuitePlan
    from .runner import CaseJob, CaseResult, ModelRef, Runner

SESSION_KEY = pytest.StashKey["EvalSession"]()
PREFETCH_MIN, PREFETCH_PER_SLOT = 1000, 8  # cases submitted ahead: at least 1,000, 8 per request slot
BACKLOG = 4  # finished cases pytest has not reported yet, at most, in prefetches (a slow case holds the line)


class EvalSession:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.options = Options.from_config(config)
        try:
            self.prices = PriceTable.from_file(self.options.prices)
            self.retirements = RetirementCalendar.from_file(self.options.retirements)
            self.baseline = load_baseline(self.options.baseline) if self.options.baseline else None
        except (PriceFileError, RetirementFileError, BaselineError) as exc:
            raise pytest.UsageError(str(exc)) from exc
        self.runner: Runner | None = None
        self._restore_sigterm = lambda: None
        self._restore_gc: Callable[[], None] | None = None
        self._progress_shown = time.monotonic()
        self._futures: dict[str, Any] = {}  # by node id: submitted, not yet reported
        self._submitted: set[str] = set()
        self._reported = 0  # results handed to pytest
        self._last_submitted: FtCase | None = None
        self._messages: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._planner: Planner | None = None

    # -- collection --------------------------------------------------------------------------

    def plan_suite(self, suite: "Suite") -> "SuitePlan":
        if self._planner is None:
            from .plan import Planner

            self._planner = Planner(self.config, self.options, say=self._say_now)
        return self._planner.plan(suite)

    def suite_found(self) -> None:
        """A suite is collected: from here to pytest's end (:meth:`end`) the heap holds its cases."""
        if self._restore_gc is None:
            self._restore_gc = fewer_full_collections()

    def _say_now(self, message: str) -> None:
        self._messages.put(message)
        self._print_messages()

    # -- running -----------------------------------------------------------------------------

    def _runner(self) -> Runner:
        if self.runner is None:
            from .runner import Runner

            o = self.options
            self.runner = Runner(concurrency=o.concurrency, timeout=o.timeout, max_retries=o.retries,
                                 record_mode=o.record_mode, tokens_per_minute=o.tpm)
            self._restore_sigterm = interrupt_on_sigterm()
        return self.runner

    def job(self, item: "FtCase") -> "CaseJob":
        from ..recording.cassette import cassette_path
        from .runner import CaseJob

        case, plan, suite = item.case, item.plan, item.suite
        repeat = case.repeat or suite.repeat or self.options.repeat
        pass_if = case.pass_if or suite.pass_if or self.options.pass_if
        return CaseJob(case_id=case.id, messages=case.messages, expected=case.expected, grader=case.grader,
                       params=case.params, models=plan.models, judge=plan.judge, repeat=repeat,
                       pass_if=pass_if if not isinstance(pass_if, int) else min(pass_if, repeat),
                       reference=plan.reference, labelled=case.labelled, agreement=plan.agreement,
                       prefer=plan.prefer,
                       cassette=cassette_path(plan.cassette_dir, plan.suite, case.id) if plan.cassette_dir else None)

    def result_for(self, item: "FtCase", upcoming: Callable[..., Iterable["FtCase"]]) -> "CaseResult | Pending":
        """``item``'s result. Cases are submitted ahead of the one pytest reports, from the cases
        ``upcoming()`` lists (those this process will run, ``item`` first; ``upcoming(after=case)``
        may skip those up to ``case``, submitted already): whenever fewer than half of
        :attr:`prefetch` are unfinished in the runner, it gets up to :attr:`prefetch` (a batch
        suite's all at once) — also while pytest waits on a slow case, until the results
        waiting for pytest are ``BACKLOG`` prefetches. While the runner only replays, it gets
        the next window once pytest has reported the last (see :meth:`_wait`)."""
        if item.nodeid not in self._futures:
            self._submitted.discard(item.nodeid)  # run again (a rerun plugin): asked again
            self._submit_upcoming(item, upcoming())
        future, case_id = self._futures.pop(item.nodeid), None
        if isinstance(future, tuple):
            future, case_id = future

        def top_up() -> None:  # by half a window or more: listing the upcoming cases is not free
            half = self.prefetch // 2
            if self.runner is None:
                return
            if self.runner.requests_sent == 0:  # replaying: a window at a time, see _wait
                wanted = self.runner.pending == 0 and not self._futures
            else:
                wanted = self.runner.pending <= half and len(self._futures) <= BACKLOG * self.prefetch - half
            if wanted:
                self._submit_upcoming(item, upcoming(after=self._last_submitted))

        result = self._wait(future, top_up, lambda: self._reported + sum(1 for _ in upcoming()))
        self._reported += 1
        return result[case_id] if case_id is not None else result

    @property
    def prefetch(self) -> int:
        """How many cases the runner holds at most: enough to keep every request slot busy while
        cases finish out of order, few enough that a run of 100,000 cases does not keep 100,000
        of them (a task, a job, a result in the making each) waiting in memory."""
        return max(PREFETCH_MIN, PREFETCH_PER_SLOT * self.options.concurrency)

    def _submit_upcoming(self, item: "FtCase", cases: Iterable["FtCase"]) -> None:
        runner = self._runner()
        if runner.requests_sent == 0 and runner.pending == 0:  # a replay's next window: see _wait
            with runner.paused():
                self._submit_window(runner, item, cases)
        else:
            self._submit_window(runner, item, cases)

    def _submit_window(self, runner: Runner, item: "FtCase", cases: Iterable["FtCase"]) -> None:
        room = min(self.prefetch - runner.pending, BACKLOG * self.prefetch - len(self._futures))
        cases = iter(cases)
        for case_item in cases:
            nodeid = case_item.nodeid
            if nodeid in self._submitted:
                continue
            if case_item.plan.batch:
                rest = [case_item, *cases]
                self._submit_batch(runner, [i for i in rest
                                            if i.plan is case_item.plan and i.nodeid not in self._submitted])
                self._submit_window(runner, item, rest)  # the other suites' cases, as room allows
                return
            if room <= 0 and case_item is not item:
                return
            self._futures[nodeid] = runner.submit(self.job(case_item))
            self._submitted.add(nodeid)
            self._last_submitted = case_item
            room -= 1

    def _submit_batch(self, runner: Runner, items: list["FtCase"]) -> None:
        from .batch import BatchRun

        plan = items[0].plan
        run = BatchRun(runner=runner, suite=plan.suite, jobs=[self.job(i) for i in items],
                       state_dir=self.config.rootpath / ".pytest-ft", cassette_dir=plan.cassette_dir,
                       poll_interval=self.options.batch_poll, submit_only=self.options.batch_submit_only,
                       say=self._messages.put)
        future = runner.submit_batch(run)
        for i in items:
            self._futures[i.nodeid] = (future, i.case.id)
            self._submitted.add(i.nodeid)

    def _wait(self, future: concurrent.futures.Future, top_up: Callable[[], None], expected: Callable[[], int]):
        """Wait for a result, topping the runner up and printing its status lines (batch progress)
        meanwhile.

        While the runner has sent no request (it replays), pytest waits for it to finish its whole
        window before reporting: replaying is work for the interpreter alone, and when both
        threads have work the interpreter lock changes hands at every system call either makes
        (pytest's output capture makes several per test), which cost a 10,000-case replay more
        than a tenth of its time. A runner that waits on the network leaves the lock free, so
        pytest reports each result as it comes.

        On a terminal, every few seconds a line also says how the whole run is going; CI logs
        (no terminal, or ``CI`` set) stay quiet.
        """
        while True:
            top_up()
            runner = self.runner
            if runner is not None and runner.requests_sent == 0:
                done = runner.drain(timeout=0.2) and future.done()
            else:
                done = future.done() or bool(concurrent.futures.wait([future], timeout=0.2)[0])
            now = time.monotonic()
            if now - self._progress_shown >= 5 and self.show_progress and self.runner is not None:
                self._messages.put(self.runner.progress(expected()))
                self._progress_shown = now
            self._print_messages()
            if done:
                return future.result()

    @property
    def show_progress(self) -> bool:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        return bool(reporter is not None and reporter.isatty() and not os.environ.get("CI"))

    def _print_messages(self) -> None:
        if self._messages.empty():
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        while not self._messages.empty():
            message = self._messages.get()
            if reporter is None:
                continue
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                reporter.write_line(scrub(f"pytest-ft: {message}"))

    def failed_result(self, item: "FtCase", message: str) -> "CaseResult":
        """A case that could not be run or read: its ERROR, with every model of the suite named."""
        from .runner import CaseResult, ModelOutcome

        plan = item.plan
        return CaseResult(models={ref.role: ModelOutcome(role=ref.role, model=ref.model) for ref in plan.models},
                          judge_model=plan.judge.model if plan.judge else None, error=message)

    @staticmethod
    def record(item: "FtCase", result: "CaseResult") -> CaseRecord:
        """The case's result as the report will see it (see :class:`~pytest_ft.results.CaseRecord`)."""
        return CaseRecord(
            suite=item.plan.info, id=item.case.id, nodeid=item.nodeid, input=item.case.input,
            expected=item.case.expected, labelled=item.case.labelled,
            outcomes={role: o.to_dict() for role, o in result.models.items()},
            judge_usage=result.judge_usage.to_dict() if result.judge_model else None, judge_model=result.judge_model,
            cassette=result.cassette, errors=result.errors, error=result.error, batch=result.batch,
            preference=result.preference)

    def close(self) -> None:
        """The cases have run: the runner's loop, connections and signal handler go."""
        if self.runner is not None:
            self.runner.close()
            self.runner = None
            self._restore_sigterm()

    def end(self) -> None:
        """pytest's end (unconfigure): the heap it held is collected as usual again. Not at the
        session's end: the summary and the reports still hold it, and restoring the thresholds
        there only bought one more walk of it before pytest's own collections at exit."""
        self.close()
        if self._restore_gc is not None:
            self._restore_gc()
            self._restore_gc = None


def fixture_completer(request: pytest.FixtureRequest, models: dict[str, "ModelRef"], calls_key):
    """The ``ft_complete`` callable: one cassette per test, tokens reported with the run."""
    from ..recording.cassette import cassette_path
    from .plan import default_endpoint
    from .runner import ModelRef

    evals: EvalSession = request.config.stash[SESSION_KEY]
    item = request.node
    calls = item.stash.setdefault(calls_key, [])
    cassette_dir = evals.options.cassette_dir or Path(item.path).parent / "cassettes"
    path = cassette_path(cassette_dir, Path(item.path).stem, item.name) if evals.options.record_mode else None
    runner = evals._runner()
    state: dict = {}

    def complete(messages: str | list[dict], model: str = "tuned", **params: Any) -> str:
        ref = models.get(model) or ModelRef("custom", model, default_endpoint(evals.options))
        if "cassette" not in state:
            state["cassette"] = runner.open_cassette(path, item.nodeid) if path else None
        chat = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
        answer = runner.complete_sync(ref, chat, params, state["cassette"])
        calls.append({"model": ref.model, **answer.usage.to_dict(), "replayed": answer.replayed})
        return answer.text

    yield complete
    if state.get("cassette") is not None:
        state["cassette"].save(complete=True)
