"""The evaluation session: resolves options into per-suite plans and feeds the runner.

It sits between pytest and the runner. At collection it turns a suite and the options
into a :class:`SuitePlan` (which models, on which endpoints, which judge, which gate). When
the first case item is set up it submits every case this process will run (all selected
items, or on an xdist worker the items xdist has queued for it), so their requests are in
flight together while pytest reports the items one by one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..report.baseline import BaselineError, load_baseline
from ..config import Options
from ..report.pricing import PriceFileError, PriceTable, fine_tuned_base
from ..recording.cassette import cassette_path
from ..redact import scrub
from .runner import CaseJob, CaseResult, Endpoint, ModelOutcome, ModelRef, Runner, register_endpoint
from ..suite import ModelSpec, Suite, SuiteError

if TYPE_CHECKING:
    from .batch import Pending
    from ..items import FtCase

SESSION_KEY = pytest.StashKey["EvalSession"]()


@dataclass
class SuitePlan:
    suite: str
    file: str
    models: list[ModelRef]
    judge: ModelRef | None
    thresholds: dict[str, float]
    cassette_dir: Path | None
    params: dict = field(default_factory=dict)
    batch: bool = False
    training: dict | None = None  # the fine-tuning job the tuned model came from, when known

    @property
    def gated(self) -> bool:
        return bool(self.thresholds)

    def meta(self) -> dict:
        return {"suite": self.suite, "file": self.file, "thresholds": self.thresholds,
                "models": {ref.role: ref.model for ref in self.models},
                "judge": self.judge.model if self.judge else None, "training": self.training}


class EvalSession:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.options = Options.from_config(config)
        try:
            self.prices = PriceTable.from_file(self.options.prices)
            self.baseline = load_baseline(self.options.baseline) if self.options.baseline else None
        except (PriceFileError, BaselineError) as exc:
            raise pytest.UsageError(str(exc)) from exc
        self.runner: Runner | None = None
        self._restore_sigterm = lambda: None
        self._progress_shown = time.monotonic()
        self._futures: dict[str, Any] = {}
        self._messages: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.is_worker = hasattr(config, "workerinput")
        self._recording_folders: dict[Path, Path] = {}  # a suite's recordings folder -> its file

    # -- collection --------------------------------------------------------------------------

    def plan_suite(self, suite: Suite) -> SuitePlan:
        o = self.options
        endpoint_default = default_endpoint(o)

        def ref(role: str, spec: ModelSpec | None, override: str | None) -> ModelRef | None:
            model = override or (spec.model if spec else None)
            if not model:
                return None
            endpoint = endpoint_default
            if spec and (spec.base_url or spec.api_key_env):
                endpoint = Endpoint(base_url=spec.base_url or endpoint_default.base_url,
                                    api_key_env=spec.api_key_env or "OPENAI_API_KEY")
            if spec is None:
                return ModelRef(role=role, model=model, endpoint=endpoint)
            return ModelRef(role=role, model=model, endpoint=endpoint, params=dict(spec.params),
                            system=spec.system, examples=spec.examples)

        ini_tuned = self.config.getini("ft_model") or None
        tuned = ref("tuned", suite.models.get("tuned"), self.config.getoption("ft_model", None))
        base = ref("base", suite.models.get("base"), self.config.getoption("ft_base_model", None))
        if base is None:
            base = ref("base", None, self.config.getini("ft_base_model") or None)
        training = None
        train_spec = suite.train or ({"file": str(o.train)} if o.train else None)
        if tuned is None and train_spec:
            base_model = train_spec.get("base") or (base.model if base else None)
            if not base_model:
                raise SuiteError(suite.path, train_spec.get("line"), "train.base",
                                 "fine-tuning needs a base model: set train.base or models.base, or pass --ft-base-model")
            training = self._train(suite, train_spec, base_model, base.endpoint if base else endpoint_default)
            tuned = ModelRef("tuned", training["model"], base.endpoint if base else endpoint_default)
        if tuned is None and ini_tuned:
            tuned = ref("tuned", None, ini_tuned)
        if training is None and train_spec and tuned is not None:
            # The model is given, its data known: the report estimates what training it cost.
            training = {"model": tuned.model, "job_id": None, "trained_tokens": None,
                        "train_file": train_spec["file"], "n_epochs": (train_spec.get("hyperparameters") or {}).get(
                            "n_epochs"), "base_model": train_spec.get("base") or (base.model if base else None)}
        if tuned is None:
            raise SuiteError(suite.path, None, "models.tuned",
                             "no tuned model: pass --ft-model=ft:... (or set models.tuned in the suite, "
                             "or ft_model in the ini file, or give training data with train: or --ft-train)")
        if base is None:
            base = ref("base", None, fine_tuned_base(tuned.model) or (training or {}).get("base_model"))
        if base is None:
            raise SuiteError(suite.path, None, "models.base",
                             f"no base model: pass --ft-base-model (the tuned id {tuned.model!r} does not name one)")
        others = [ref(role, spec, None) for role, spec in suite.models.items() if role not in ("base", "tuned")]
        models = [base, tuned, *(r for r in others if r is not None)]

        judge_model = o.judge_model or (suite.judge.model if suite.judge else None)
        judge = None
        if judge_model:
            judge = ref("judge", suite.judge, judge_model if o.judge_model else None)
        if judge is None and any(getattr(case.grader, "uses_judge", False) for case in suite.cases):
            raise SuiteError(suite.path, None, "judge",
                             "a 'judge' grader needs a judge model: pass --ft-judge-model or set judge: in the suite")

        thresholds = dict(suite.thresholds)
        if o.min_accuracy is not None:
            thresholds["accuracy"] = o.min_accuracy
        if o.max_regressions is not None:
            thresholds["max_regressions"] = o.max_regressions
        for model in (*models, judge):
            if model is not None:
                register_endpoint(model.endpoint)
        cassette_dir = None
        if o.record_mode is not None:
            cassette_dir = o.cassette_dir or suite.path.parent / "cassettes"
            folder = cassette_path(cassette_dir, suite.name, "_").parent.resolve()
            other = self._recording_folders.setdefault(folder, suite.path)
            if other != suite.path:
                raise SuiteError(suite.path, None, "suite", f"{self._relpath(other)} records into the same folder "
                                 f"{self._relpath(folder)} (suite name {suite.name!r}): give one of them another "
                                 f"'suite:' name, or their recordings would overwrite each other")
            owners: dict[Path, str] = {}
            for case in suite.cases:
                recording = cassette_path(cassette_dir, suite.name, case.id)
                if recording in owners:
                    raise SuiteError(suite.path, case.line, "id", f"cases {owners[recording]!r} and {case.id!r} would "
                                     f"share the recording {recording.name}: rename one")
                owners[recording] = case.id
        return SuitePlan(suite=suite.name, file=self._relpath(suite.path), models=models, judge=judge,
                         thresholds=thresholds, cassette_dir=cassette_dir, batch=o.batch or suite.batch,
                         training=training)

    def _train(self, suite: Suite, spec: dict, base_model: str, endpoint: Endpoint) -> dict:
        """The tuned model fine-tuned on ``spec``'s data (see ``train_gate``), as a suite error if not."""
        from ..training.from_suite import TrainingError, tuned_model_from_training

        try:
            return tuned_model_from_training(
                spec, base_model=base_model, endpoint=endpoint, state_dir=self.config.rootpath / ".pytest-ft",
                allow_launch=self.options.launch, offline=self.options.record_mode == "none",
                poll_interval=self.options.train_poll, say=self._say_now)
        except TrainingError as exc:
            raise SuiteError(suite.path, spec.get("line"), "train", str(exc)) from None

    def _say_now(self, message: str) -> None:
        self._messages.put(message)
        self._print_messages()

    def _relpath(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.config.rootpath))
        except ValueError:
            return str(path)

    # -- running -----------------------------------------------------------------------------

    def _runner(self) -> Runner:
        if self.runner is None:
            o = self.options
            self.runner = Runner(concurrency=o.concurrency, timeout=o.timeout, max_retries=o.retries,
                                 record_mode=o.record_mode, tokens_per_minute=o.tpm)
            self._restore_sigterm = _interrupt_on_sigterm()
        return self.runner

    def job(self, item: "FtCase") -> CaseJob:
        case, plan, suite = item.case, item.plan, item.suite
        repeat = case.repeat or suite.repeat or self.options.repeat
        pass_if = case.pass_if or suite.pass_if or self.options.pass_if
        return CaseJob(case_id=case.id, messages=case.messages, expected=case.expected, grader=case.grader,
                       params=case.params, models=plan.models, judge=plan.judge, repeat=repeat,
                       pass_if=pass_if if not isinstance(pass_if, int) else min(pass_if, repeat),
                       cassette=cassette_path(plan.cassette_dir, plan.suite, case.id) if plan.cassette_dir else None)

    def _upcoming(self, item: "FtCase") -> list["FtCase"]:
        """The case items this process will run, starting with ``item``."""
        from ..items import FtCase

        items = item.session.items
        if not self.is_worker:
            return [i for i in items if isinstance(i, FtCase)]
        queue = _xdist_queue(self.config)
        if queue is None:
            return [item]
        with queue.lock() as pending:
            indices = list(pending)
        return [item] + [items[i] for i in indices if isinstance(i, int) and isinstance(items[i], FtCase)]

    def result_for(self, item: "FtCase") -> "CaseResult | Pending":
        if item.nodeid not in self._futures:
            runner = self._runner()
            batches: dict[int, list] = {}
            for upcoming in self._upcoming(item):
                if upcoming.nodeid in self._futures:
                    continue
                if upcoming.plan.batch:
                    batches.setdefault(id(upcoming.plan), []).append(upcoming)
                else:
                    self._futures[upcoming.nodeid] = runner.submit(self.job(upcoming))
            for items in batches.values():
                self._submit_batch(runner, items)
        future, case_id = self._futures.pop(item.nodeid), None
        if isinstance(future, tuple):
            future, case_id = future
        result = self._wait(future)
        return result[case_id] if case_id is not None else result

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

    def _wait(self, future: concurrent.futures.Future):
        """Wait for a result, printing the runner's status lines (batch progress) meanwhile.

        On a terminal, every few seconds a line also says how the whole run is going; CI logs
        (no terminal, or ``CI`` set) stay quiet.
        """
        while True:
            done, _ = concurrent.futures.wait([future], timeout=0.2)
            now = time.monotonic()
            if now - self._progress_shown >= 5 and self.show_progress and self.runner is not None:
                self._messages.put(self.runner.progress(len(self._futures) + self.runner.cases_done + (not done)))
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

    def failed_result(self, item: "FtCase", message: str) -> CaseResult:
        """A case that could not be run or read: its ERROR, with every model of the suite named."""
        plan = item.plan
        return CaseResult(models={ref.role: ModelOutcome(role=ref.role, model=ref.model) for ref in plan.models},
                          judge_model=plan.judge.model if plan.judge else None, error=message)

    def result_record(self, item: "FtCase") -> dict:
        """What the controller needs to build tables: JSON-safe, so xdist can carry it."""
        result: CaseResult = item.result
        return {
            **item.plan.meta(),
            "id": item.case.id,
            "nodeid": item.nodeid,
            "input": item.case.input,
            "expected": item.case.expected,
            "outcomes": {role: o.to_dict() for role, o in result.models.items()},
            "judge_usage": result.judge_usage.to_dict() if result.judge_model else None,
            "judge_model": result.judge_model,
            "cassette": result.cassette,
            "errors": result.errors,
            "error": result.error,
            "batch": result.batch,
        }

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None
            self._restore_sigterm()


def _interrupt_on_sigterm():
    """Make SIGTERM (a CI job cancelled, ``timeout``) stop the run like Ctrl-C does.

    By default SIGTERM kills Python on the spot; as a KeyboardInterrupt, pytest still runs
    its session end, so the results so far are summarised and every finished case's
    recording is already on disk. Returns the function that restores the old handler.
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


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


def default_endpoint(options: Options) -> Endpoint:
    return Endpoint(base_url=options.base_url or os.environ.get("OPENAI_BASE_URL") or None)


def model_refs(evals: EvalSession) -> dict[str, ModelRef]:
    """Tuned and base models from the options alone (for Python tests, which have no suite)."""
    options = evals.options
    if not options.model:
        pytest.skip("no tuned model configured: pass --ft-model (or set ft_model in the ini file)")
    endpoint = default_endpoint(options)
    refs = {"tuned": ModelRef("tuned", options.model, endpoint)}
    base = options.base_model or fine_tuned_base(options.model)
    if base:
        refs["base"] = ModelRef("base", base, endpoint)
    return refs


def fixture_completer(request: pytest.FixtureRequest, models: dict[str, ModelRef], calls_key):
    """The ``ft_complete`` callable: one cassette per test, tokens reported with the run."""
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
