"""Planning: a suite and the options become a :class:`SuitePlan` — which models, on which
endpoints, with which judge, gate and recordings folder.

Done once per suite at collection, in every process (xdist workers plan for themselves), so
everything wrong with a plan is a suite error before any request is sent.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from ..config import Options
from ..results import SuiteInfo
from ..recording.cassette import cassette_path
from ..report.pricing import fine_tuned_base
from ..suite import REFERENCE, ModelSpec, Suite, SuiteError
from .runner import Endpoint, ModelRef, register_endpoint


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
    agreement: Any = None  # the grader of agreement with the reference (None: each case's grader)
    prefer: dict | None = None  # a pairwise judgement per case: {roles, rubric, model, include_expected}

    @functools.cached_property
    def reference(self) -> str | None:
        """The role of the model being replaced, when the suite has one."""
        return REFERENCE if any(ref.role == REFERENCE for ref in self.models) else None

    @property
    def gated(self) -> bool:
        return bool(self.thresholds)

    @functools.cached_property
    def info(self) -> SuiteInfo:
        return SuiteInfo(suite=self.suite, file=self.file, thresholds=self.thresholds,
                         models={ref.role: ref.model for ref in self.models}, reference=self.reference,
                         judge=self.judge.model if self.judge else None, training=self.training)


class Planner:
    """Turns suites into plans; keeps what must hold across the suites of a run."""

    def __init__(self, config: pytest.Config, options: Options, say: Callable[[str], None]):
        self.config = config
        self.options = options
        self.say = say
        self._recording_folders: dict[Path, Path] = {}  # a suite's recordings folder -> its file

    def plan(self, suite: Suite) -> SuitePlan:
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
                            system=spec.system, examples=spec.examples,
                            answers=self._answers(suite, role, spec) if spec.answers and not override else None)

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
        reference = ref(REFERENCE, suite.models.get(REFERENCE), o.reference)
        others = [ref(role, spec, None) for role, spec in suite.models.items()
                  if role not in ("base", "tuned", REFERENCE)]
        models = [*([reference] if reference else []), base, tuned, *(r for r in others if r is not None)]
        if (o.batch or suite.batch) and any(r.answers is not None for r in models):
            raise SuiteError(suite.path, None, "batch", "a model answering from a frozen answers file cannot run in "
                             "batch mode: run this suite without batch")
        unlabelled = next((case for case in suite.cases if not case.labelled), None)
        if unlabelled is not None and reference is None:
            raise SuiteError(suite.path, unlabelled.line, "expected", f"case {unlabelled.id!r} has no 'expected' "
                             f"and the suite has no reference model to take it from")

        judge_model = o.judge_model or (suite.judge.model if suite.judge else None)
        judge = None
        if judge_model:
            judge = ref("judge", suite.judge, judge_model if o.judge_model else None)
        if suite.prefer:
            roles = [r.role for r in models]
            missing = [role for role in suite.prefer["roles"] if role not in roles]
            if missing:
                raise SuiteError(suite.path, suite.prefer["line"], "prefer.roles",
                                 f"{', '.join(missing)}: no such model role (the suite has {', '.join(roles)})")
            if judge is None and not suite.prefer["model"]:
                raise SuiteError(suite.path, suite.prefer["line"], "prefer",
                                 "a pairwise judgement needs a judge model: pass --ft-judge-model, set judge: "
                                 "in the suite, or prefer.model")
            if judge is None:
                judge = ref("judge", None, suite.prefer["model"])
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
                raise SuiteError(suite.path, None, "suite", f"{self.relpath(other)} records into the same folder "
                                 f"{self.relpath(folder)} (suite name {suite.name!r}): give one of them another "
                                 f"'suite:' name, or their recordings would overwrite each other")
            owners: dict[Path, str] = {}
            for case in suite.cases:
                recording = cassette_path(cassette_dir, suite.name, case.id)
                if recording in owners:
                    raise SuiteError(suite.path, case.line, "id", f"cases {owners[recording]!r} and {case.id!r} would "
                                     f"share the recording {recording.name}: rename one")
                owners[recording] = case.id
        return SuitePlan(suite=suite.name, file=self.relpath(suite.path), models=models, judge=judge,
                         thresholds=thresholds, cassette_dir=cassette_dir, batch=o.batch or suite.batch,
                         training=training, agreement=suite.agreement, prefer=suite.prefer)

    def _answers(self, suite: Suite, role: str, spec: ModelSpec):
        """The frozen answers a model gives from a file, as a suite error naming the key if unreadable."""
        from ..data.frozen import FrozenFileError, read_frozen

        try:
            return read_frozen(spec.answers)
        except (FrozenFileError, OSError) as exc:
            raise SuiteError(suite.path, spec.line, f"models.{role}.answers", str(exc)) from None

    def _train(self, suite: Suite, spec: dict, base_model: str, endpoint: Endpoint) -> dict:
        """The tuned model fine-tuned on ``spec``'s data (see ``training.from_suite``), as a suite error if not."""
        from ..training.from_suite import TrainingError, tuned_model_from_training

        try:
            return tuned_model_from_training(
                spec, base_model=base_model, endpoint=endpoint, state_dir=self.config.rootpath / ".pytest-ft",
                allow_launch=self.options.launch, offline=self.options.record_mode == "none",
                poll_interval=self.options.train_poll, say=self.say)
        except TrainingError as exc:
            raise SuiteError(suite.path, spec.get("line"), "train", str(exc)) from None

    def relpath(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.config.rootpath))
        except ValueError:
            return str(path)


def default_endpoint(options: Options) -> Endpoint:
    return Endpoint(base_url=options.base_url or os.environ.get("OPENAI_BASE_URL") or None)


def model_refs(options: Options) -> dict[str, ModelRef]:
    """Tuned and base models from the options alone (for Python tests, which have no suite)."""
    if not options.model:
        pytest.skip("no tuned model configured: pass --ft-model (or set ft_model in the ini file)")
    endpoint = default_endpoint(options)
    refs = {"tuned": ModelRef("tuned", options.model, endpoint)}
    base = options.base_model or fine_tuned_base(options.model)
    if base:
        refs["base"] = ModelRef("base", base, endpoint)
    return refs
