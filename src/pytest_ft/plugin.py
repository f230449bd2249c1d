"""pytest-ft: evaluate a fine-tuned model against its base from ``*.ft.yaml`` suites.

Hooks and fixtures only; the work lives in ``suite/`` (reading suites), ``run/`` (planning,
scheduling, the concurrent runner), ``recording/`` (vcrpy), ``graders/`` and ``report/``.

Every pytest run of an environment where pytest-ft is installed loads this module, so it
imports the runner, the recorder and the report renderers only when a run has cases.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import redact
from .config import add_options
from .items import FtCase, FtFile, FtSuiteError
from .report.aggregate import Aggregator, build_report
from .run.session import SESSION_KEY, EvalSession
from .suite import is_suite_file

if TYPE_CHECKING:
    from .run.runner import ModelRef

CALLS_KEY = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    from . import graders

    config.hook.pytest_ft_register_graders.call_historic(kwargs={"register": graders.register})
    redact.register_env()
    redact.register_url(os.environ.get("OPENAI_BASE_URL"))
    config.add_cleanup(redact.scrub_log_records())
    config.stash[SESSION_KEY] = EvalSession(config)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Controller(config), "pytest-ft-controller")


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if is_suite_file(file_path):
        parent.config.stash[SESSION_KEY].suite_found()
        return FtFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Attach each case's result (and fixture calls) to its report: xdist carries it to the controller."""
    report = yield
    if isinstance(item, FtCase) and item.record is not None and not getattr(item, "_ft_reported", False):
        if call.when == "call" or (call.when == "setup" and report.failed):
            report.ft_result = item.record.to_json()
            item._ft_reported = True
    if isinstance(item, FtSuiteError) and call.when == "setup":
        report.ft_suite_error = item.ft_error
    if call.when == "teardown" and item.stash.get(CALLS_KEY, None):
        report.ft_calls = item.stash[CALLS_KEY]
    return report


class Controller:
    """The end of the run, on the process that sees every report (the xdist controller)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.aggregator = Aggregator()
        self.report: dict | None = None
        self.started = time.perf_counter()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self) -> None:
        self.started = time.perf_counter()
        # Until the run ends, its reports say it has not: a run killed outright (kill -9, the
        # machine lost) must not leave the last run's "passed" behind for CI to read.
        if self._report_paths():
            self._write_reports(build_report(Aggregator(), self.config.stash[SESSION_KEY].prices,
                                             interrupted="the run has not finished (still running, or killed)"))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "ft_result", None)
        if record is not None:
            self.aggregator.add_case(record)
            # After every other plugin has seen it: the terminal reporter keeps each report
            # to the end of the run, and the aggregator now holds the record.
            del report.ft_result
        calls = getattr(report, "ft_calls", None)
        if calls:
            self.aggregator.add_calls(calls)
        error = getattr(report, "ft_suite_error", None)
        if error:
            self.aggregator.suite_errors.append(error)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        evals = self.config.stash[SESSION_KEY]
        if not self.aggregator:
            self._write_reports(None)
            return
        self.report = build_report(self.aggregator, evals.prices, evals.baseline,
                                   interrupted=_interruption(session, exitstatus), retirements=evals.retirements)
        self.report["duration_s"] = round(time.perf_counter() - self.started, 3)
        markdown = self._write_reports(self.report)
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            from .report.render.markdown import append_step_summary, render_markdown

            append_step_summary(markdown or render_markdown(self.report, self.report.get("baseline", {}).get("suites")))
        if not self.report["passed"] and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _report_paths(self) -> list[Path]:
        options = self.config.stash[SESSION_KEY].options
        return [path for path in (options.report, options.markdown, options.html) if path is not None]

    def _write_reports(self, report: dict | None) -> str | None:
        """Write (or, with no report, remove) the report files asked for; returns the Markdown."""
        if report is None:
            for path in self._report_paths():
                path.unlink(missing_ok=True)
            return None
        options = self.config.stash[SESSION_KEY].options
        diff = report.get("baseline", {}).get("suites")
        if options.report:
            from .report.render.jsonfile import write_json

            write_json(report, options.report)
        if options.html:
            from .report.render.html import write_html

            write_html(report, options.html, diff)
        if options.markdown:
            from .report.render.markdown import write_markdown

            return write_markdown(report, options.markdown, diff)
        return None

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.report is None:
            return
        from .report.render.terminal import render

        terminalreporter.section("pytest-ft")
        terminalreporter.write_line(redact.scrub(render(self.report)))
        options = self.config.stash[SESSION_KEY].options
        for kind, path in (("JSON", options.report), ("Markdown", options.markdown), ("HTML", options.html)):
            if path:
                terminalreporter.write_line(f"{kind} report: {path}")


def _interruption(session: pytest.Session, exitstatus: int) -> str | None:
    """Why the run stopped before its end, or None when it ran to the end."""
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "interrupted (Ctrl-C or SIGTERM)"
    if exitstatus == pytest.ExitCode.INTERNAL_ERROR:
        return "pytest hit an internal error"
    if session.shouldfail or session.shouldstop:
        return f"stopped early: {session.shouldfail or session.shouldstop}"
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[SESSION_KEY].close()


def pytest_unconfigure(config: pytest.Config) -> None:
    evals = config.stash.get(SESSION_KEY, None)
    if evals is not None:
        evals.end()


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def ft_options(pytestconfig: pytest.Config):
    """The resolved ``--ft-*`` options (see ``session.Options``)."""
    return pytestconfig.stash[SESSION_KEY].options


@pytest.fixture(scope="session")
def ft_models(pytestconfig: pytest.Config) -> dict[str, "ModelRef"]:
    """The tuned and base models of this run, as :class:`~pytest_ft.runner.ModelRef` by role.

    From ``--ft-model`` / ``--ft-base-model`` (or their ini options; the base defaults to the
    one named in the ``ft:`` id). Skips the test when no tuned model is configured.
    """
    from .run.plan import model_refs

    return model_refs(pytestconfig.stash[SESSION_KEY].options)


@pytest.fixture(scope="session")
def ft_client(pytestconfig: pytest.Config):
    """A synchronous ``openai.OpenAI`` client for the configured endpoint (key from the environment)."""
    import os

    import openai

    options = pytestconfig.stash[SESSION_KEY].options
    client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "pytest-ft-no-api-key",
                           base_url=options.base_url or os.environ.get("OPENAI_BASE_URL") or None)
    yield client
    client.close()


@pytest.fixture
def ft_complete(request: pytest.FixtureRequest, ft_models):
    """``ft_complete(messages_or_text, model="tuned", **params) -> str``.

    Goes through the same runner as the suites: retried, recorded and replayed (one
    cassette per test), and its tokens and cost land in the end-of-run tables.
    """
    from .run.session import fixture_completer

    yield from fixture_completer(request, ft_models, CALLS_KEY)


@pytest.fixture(scope="session")
def ft_data():
    """The dataset checks as functions (``validate``, ``stats``, ``check_leak``, ``split``, ``dedupe``…).

    For tests that guard the training data itself, e.g.
    ``assert not ft_data.check_leak("train.jsonl", ["evals/sentiment.ft.yaml"]).leaks``.
    """
    from . import data

    return data
