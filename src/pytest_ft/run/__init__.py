"""Running cases: planning, scheduling, the live runner, batch jobs and rate limits."""
