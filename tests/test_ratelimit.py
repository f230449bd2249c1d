"""Adaptive concurrency, server rate-limit headers, token budgets, and interrupted runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from pytest_ft.run.ratelimit import AdaptiveLimiter, parse_reset, retry_after

TUNED = "ft:gpt-4o-mini-2024-07-18:acme:sentiment:abc123"


def run(coro):
    return asyncio.run(coro)


def test_parse_reset_reads_openai_durations():
    assert parse_reset("1s") == 1.0
    assert parse_reset("6m0s") == 360.0
    assert parse_reset("250ms") == 0.25
    assert parse_reset("2.5") == 2.5
    assert parse_reset("soon") is None and parse_reset(None) is None


def test_retry_after_reads_every_form_the_servers_send():
    import email.utils

    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "0"}) == 0.0
    assert retry_after({"retry-after": "3600"}) == 60.0  # capped
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= retry_after({"retry-after": in_ten}) <= 10
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_a_429_halves_the_limit_once_per_round_and_successes_bring_it_back():
    async def scenario():
        limiter = AdaptiveLimiter(8)
        generations = [await limiter.acquire() for _ in range(8)]
        assert limiter.in_flight == 8
        # a burst of 429s from requests sent in the same round counts once
        for generation in generations[:3]:
            limiter.release(ok=False, rate_limited=True, generation=generation)
        assert limiter.limit == 4 and limiter.backoffs == 1
        for generation in generations[3:]:  # answers of the old round do not grow it back yet...
            limiter.release(ok=False, rate_limited=True, generation=generation)
        assert limiter.limit == 4
        # ...a 429 in the new round, while 429s are still frequent, halves again
        limiter.release(ok=False, rate_limited=True, generation=await limiter.acquire())
        assert limiter.limit == 2
        # successes win slots back, up to the maximum
        for _ in range(40):
            limiter.release(ok=True, generation=await limiter.acquire())
        assert limiter.limit == 8
        return limiter

    assert run(scenario()).in_flight == 0


def test_a_lone_429_that_says_retry_now_does_not_shrink_the_limit():
    async def scenario():
        limiter = AdaptiveLimiter(8)
        for _ in range(30):
            limiter.release(ok=True, generation=await limiter.acquire())
        limiter.release(ok=False, rate_limited=True, generation=await limiter.acquire(), retry_after=0.0)
        assert limiter.limit == 8 and limiter.backoffs == 0
        limiter.release(ok=False, rate_limited=True, generation=await limiter.acquire(), retry_after=0.5)
        assert limiter.limit == 4  # the server asked to wait: back off

    run(scenario())


def test_requests_wait_for_a_free_slot():
    async def scenario():
        limiter = AdaptiveLimiter(2)
        first, second = await limiter.acquire(), await limiter.acquire()
        third = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.05)
        assert not third.done()
        limiter.release(ok=True, generation=first)
        await asyncio.wait_for(third, 1)
        limiter.release(ok=True, generation=second)

    run(scenario())


def test_retry_after_pauses_every_new_request():
    async def scenario():
        limiter = AdaptiveLimiter(4)
        generation = await limiter.acquire()
        limiter.release(ok=False, rate_limited=True, generation=generation, retry_after=0.3)
        start = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - start

    assert run(scenario()) >= 0.28


def test_exhausted_ratelimit_headers_pause_until_reset():
    async def scenario():
        limiter = AdaptiveLimiter(4)
        generation = await limiter.acquire()
        limiter.release(ok=True, generation=generation, next_tokens=50,
                              headers={"x-ratelimit-remaining-requests": "10",
                                       "x-ratelimit-remaining-tokens": "20",
                                       "x-ratelimit-reset-tokens": "300ms"})
        start = time.monotonic()
        await limiter.acquire()
        paused = time.monotonic() - start
        generation = await limiter.acquire()
        limiter.release(ok=True, generation=generation,
                              headers={"x-ratelimit-remaining-requests": "5", "x-ratelimit-remaining-tokens": "900"})
        start = time.monotonic()
        await limiter.acquire()
        return paused, time.monotonic() - start

    paused, not_paused = run(scenario())
    assert paused >= 0.28 and not_paused < 0.05


def test_token_budget_keeps_a_window_under_its_limit():
    async def scenario():
        limiter = AdaptiveLimiter(10, tokens_per_minute=100, window=0.4)
        start = time.monotonic()
        await limiter.acquire(60)
        await limiter.acquire(30)   # 90 of 100: fits
        await limiter.acquire(30)   # would be 120: waits for the first to leave the window
        return time.monotonic() - start

    assert run(scenario()) >= 0.38


def test_a_run_under_many_429s_completes_every_case(pytester, server):
    cases = "".join(f"  - {{id: c{i}, input: 'x{i} LABEL=L{i} FAULT=429x2', expected: L{i}}}\n" for i in range(20))
    (pytester.path / "s.ft.yaml").write_text(f"models: {{tuned: {TUNED}}}\ncases:\n{cases}")
    result = pytester.runpytest("--ft-concurrency=8", "--ft-disable-recording")
    result.assert_outcomes(passed=20)
    assert len(server.chat_requests()) == 20 * 2 * 3


def test_sigterm_summarises_what_finished_and_the_next_run_pays_only_for_the_rest(pytester, server):
    cases = "".join(f"  - {{id: c{i:02d}, input: 'x{i} LABEL=L SLOW=250', expected: L}}\n" for i in range(24))
    (pytester.path / "s.ft.yaml").write_text(f"models: {{tuned: {TUNED}}}\ncases:\n{cases}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--ft-concurrency=3"],
                            cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while len(server.chat_requests()) < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "pytest-ft" in output and "suite s (s.ft.yaml)" in output, output  # the partial summary
    recorded = sum(len(yaml.safe_load(p.read_text())["interactions"])
                   for p in (pytester.path / "cassettes/s").glob("*.yaml"))
    assert 8 <= recorded < 48
    sent_first = len(server.chat_requests())

    server.reset()
    result = pytester.runpytest_subprocess("--ft-concurrency=8")
    result.assert_outcomes(passed=24)
    assert len(server.chat_requests()) == 48 - recorded  # only what was not saved is asked again
    assert sent_first - recorded <= 3 * 2  # at most the requests in flight at the signal were lost


def test_progress_line_counts_cases_requests_and_tokens(server):
    from pytest_ft.run.runner import CaseJob, Endpoint, ModelRef, Runner
    from pytest_ft.graders import build_grader

    runner = Runner(concurrency=4, record_mode=None)
    try:
        ref = ModelRef("tuned", TUNED, Endpoint(server.url))
        jobs = [CaseJob(case_id=f"c{i}", messages=[{"role": "user", "content": f"LABEL=A x{i}"}], expected="A",
                        grader=build_grader("exact"), params={}, models=[ref]) for i in range(3)]
        for future in [runner.submit(job) for job in jobs]:
            future.result(timeout=10)
        line = runner.progress(5)
        assert line.startswith("3/5 cases done · 0 requests in flight · ")
        assert line.endswith(f"{3 * (5 + 1)} tokens")  # 3 x (2 words + 3 per message) + 1 completion word
    finally:
        runner.close()


def test_no_progress_lines_in_ci_logs(pytester, server):
    cases = "".join(f"  - {{id: c{i}, input: 'x{i} LABEL=L SLOW=400', expected: L}}\n" for i in range(12))
    (pytester.path / "s.ft.yaml").write_text(f"models: {{tuned: {TUNED}}}\ncases:\n{cases}")
    result = pytester.runpytest("--ft-concurrency=2", "--ft-disable-recording")  # output is not a terminal
    result.assert_outcomes(passed=12)
    assert "cases done" not in result.stdout.str()


def test_full_garbage_collections_are_rarer_while_a_run_is_open_and_restored_when_the_last_closes(monkeypatch):
    """A run keeps every finished case's result, so full collections walk a heap that only grows:
    a runner (and a session that collects a suite) makes them rarer, and gives the process its
    own thresholds back when the last of them closes."""
    import gc

    from pytest_ft.run import heap
    from pytest_ft.run.runner import Runner

    before = gc.get_threshold()
    monkeypatch.setattr(heap, "_open", {"holders": 0, "thresholds": before})
    gc.set_threshold(700, 10, 10)
    try:
        first = Runner(record_mode=None)
        assert gc.get_threshold() == (700, 10, heap.FULL_COLLECTION_EVERY)
        second = Runner(record_mode=None)
        first.close()
        assert gc.get_threshold() == (700, 10, heap.FULL_COLLECTION_EVERY)  # the second still runs
        first.close()  # closing twice gives nothing back twice
        assert gc.get_threshold() == (700, 10, heap.FULL_COLLECTION_EVERY)
        second.close()
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


def run_cases(pytester, count: int, *args: str):
    """A suite of ``count`` cases c000, c001…, run two requests at a time (without recording,
    unless ``args`` say otherwise)."""
    cases = "".join(f"  - {{id: c{i:03d}, input: 'x{i} LABEL=L', expected: L}}\n" for i in range(count))
    (pytester.path / "s.ft.yaml").write_text(f"models: {{tuned: {TUNED}}}\ncases:\n{cases}")
    return pytester.runpytest("-p", "no:cacheprovider", "--ft-concurrency=2", *(args or ["--ft-disable-recording"]))


def test_a_session_with_suites_keeps_full_collections_rare_until_pytest_unconfigures(pytester, server):
    """The summary and the reports still hold every result after the session's end: the thresholds
    come back at pytest's unconfigure, not before (one full walk of the heap fewer)."""
    import gc

    from pytest_ft.run import heap

    pytester.makeconftest("""
        import gc

        def pytest_terminal_summary(terminalreporter):
            terminalreporter.write_line(f"thresholds at the summary: {gc.get_threshold()[2]}")
        """)
    (pytester.path / "s.ft.yaml").write_text(f"models: {{tuned: {TUNED}}}\ncases:\n  - {{id: a, input: 'x LABEL=L', "
                                             "expected: L}\n")
    before = gc.get_threshold()
    assert before[2] < heap.FULL_COLLECTION_EVERY
    result = pytester.runpytest("-p", "no:cacheprovider", "--ft-disable-recording")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"thresholds at the summary: {heap.FULL_COLLECTION_EVERY}"])
    assert gc.get_threshold() == before


