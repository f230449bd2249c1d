import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from openai_server import FakeOpenAI  # noqa: E402

# pytester's in-process runs drop the modules a run imported; an HTTP stack imported anew
# by each run would map its exceptions with the classes of an earlier import. Import it once.
import httpcore2  # noqa: E402,F401
import openai  # noqa: E402,F401
import pytest_ft.plugin  # noqa: E402,F401

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def openai_server():
    """One fake OpenAI server for the whole test session (tests reset it)."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def server(openai_server, monkeypatch):
    """The fake server, reset, with the environment pointing at it and no real key around."""
    openai_server.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" "test-key-0123456789abcdefghijklmnop")
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    return openai_server


def without_run_details(report: dict) -> dict:
    """A report minus what differs between a live run and its replay (timing, replayed flags)."""
    report = {k: v for k, v in report.items() if k not in ("created", "duration_s", "calls")}
    for suite in report["suites"]:
        for model in suite["models"].values():
            model.pop("replayed", None)
        for case in suite["cases"]:
            for role in suite["models"]:
                case.get(role, {}).pop("replayed", None)
    return report
