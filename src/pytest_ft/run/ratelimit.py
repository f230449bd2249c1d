"""Adaptive concurrency: back off on 429s, recover on successes, respect the server's limits.

A fixed concurrency is either too timid or, on a busy account, a storm of 429s that each
cost a retry. The limiter does what promptfoo and inspect_ai do — additive increase,
multiplicative decrease (AIMD) — and also listens to what the server says:

* sustained throttling halves the number of requests allowed in flight: a 429 that asks
  to wait (``Retry-After`` > 0), or 429s making up 10% of the last 50 answers. At most once
  per round of requests already sent, so one burst of 429s counts once. A lone 429 that
  says "retry now" is just retried. Successes win slots back, one per quarter of the limit,
  up to the configured maximum;
* ``Retry-After`` on a 429 pauses *every* new request until then, not only the one retried;
* ``x-ratelimit-remaining-requests: 0`` / a ``x-ratelimit-remaining-tokens`` too small for
  the next request pause new requests until ``x-ratelimit-reset-*``;
* an optional tokens-per-minute budget keeps the run under a known limit: each request
  reserves its estimated tokens in a one-minute sliding window before it is sent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import random
import re
import time
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import httpx2

_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset(value: str | None) -> float | None:
    """OpenAI's reset durations: ``"1s"``, ``"6m0s"``, ``"250ms"``, or plain seconds."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parts = list(_DURATION.finditer(value))
    if not parts:
        return None
    return sum(float(p["value"]) * _UNIT_SECONDS[p["unit"]] for p in parts)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a server asks for — ``retry-after-ms``, or ``Retry-After`` in seconds or as an
    HTTP date — capped at 60 s; None when it asks for none (or says something unreadable)."""
    try:
        if "retry-after-ms" in headers:
            seconds = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            value = headers["retry-after"]
            try:
                seconds = float(value)
            except ValueError:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        else:
            return None
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, min(seconds, 60.0))


class AdaptiveLimiter:
    """An async limiter whose capacity adapts between 1 and ``maximum``."""

    def __init__(self, maximum: int, *, tokens_per_minute: int | None = None, window: float = 60.0,
                 clock=time.monotonic):
        self.maximum = max(1, maximum)
        self.window = window
        self.limit = self.maximum
        self.in_flight = 0
        self.tokens_per_minute = tokens_per_minute
        self.backoffs = 0
        self._clock = clock
        self._paused_until = 0.0
        self._successes = 0
        self._generation = 0  # bumped on each decrease; a 429 from an older generation is not counted again
        self._window: collections.deque[tuple[float, int]] = collections.deque()
        self._window_tokens = 0
        self._recent: collections.deque[bool] = collections.deque(maxlen=50)
        # Waiters in arrival order; a release wakes only as many as there are free slots
        # (a condition's notify_all would wake thousands of queued requests per release).
        self._waiters: collections.deque[tuple[asyncio.Future, int]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    # -- acquiring --------------------------------------------------------------------------

    async def acquire(self, estimated_tokens: int = 0) -> int:
        """Wait for a slot (and the token budget); returns the generation the request runs in."""
        if not self._waiters and self._admissible(estimated_tokens):
            self._admit(estimated_tokens)
            return self._generation
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((future, estimated_tokens))
        self._wake()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.in_flight -= 1  # admitted just as it was cancelled: give the slot back
                self._wake()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove((future, estimated_tokens))
            raise

    def _admissible(self, tokens: int) -> bool:
        now = self._clock()
        return now >= self._paused_until and self.in_flight < self.limit and self._budget_wait(tokens, now) <= 0

    def _admit(self, tokens: int) -> None:
        self.in_flight += 1
        if self.tokens_per_minute:
            self._window.append((self._clock(), tokens))
            self._window_tokens += tokens

    def _wake(self) -> None:
        """Admit waiters in order while slots, pauses and the token budget allow; else retry later."""
        while self._waiters:
            future, tokens = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if not self._admissible(tokens):
                break
            self._waiters.popleft()
            self._admit(tokens)
            future.set_result(self._generation)
        if self._waiters and self.in_flight < self.limit and self._timer is None:
            now = self._clock()
            delay = max(self._paused_until - now, self._budget_wait(self._waiters[0][1], now), 0.001)
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()

    def _budget_wait(self, tokens: int, now: float) -> float:
        if not self.tokens_per_minute:
            return 0.0
        while self._window and now - self._window[0][0] >= self.window:
            self._window_tokens -= self._window.popleft()[1]
        if not self._window or self._window_tokens + tokens <= self.tokens_per_minute:
            return 0.0
        return self.window - (now - self._window[0][0])

    def release(self, *, ok: bool, generation: int, headers: Mapping[str, str] | None = None,
                retry_after: float | None = None, rate_limited: bool = False,
                next_tokens: int = 0) -> None:
        """Return a slot and learn from the response."""
        self.in_flight -= 1
        now = self._clock()
        self._recent.append(rate_limited)
        if rate_limited:
            sustained = bool(retry_after and retry_after > 0.1) or \
                sum(self._recent) >= max(2, len(self._recent) // 10)
            if sustained and generation == self._generation:
                self.limit = max(1, self.limit // 2)
                self._generation += 1
                self._successes = 0
                self.backoffs += 1
            if retry_after:
                self._paused_until = max(self._paused_until, now + retry_after)
        elif ok:
            self._successes += 1
            if self._successes >= max(1, self.limit // 4) and self.limit < self.maximum:
                self.limit += 1
                self._successes = 0
        if headers is not None:
            self._obey_headers(headers, now, next_tokens)
        self._wake()

    def _obey_headers(self, headers: Mapping[str, str], now: float, next_tokens: int) -> None:
        for kind, needed in (("requests", 1), ("tokens", max(next_tokens, 1))):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            if remaining is None:
                continue
            try:
                if int(float(remaining)) >= needed:
                    continue
            except ValueError:
                continue
            reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}"))
            if reset:
                self._paused_until = max(self._paused_until, now + min(reset, 60.0))


def retry_delay(attempt: int, response: httpx2.Response | None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): the server's word, else backoff."""
    asked = retry_after(response.headers) if response is not None else None
    if asked is not None:
        return asked if asked > 0 else 0.05 * (attempt + 1)
    return min(0.5 * 2 ** attempt, 8.0) * random.uniform(0.75, 1.25)