def test_the_runner_holds_a_bounded_window_of_cases_and_keeps_it_full_while_pytest_waits(pytester, server,
                                                                                         monkeypatch):
    """Cases are submitted a window ahead of the one pytest reports, not all at once (a run of
    100,000 cases would hold 100,000 waiting tasks); and while pytest waits on a slow case, the
    window is topped up, so the slow case does not stall the rest. Here the first case cannot
    finish until the 20th has been submitted: that happens only if the waiting tops up."""
    import threading

    from pytest_ft.run import session as session_module
    from pytest_ft.run.runner import Runner

    monkeypatch.setattr(session_module, "PREFETCH_MIN", 6)
    monkeypatch.setattr(session_module, "PREFETCH_PER_SLOT", 1)
    twentieth, submitted, pending, held = threading.Event(), [], [], []
    real_submit, real_answer = Runner.submit, Runner.call_answer

    def submit(self, job):
        future = real_submit(self, job)
        submitted.append(job.case_id)
        pending.append(self.pending)
        if len(submitted) >= 20:
            twentieth.set()
        return future

    async def answer(self, ref, job):
        if job.case_id == "c000":
            await asyncio.get_running_loop().run_in_executor(None, twentieth.wait, 30)
            held.append(twentieth.is_set())
        return await real_answer(self, ref, job)

    monkeypatch.setattr(Runner, "submit", submit)
    monkeypatch.setattr(Runner, "call_answer", answer)
    run_cases(pytester, 40).assert_outcomes(passed=40)
    assert held == [True, True]  # the first case (both models) went on once the twentieth was submitted
    assert submitted == [f"c{i:03d}" for i in range(40)]  # each once, in order
    assert max(pending) <= 6
    assert len(server.chat_requests()) == 40 * 2


