"""Running cases: planning, scheduling, the live runner, batch jobs and rate limits."""

DEFAULT_CONCURRENCY = 16
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 4
