"""Fine-tuning jobs: launch or reuse them, follow them, and train from a suite.

* :mod:`.jobs` - launch a job or reuse the one for the same content (and the Python API);
* :mod:`.api` - the HTTP calls: raw JSON, retries, explained errors;
* :mod:`.remote` - the endpoint's jobs: read, list, events, checkpoints, cancel;
* :mod:`.follow` - follow a job to its end: polls, new events, status line;
* :mod:`.state` - the local state file, ``.pytest-ft/jobs.json``;
* :mod:`.job_info` - a job as the API describes it, its cost, the command that evaluates it;
* :mod:`.errors`, :mod:`.cassette` - the errors users act on; one cassette per CLI command;
* :mod:`.from_suite` - train, then gate, in one ``pytest`` command.

The ``pytest-ft train`` / ``jobs`` commands are in :mod:`pytest_ft.cli.jobs`.
"""