def test_a_replay_reports_each_window_while_the_runner_is_idle(pytester, server, monkeypatch):
    """Replaying is work for the interpreter alone: pytest reports a window of cases only once the
    runner has finished it, so the two threads do not trade the interpreter lock at every system
    call. A live run keeps the runner working while pytest reports (the contrast: the test fails
    if both runs behave alike)."""
    from pytest_ft.run import session as session_module

    monkeypatch.setattr(session_module, "PREFETCH_MIN", 6)
    monkeypatch.setattr(session_module, "PREFETCH_PER_SLOT", 1)
    pytester.makeconftest("""
        from pytest_ft.run.session import SESSION_KEY

        PENDING = []

        def pytest_runtest_call(item):
            PENDING.append(item.config.stash[SESSION_KEY].runner.pending)

        def pytest_terminal_summary(terminalreporter):
            terminalreporter.write_line(f"pending while reporting: {PENDING}")
        """)
    cases = "".join(f"  - {{id: c{i:03d}, input: 'x{i} LABEL=L', expected: L}}\n" for i in range(40))
    (pytester.path / "s.ft.yaml").write_text(f"models: {{tuned: {TUNED}}}\ncases:\n{cases}")

    def pending_while_reporting(*args: str) -> list[int]:
        result = pytester.runpytest("-p", "no:cacheprovider", "--ft-concurrency=2", *args)
        result.assert_outcomes(passed=40)
        line = next(line for line in result.outlines if line.startswith("pending while reporting: "))
        return [int(n) for n in line.split(": ", 1)[1].strip("[]").split(", ")]

    live = pending_while_reporting()
    assert len(live) == 40 and max(live) > 0
    assert len(server.chat_requests()) == 40 * 2  # the tuned model and its base
    server.reset()
    replayed = pending_while_reporting("--ft-record-mode=none")
    assert replayed == [0] * 40
    assert server.chat_requests() == []


