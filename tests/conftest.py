"""Shared test setup: the package's thread policy, and the command line as a subprocess."""

import subprocess
import sys
from pathlib import Path

import pytest

from ncsn_toy.runtime import ThreadPolicy

ROOT = Path(__file__).resolve().parents[1]

# A timeout in a test is there to stop a hang, not to judge speed: the slowest honest run here
# (`reproduce --fast`, the notebook) takes about a minute on 2 idle cores and a few times that on
# a busy machine, so an hour is far above any honest run time.
HANG_TIMEOUT = 3600


@pytest.fixture(scope="session", autouse=True)
def thread_policy():
    """The test suite runs under the thread policy, like every command (README, "Threads")."""
    policy = ThreadPolicy()
    policy.apply()
    return policy


@pytest.fixture(scope="module", autouse=True)
def _refresh_threads(thread_policy):
    """Measure the machine's load again before each test module (at most every 2 s)."""
    thread_policy.refresh()


def run_command(
    *args: str, cwd: Path = ROOT, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``python -m ncsn_toy ARGS`` in a subprocess, with text output."""
    return subprocess.run(
        [sys.executable, "-m", "ncsn_toy", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=HANG_TIMEOUT,
        env=env,
    )