def test_a_replay_window_is_handed_over_before_the_runner_starts_on_it(pytester, server, monkeypatch):
    """The loop is held while pytest's thread submits a replay's window (else it starts on the
    first case while the rest are handed over, and the threads trade the interpreter lock): each
    window's cases are all submitted before any of them starts. Submitting is slowed down here,
    so that without the hold the runner would start in between."""
    import re

    from pytest_ft.run import session as session_module
    from pytest_ft.run.runner import Runner
    from pytest_ft.run.session import EvalSession

    monkeypatch.setattr(session_module, "PREFETCH_MIN", 6)
    monkeypatch.setattr(session_module, "PREFETCH_PER_SLOT", 1)
    run_cases(pytester, 40, "--ft-cassette-dir=cassettes").assert_outcomes(passed=40)
    events = []
    real_submit, real_run_case, real_job = Runner.submit, Runner.run_case, EvalSession.job

    def submit(self, job):
        events.append("s")
        return real_submit(self, job)

    async def run_case(self, job):
        events.append("t")
        return await real_run_case(self, job)

    def job(self, item):
        time.sleep(0.002)
        return real_job(self, item)

    monkeypatch.setattr(Runner, "submit", submit)
    monkeypatch.setattr(Runner, "run_case", run_case)
    monkeypatch.setattr(EvalSession, "job", job)
    server.reset()
    run_cases(pytester, 40, "--ft-cassette-dir=cassettes", "--ft-record-mode=none").assert_outcomes(passed=40)
    assert server.chat_requests() == []
    windows = re.findall(r"(s+)(t+)", "".join(events))
    assert "".join(s + t for s, t in windows) == "".join(events)
    assert [(len(s), len(t)) for s, t in windows] == [(6, 6)] * 6 + [(4, 4)]


def test_topping_up_lists_each_upcoming_case_a_bounded_number_of_times(pytester, server, monkeypatch):
    """Each top-up lists the cases after the last one submitted, not every case left: at 100,000
    cases, listing all that remain at every top-up made the session quadratic."""
    from pytest_ft import items
    from pytest_ft.run import session as session_module
    from pytest_ft.run.runner import Runner

    monkeypatch.setattr(session_module, "PREFETCH_MIN", 6)
    monkeypatch.setattr(session_module, "PREFETCH_PER_SLOT", 1)
    listed, submitted, top_ups = [], [], []
    real_upcoming, real_submit = items.upcoming_cases, Runner.submit

    def upcoming_cases(item, after=None):
        first = True
        for case in real_upcoming(item, after):
            listed.append(case.case.id)
            if first and after is not None:  # a top-up: does it start past what is in flight?
                top_ups.append(case.case.id in submitted)
            first = False
            yield case

    def submit(self, job):
        submitted.append(job.case_id)
        return real_submit(self, job)

    monkeypatch.setattr(items, "upcoming_cases", upcoming_cases)
    monkeypatch.setattr(Runner, "submit", submit)
    run_cases(pytester, 300).assert_outcomes(passed=300)
    assert submitted == [f"c{i:03d}" for i in range(300)]  # each once, in order
    assert len(top_ups) > 20 and not any(top_ups)  # every top-up listed from the first case not submitted
    assert len(listed) <= 2 * 300, len(listed)


def test_settle_takes_what_is_ready_at_once_and_awaits_the_rest_together():
    """A case's answers and grades: what needs no I/O is taken at once (no task of its own),
    the rest is awaited concurrently; each failure stands in its item's place, in order."""
    from pytest_ft.run.runner import settle

    started = []

    def at_once(item):
        if item == "bad":
            raise KeyError(item)
        return None if item in ("call", "failing call") else f"{item}, at once"

    async def later(item):
        started.append(item)
        while len(started) < 2:  # each waits for the other to start: awaited one by one, this never ends
            await asyncio.sleep(0)
        if item == "failing call":
            raise ValueError(item)
        return f"{item}, awaited"

    results = asyncio.run(asyncio.wait_for(settle(["replayed", "call", "bad", "failing call"], at_once, later), 5))
    assert results[:2] == ["replayed, at once", "call, awaited"]
    assert isinstance(results[2], KeyError) and isinstance(results[3], ValueError)
    assert started == ["call", "failing call"]
